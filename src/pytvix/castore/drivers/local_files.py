"""Object files of local stores (`file://`): atomic writes, reads, durability barriers.

Every write goes to a staging file `<name>#<digits>` in the object's directory (listings of
obstore and of the scrubber skip such names) and is renamed over the name; a crash leaves at
most a stray staging file, never a partial object.

Objects between DIRECT_MIN and DIRECT_MAX bytes (the chunks of chunked blobs) are written
with O_DIRECT: straight from an aligned buffer to the disk, not through the page cache.
Filling page cache pages was the largest cost of a buffered write on the development VM (its
guest pages are backed lazily by the host; README, "Measurements behind the code"), and
buffered data still has to reach the disk at the next durability barrier. The price: freshly
written chunks are not in the page cache, so the first read of a new blob comes from the
disk. File systems that refuse O_DIRECT (some FUSE or network file systems) get buffered
writes, decided once per store.
Smaller objects are written buffered, and larger buffered ones are handed to write-back at
once (sync_file_range), so a later barrier finds most of the work done.

Blocking; call from worker threads.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import itertools
import mmap
import os
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytvix.buffers import Parts

DIRECT_MIN = 64 << 10
DIRECT_MAX = 8 << 20
EARLY_WRITEBACK = 64 << 10
ALIGN = 4096  # O_DIRECT alignment of buffer, offset and length (the largest sector size)
_IOV_MAX = 1024
_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
_READ_PIECE = 4 << 20
_STAGING_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
_STAGING_ATTEMPTS = 3
_STAGING_TOKEN = str(secrets.randbits(48))  # digits only: listings skip `#<digits>`
_staging_numbers = itertools.count()  # next() on it is atomic under the GIL
_SYNC_FILE_RANGE_WRITE = 2


class LocalFiles:
    """The object files below one directory."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.direct = True  # until the file system refuses O_DIRECT
        self.nowait = hasattr(os, "RWF_NOWAIT")  # until the file system refuses RWF_NOWAIT
        self._group_sync = GroupCommit(lambda: syncfs(self.root))

    def exists(self, key: str) -> bool:
        return os.path.isfile(f"{self.root}/{key}")

    def read(self, key: str) -> bytes | None:
        """The object's bytes, or None if there is no such file (links are not followed)."""
        try:
            fd = os.open(f"{self.root}/{key}", _READ_FLAGS)
        except FileNotFoundError:
            return None
        try:
            parts = []
            while piece := os.read(fd, _READ_PIECE):
                parts.append(piece)
        finally:
            os.close(fd)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def read_cached(self, key: str, max_size: int) -> bytearray | None:
        """The object's bytes if they are all in the page cache and at most `max_size`, read
        without waiting on the disk (opened with open_cached(), read with preadv2
        RWF_NOWAIT); None if there is no such file. Raises BlockingIOError where the open or
        the read would wait, the object is larger, or the file system cannot read without
        waiting (remembered): the caller then uses read(), in a worker thread."""
        if not self.nowait:
            raise BlockingIOError(errno.EAGAIN, "no non-blocking reads here")
        try:
            fd = open_cached(f"{self.root}/{key}", _READ_FLAGS)
        except FileNotFoundError:
            return None
        try:
            size = os.fstat(fd).st_size
            if size > max_size:
                raise BlockingIOError(errno.EAGAIN, "larger than an inline read")
            buf = bytearray(size + 1)  # one byte more: a file that grew is noticed
            try:
                n = os.preadv(fd, [buf], 0, os.RWF_NOWAIT)
            except OSError as e:
                if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                self.nowait = False
                raise BlockingIOError(errno.EAGAIN, "no non-blocking reads here") from e
            if n != size:
                raise BlockingIOError(errno.EAGAIN, "partly cached, or changed")
        finally:
            os.close(fd)
        del buf[n:]  # in place, no copy
        return buf

    def write(self, key: str, parts: Parts) -> None:
        """Atomically create or replace the object with the concatenated parts."""
        size = sum(len(p) for p in parts)
        direct = self.direct and DIRECT_MIN <= size <= DIRECT_MAX
        try:
            self._write(key, parts, size, direct)
        except OSError as e:
            if not (direct and e.errno == errno.EINVAL):
                raise
            self.direct = False  # the file system refuses O_DIRECT (at open or at write)
            self._write(key, parts, size, False)

    def _write(self, key: str, parts: Parts, size: int, direct: bool) -> None:
        path = f"{self.root}/{key}"
        staging = ""
        try:
            staging, fd = _create_staging(path, direct)
            try:
                if direct:
                    _write_direct(fd, parts, size)
                else:
                    write_all(fd, parts)
                    if size >= EARLY_WRITEBACK:
                        _start_writeback(fd)
            finally:
                os.close(fd)
            os.rename(staging, path)
        except BaseException:
            if staging:
                with contextlib.suppress(OSError):
                    os.unlink(staging)
            raise

    def link(self, key: str, new_key: str) -> bool:
        """Make `new_key` name the file `key` names (atomically replacing what it named),
        written now as far as its modification time tells; False if `key` is absent."""
        path = f"{self.root}/{new_key}"
        staging = f"{path}#{_STAGING_TOKEN}{next(_staging_numbers)}"
        try:
            os.link(f"{self.root}/{key}", staging, follow_symlinks=False)
        except FileNotFoundError:
            if not os.path.lexists(f"{self.root}/{key}"):
                return False
            os.makedirs(os.path.dirname(path), exist_ok=True)
            return self.link(key, new_key)
        try:
            os.utime(staging)
            os.rename(staging, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(staging)
            raise
        return True

    def sync(self) -> None:
        """Durability barrier: everything written below the root before the call is on disk
        when it returns; concurrent callers share one syncfs (group commit)."""
        self._group_sync.sync()


def syncfs(path: str) -> None:
    """Write everything cached for the file system holding `path` to disk, and wait."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if libc().syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
    finally:
        os.close(fd)


def _create_staging(path: str, direct: bool) -> tuple[str, int]:
    """A new, empty staging file next to `path` (its parents made if missing): (name, fd).
    Names are unique per process (a random token) and never reuse a leftover of a crashed
    writer, nor follow a link planted under such a name."""
    flags = _STAGING_FLAGS | (os.O_DIRECT if direct else 0)
    for _ in range(_STAGING_ATTEMPTS):
        staging = f"{path}#{_STAGING_TOKEN}{next(_staging_numbers)}"
        try:
            return staging, os.open(staging, flags, 0o644)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        except FileExistsError:
            pass
    staging = f"{path}#{_STAGING_TOKEN}{next(_staging_numbers)}"
    return staging, os.open(staging, flags, 0o644)  # an error now is real


def write_all(fd: int, parts: Parts) -> None:
    """Write the parts in order (writev, up to _IOV_MAX parts per call)."""
    for start in range(0, len(parts), _IOV_MAX):
        group = parts[start : start + _IOV_MAX]
        size = sum(len(p) for p in group)
        written = os.writev(fd, group)
        if written < size:  # a short write (signal, full disk): finish piece by piece
            rest = memoryview(b"".join(group))[written:]
            while rest:
                rest = rest[os.write(fd, rest) :]


_buffers = threading.local()


def _aligned_buffer(size: int) -> mmap.mmap:
    """This thread's page-aligned scratch buffer of at least `size` bytes."""
    buf: mmap.mmap | None = getattr(_buffers, "buf", None)
    if buf is None or len(buf) < size:
        if buf is not None:
            buf.close()
        buf = _buffers.buf = mmap.mmap(-1, max(size, 1 << 20))
    return buf


def _write_direct(fd: int, parts: Parts, size: int) -> None:
    """Write `size` bytes of parts to an O_DIRECT file: the aligned bulk from an aligned
    buffer, then the last partial block after switching the file to buffered I/O."""
    buf = _aligned_buffer(size)
    offset = 0
    for part in parts:
        buf[offset : offset + len(part)] = part
        offset += len(part)
    view = memoryview(buf)
    try:
        write_aligned(fd, view[:size])
    finally:
        view.release()


def set_direct(fd: int, direct: bool) -> None:
    """Switch an open file to O_DIRECT or back to buffered I/O (EINVAL where refused)."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_DIRECT if direct else flags & ~os.O_DIRECT)


def write_aligned(fd: int, data: memoryview) -> None:
    """Write `data` (page-aligned memory) to an O_DIRECT file whose offset is a multiple of
    ALIGN: the aligned bulk directly, a last partial block after switching the file to
    buffered I/O (so only the file's last write may be partial)."""
    bulk = len(data) - len(data) % ALIGN
    done = 0
    while done < bulk:
        done += os.write(fd, data[done:bulk])
    if bulk < len(data):
        set_direct(fd, False)
        while done < len(data):
            done += os.write(fd, data[done:])


class FileLock:
    """An exclusive flock on a lock file, taken without waiting (GcBusy-style callers turn
    BlockingIOError into their own error); the kernel drops it when the holder dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def __enter__(self) -> FileLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class GroupCommit:
    """Coalesces concurrent calls of a durability barrier: a caller waits for a barrier that
    started after its call; one barrier serves every caller that arrived while the previous
    one ran."""

    def __init__(self, barrier: Callable[[], None]) -> None:
        self._barrier = barrier
        self._cond = threading.Condition()
        self._started = 0  # generations started so far
        self._done = 0  # highest generation completed
        self._running = False

    def sync(self) -> None:
        with self._cond:
            target = self._started + 1  # the first generation starting after this call
            while self._done < target:
                if not self._running:
                    self._running = True
                    self._started += 1
                    generation = self._started
                    break
                self._cond.wait()
            else:
                return
        try:
            self._barrier()
        finally:
            with self._cond:
                self._running = False
                self._done = max(self._done, generation)
                self._cond.notify_all()


_SYS_OPENAT2 = 437  # the same number on every architecture (added after the table unification)
_AT_FDCWD = -100
_RESOLVE_CACHED = 0x20
_cached_lookups = True  # until the kernel refuses openat2 or RESOLVE_CACHED (before 5.12)


class _OpenHow(ctypes.Structure):
    _fields_ = (
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    )


def open_cached(path: str, flags: int) -> int:
    """os.open(path, flags), but raising BlockingIOError instead of reading a directory or
    inode from the disk to find the file (openat2 RESOLVE_CACHED): an open that stays off
    the disk is safe on an event loop. Kernels without it get a plain open (which may wait
    on the disk, as every open before)."""
    global _cached_lookups
    if _cached_lookups:
        how = _OpenHow(flags, 0, _RESOLVE_CACHED)
        # syscall() is variadic and reads every argument as a long: pass them as such
        fd = libc().syscall(
            ctypes.c_long(_SYS_OPENAT2),
            ctypes.c_long(_AT_FDCWD),
            ctypes.c_char_p(os.fsencode(path)),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err == errno.EAGAIN:
            raise BlockingIOError(err, "not in the kernel's lookup cache", path)
        if err not in (errno.ENOSYS, errno.EINVAL, errno.EPERM):  # EPERM: seccomp filters
            raise OSError(err, os.strerror(err), path)
        _cached_lookups = False
    return os.open(path, flags)


_libc_handle: Any = None


def libc() -> Any:
    """libc through the process's own symbols, its `syscall` returning a long (loaded once)."""
    global _libc_handle
    if _libc_handle is None:
        # the process's own symbols, libc's among them (find_library would run ldconfig)
        handle = ctypes.CDLL(None, use_errno=True)
        handle.syscall.restype = ctypes.c_long
        handle.sync_file_range.argtypes = [
            ctypes.c_int,
            ctypes.c_int64,
            ctypes.c_int64,
            ctypes.c_uint,
        ]
        _libc_handle = handle
    return _libc_handle


def _start_writeback(fd: int) -> None:
    """Start writing the file's dirty pages to disk, without waiting (a hint: errors surface
    at the durability barrier)."""
    libc().sync_file_range(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)
