"""Walking a file tree depth first in castore/NAR order, without following symlinks.

Entries of each directory are visited sorted by name (bytes), which is the order both the
castore Directory and the NAR serialization use. The walk yields flat events so that deep trees
need no recursion: DirStart, then the entries (files, symlinks, nested DirStart...DirEnd), then
DirEnd. The root's name is b"".
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass


class IngestError(Exception):
    """A file tree cannot be imported (unsupported file type, unreadable, changed)."""


@dataclass(frozen=True, slots=True)
class DirStart:
    name: bytes
    path: bytes


@dataclass(frozen=True, slots=True)
class DirEnd:
    name: bytes
    path: bytes


@dataclass(frozen=True, slots=True)
class File:
    name: bytes
    path: bytes
    size: int
    executable: bool


@dataclass(frozen=True, slots=True)
class Symlink:
    name: bytes
    path: bytes
    target: bytes


Event = DirStart | DirEnd | File | Symlink

_KINDS = {
    stat.S_IFSOCK: "a socket",
    stat.S_IFBLK: "a block device",
    stat.S_IFCHR: "a character device",
    stat.S_IFIFO: "a FIFO",
}


def _leaf(name: bytes, path: bytes, st: os.stat_result) -> Event | None:
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return File(name, path, st.st_size, bool(mode & stat.S_IXUSR))
    if stat.S_ISLNK(mode):
        try:
            return Symlink(name, path, os.readlink(path))
        except OSError as e:
            raise IngestError(f"{os.fsdecode(path)}: cannot read symlink: {e.strerror}") from e
    if stat.S_ISDIR(mode):
        return None
    kind = _KINDS.get(stat.S_IFMT(mode), f"an unsupported file type ({oct(stat.S_IFMT(mode))})")
    raise IngestError(f"{os.fsdecode(path)}: cannot import {kind}")


def _sorted_children(path: bytes) -> list[tuple[bytes, bytes]]:
    try:
        with os.scandir(path) as it:
            names = sorted(entry.name for entry in it)
    except OSError as e:
        raise IngestError(f"{os.fsdecode(path)}: cannot list directory: {e.strerror}") from e
    return [(name, path + b"/" + name) for name in names]


def _lstat(path: bytes) -> os.stat_result:
    try:
        return os.lstat(path)
    except OSError as e:
        raise IngestError(f"{os.fsdecode(path)}: {e.strerror}") from e


def walk(root: str | bytes | os.PathLike[str]) -> Iterator[Event]:
    """Events for the tree at `root` (not followed if it is a symlink itself)."""
    root_path = os.fsencode(root)
    top = _leaf(b"", root_path, _lstat(root_path))
    if top is not None:
        yield top
        return
    yield DirStart(b"", root_path)
    stack = [(b"", root_path, iter(_sorted_children(root_path)))]
    while stack:
        dir_name, dir_path, children = stack[-1]
        for name, path in children:
            leaf = _leaf(name, path, _lstat(path))
            if leaf is not None:
                yield leaf
                continue
            yield DirStart(name, path)
            stack.append((name, path, iter(_sorted_children(path))))
            break
        else:
            stack.pop()
            yield DirEnd(dir_name, dir_path)
