"""`export_node`: castore tree -> files on local disk.

Everything is created relative to directory file descriptors (`openat`-style, `dir_fd=`), with
`O_EXCL | O_NOFOLLOW`, and names are validated PathComponents (no `/`, `.` or `..`), so
nothing is ever written outside the target and no symlink inside it is ever followed — not
even one placed there concurrently. The target must not exist yet. Modes follow
`nix-store --restore`: executables 0777, other files 0666, directories 0777, minus the umask.
Blobs are verified by the blob service and must have exactly their node's size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from pytvix.castore.blobservice import BlobReader, BlobService
from pytvix.castore.directoryservice import DirectoryService
from pytvix.castore.errors import StorageError
from pytvix.castore.fetch import BlobPrefetcher, Closure, fetch_tree, files_in_order
from pytvix.castore.nodes import DirectoryNode, FileNode, Node, SymlinkNode
from pytvix.castore.progress import Progress, no_progress
from pytvix.castore.workers import run

PIECE = 4 << 20
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class ExportError(Exception):
    """The tree cannot be materialized (target exists, I/O error, inconsistent blob)."""


async def export_node(
    node: Node,
    target: str | os.PathLike[str],
    blobs: BlobService,
    directories: DirectoryService,
    *,
    progress: Progress = no_progress,
) -> None:
    """Materialize `node` at `target` (which must not exist; its parent must)."""
    closure = await fetch_tree(directories, node)
    exporter = _Exporter(closure, BlobPrefetcher(blobs, files_in_order(node, closure)), progress)
    parent_fd, name = await run(_open_parent, os.fspath(target))
    try:
        await exporter.export(node, parent_fd, name)
    finally:
        exporter.prefetcher.close()
        os.close(parent_fd)


@dataclass
class _Exporter:
    closure: Closure
    prefetcher: BlobPrefetcher
    progress: Progress

    async def export(self, node: Node, parent_fd: int, name: bytes) -> None:
        if not isinstance(node, DirectoryNode):
            await self.leaf(parent_fd, name, node)
            return
        stack: list[tuple[int, Iterator[tuple[bytes, Node]]]] = []
        try:
            fd = await run(_mkdir, parent_fd, name)
            stack.append((fd, iter(self.closure[node.digest].entries())))
            while stack:
                dir_fd, entries = stack[-1]
                for child_name, child in entries:
                    if isinstance(child, DirectoryNode):
                        fd = await run(_mkdir, dir_fd, child_name)
                        stack.append((fd, iter(self.closure[child.digest].entries())))
                        break
                    await self.leaf(dir_fd, child_name, child)
                else:
                    stack.pop()
                    os.close(dir_fd)
        finally:
            for dir_fd, _ in stack:
                os.close(dir_fd)

    async def leaf(self, dir_fd: int, name: bytes, node: FileNode | SymlinkNode) -> None:
        if isinstance(node, SymlinkNode):
            await run(_symlink, node.target, dir_fd, name)
            return
        contents = await self.prefetcher.next()
        mode = 0o777 if node.executable else 0o666
        if isinstance(contents, bytes):
            _check_size(node, len(contents))
            await run(_write_file, dir_fd, name, mode, contents)
        else:
            async with contents:
                await _stream_file(dir_fd, name, mode, node, contents)
        self.progress("files", 1)
        self.progress("bytes", node.size)


async def _stream_file(
    dir_fd: int, name: bytes, mode: int, node: FileNode, reader: BlobReader
) -> None:
    fd = await run(_create, dir_fd, name, mode)
    try:
        written = 0
        while piece := await reader.read(min(PIECE, node.size - written + 1)):
            written += len(piece)
            _check_size(node, written, partial=True)
            await run(_write_all, fd, piece)
        _check_size(node, written)
    finally:
        os.close(fd)


def _check_size(node: FileNode, actual: int, *, partial: bool = False) -> None:
    if actual > node.size or (not partial and actual != node.size):
        raise StorageError(f"blob {node.digest} has {actual}+ bytes, its node says {node.size}")


def _oserror(what: str, name: bytes, e: OSError) -> ExportError:
    return ExportError(f"cannot {what} {os.fsdecode(name)!r}: {e.strerror}")


def _open_parent(target: str) -> tuple[int, bytes]:
    """An fd of the target's parent directory, and the target's name in it."""
    parent, name = os.path.split(os.path.abspath(target))
    if not name:
        raise ExportError(f"{target!r} cannot be an export target")
    try:
        return os.open(parent, _DIR), os.fsencode(name)
    except OSError as e:
        raise _oserror("open directory", os.fsencode(parent), e) from e


def _mkdir(parent_fd: int, name: bytes) -> int:
    try:
        os.mkdir(name, 0o777, dir_fd=parent_fd)
        return os.open(name, _DIR, dir_fd=parent_fd)
    except OSError as e:
        raise _oserror("create directory", name, e) from e


def _create(dir_fd: int, name: bytes, mode: int) -> int:
    try:
        return os.open(name, _CREATE, mode, dir_fd=dir_fd)
    except OSError as e:
        raise _oserror("create file", name, e) from e


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_file(dir_fd: int, name: bytes, mode: int, data: bytes) -> None:
    fd = _create(dir_fd, name, mode)
    try:
        _write_all(fd, data)
    except OSError as e:
        raise _oserror("write", name, e) from e
    finally:
        os.close(fd)


def _symlink(target: bytes, dir_fd: int, name: bytes) -> None:
    try:
        os.symlink(target, name, dir_fd=dir_fd)
    except OSError as e:
        raise _oserror("create symlink", name, e) from e
