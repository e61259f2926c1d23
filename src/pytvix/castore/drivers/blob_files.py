"""Whole blobs as files in one directory: `<root>/<2 hex>/<64 hex>`, written to a staging file
in `<root>/staging/` and renamed into place once complete (the name is known only at the end,
when the digest is). A crash leaves at most staging files (garbage collection removes old
ones), never a partial blob under its name.

Blocking; call from worker threads.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import mmap
import os
import secrets
from collections.abc import Iterator

from pytvix.buffers import Buffer, Parts
from pytvix.castore.drivers.local_files import (
    GroupCommit,
    set_direct,
    syncfs,
    write_aligned,
    write_all,
)

DIRECT_BUFFER = 4 << 20  # a streamed blob file is written in pieces of this size
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
_token = secrets.token_hex(6)
_numbers = itertools.count()


class BlobFiles:
    def __init__(self, root: str) -> None:
        self.root = root
        self.staging_dir = f"{root}/staging"
        self.trash_dir = f"{root}/trash"
        os.makedirs(self.staging_dir, exist_ok=True)
        self._group_sync = GroupCommit(lambda: syncfs(self.root))
        self.direct = True  # until the file system refuses O_DIRECT

    def path(self, hex_digest: str) -> str:
        return f"{self.root}/{hex_digest[:2]}/{hex_digest}"

    def open_staging(self) -> StagingFile:
        """A new staging file written past the page cache (O_DIRECT) where the file system
        allows it: a blob's bytes are not read back soon, and filling page-cache pages was the
        largest cost of writing them (README, "Measurements behind the code")."""
        return StagingFile(self)

    def create_staging(self) -> tuple[str, int]:
        """A new, empty staging file: (path, fd open for writing)."""
        path = f"{self.staging_dir}/{_token}-{next(_numbers)}"
        return path, os.open(path, _WRITE_FLAGS, 0o444)

    def write_staging(self, parts: Parts) -> str:
        """A staging file holding the concatenated parts; its path."""
        path, fd = self.create_staging()
        try:
            write_all(fd, parts)
        except BaseException:
            os.close(fd)
            discard(path)
            raise
        os.close(fd)
        return path

    def commit(self, staging: str, hex_digest: str) -> None:
        """Move a complete staging file to the blob's name (replacing one there: same bytes)."""
        final = self.path(hex_digest)
        try:
            os.rename(staging, final)
        except FileNotFoundError:
            if not os.path.exists(staging):
                raise
            os.makedirs(os.path.dirname(final), exist_ok=True)
            os.rename(staging, final)

    def open(self, hex_digest: str) -> int | None:
        """A read fd of the blob's file, or None if there is none."""
        try:
            return os.open(self.path(hex_digest), _READ_FLAGS)
        except FileNotFoundError:
            return None

    def exists(self, hex_digest: str) -> bool:
        return os.path.isfile(self.path(hex_digest))

    def delete(self, hex_digest: str) -> None:
        discard(self.path(hex_digest))

    def names(self) -> Iterator[tuple[str, int, float]]:
        """(hex digest, size, mtime) of every blob file (staging files excluded)."""
        for shard in sorted(os.listdir(self.root)):
            if len(shard) != 2 or not os.path.isdir(f"{self.root}/{shard}"):
                continue
            with os.scandir(f"{self.root}/{shard}") as entries:
                for entry in entries:
                    if len(entry.name) == 64 and entry.name.startswith(shard):
                        st = entry.stat(follow_symlinks=False)
                        yield entry.name, st.st_size, st.st_mtime

    def staging_files(self) -> Iterator[tuple[str, float]]:
        """(path, mtime) of staging files (of writes in progress, or left by a crash)."""
        with os.scandir(self.staging_dir) as entries:
            for entry in entries:
                yield entry.path, entry.stat(follow_symlinks=False).st_mtime

    def to_trash(self, hex_digest: str) -> None:
        """Move a blob's file out of the way (deleted by empty_trash, after its record is)."""
        os.makedirs(self.trash_dir, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.rename(self.path(hex_digest), f"{self.trash_dir}/{hex_digest}")

    def trash(self) -> list[str]:
        """Names (hex digests) of the files in the trash."""
        return os.listdir(self.trash_dir) if os.path.isdir(self.trash_dir) else []

    def discard_trash(self, name: str) -> None:
        discard(f"{self.trash_dir}/{name}")

    def restore(self, name: str) -> None:
        """Put a file from the trash back at its blob's name."""
        os.rename(f"{self.trash_dir}/{name}", self.path(name))

    def discard_stray(self, path: str, before: float, *, recorded: bool) -> bool:
        """Remove a staging file or unrecorded blob file not modified since `before`."""
        if recorded:
            return False
        try:
            if os.lstat(path).st_mtime >= before:
                return False
        except FileNotFoundError:
            return False
        discard(path)
        return True

    def sync(self) -> None:
        """Durability barrier for everything written below the root (a shared syncfs)."""
        self._group_sync.sync()


def discard(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class StagingFile:
    """One staging file being written in order: through a page-aligned buffer, DIRECT_BUFFER
    bytes at a time with O_DIRECT, or buffered where the file system refuses O_DIRECT (at open
    or at the first write; remembered for the directory). `finish()` writes what is held;
    `close()` releases the file (the caller commits or discards `path`)."""

    def __init__(self, files: BlobFiles) -> None:
        self._files = files
        self.path, self.fd = files.create_staging()
        self._buffer: mmap.mmap | None = None
        self._held = 0
        if files.direct:
            try:
                set_direct(self.fd, True)
                self._buffer = mmap.mmap(-1, DIRECT_BUFFER)
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
                files.direct = False

    def write(self, data: Buffer) -> None:
        if self._buffer is None:
            write_all(self.fd, [data])
            return
        view = memoryview(data).cast("B")
        while view:
            n = min(len(view), DIRECT_BUFFER - self._held)
            self._buffer[self._held : self._held + n] = view[:n]
            self._held += n
            view = view[n:]
            if self._held == DIRECT_BUFFER:
                self._write_held()

    def finish(self) -> None:
        """Write what the buffer holds (the file is then complete)."""
        if self._buffer is not None and self._held:
            self._write_held()

    def _write_held(self) -> None:
        assert self._buffer is not None
        at = os.lseek(self.fd, 0, os.SEEK_CUR)
        held = memoryview(self._buffer)[: self._held]
        try:
            try:
                write_aligned(self.fd, held)
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
                self._files.direct = False  # refused at the first write: buffered from now on
                set_direct(self.fd, False)
                os.lseek(self.fd, at, os.SEEK_SET)
                write_all(self.fd, [held])
        finally:
            held.release()
        self._held = 0
        if not self._files.direct:
            self._buffer.close()
            self._buffer = None

    def close(self) -> None:
        os.close(self.fd)
        if self._buffer is not None:
            self._buffer.close()
            self._buffer = None
