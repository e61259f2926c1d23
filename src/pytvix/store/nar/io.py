"""Async byte source / sink protocols used by the NAR reader and writer, and small adapters.

A `ByteSource` is anything with `async read(n)` returning up to n bytes and b"" at EOF
(`asyncio.StreamReader`, aiohttp's `StreamReader`, a `NarFile`). A `ByteSink` is anything with
`async write(data)` (aiohttp's `StreamResponse`, the adapters below).
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Protocol

from pytvix.buffers import Buffer

Bytes = Buffer
"""Bytes-like data accepted by sinks."""

DEFAULT_FILE_READ_SIZE = 1024 * 1024


class ByteSource(Protocol):
    """An async stream of bytes."""

    async def read(self, n: int, /) -> bytes:
        """Return between 1 and `n` bytes, or b"" at end of stream."""
        ...


class ByteSink(Protocol):
    """An async consumer of bytes."""

    async def write(self, data: Bytes, /) -> None:
        """Consume `data`. (The NAR writer never modifies a buffer after passing it on, so a
        sink may keep a reference instead of copying.)"""
        ...


class _BinaryReadable(Protocol):
    def read(self, n: int, /) -> bytes: ...


class _BinaryWritable(Protocol):
    def write(self, data: Bytes, /) -> object: ...


class BytesSource:
    """A `ByteSource` over in-memory data; `max_read` caps each read (to mimic a network)."""

    __slots__ = ("_data", "_max_read", "_pos")

    def __init__(self, data: Bytes, *, max_read: int | None = None) -> None:
        self._data = memoryview(data).cast("B")
        self._pos = 0
        self._max_read = max_read

    async def read(self, n: int = -1, /) -> bytes:
        if n < 0:
            n = len(self._data)
        if self._max_read is not None:
            n = min(n, self._max_read)
        chunk = bytes(self._data[self._pos : self._pos + n])
        self._pos += len(chunk)
        return chunk


class FileSource:
    """A `ByteSource` over a blocking binary file; reads happen in a worker thread, in pieces
    of at least `read_size` bytes, so small reads are served from an internal buffer."""

    __slots__ = ("_buf", "_file", "_pos", "_read_size")

    def __init__(self, file: _BinaryReadable, *, read_size: int = DEFAULT_FILE_READ_SIZE) -> None:
        self._file = file
        self._read_size = read_size
        self._buf = b""
        self._pos = 0

    async def read(self, n: int = -1, /) -> bytes:
        if n < 0:
            n = self._read_size
        if self._pos < len(self._buf):
            chunk = self._buf[self._pos : self._pos + n]
            self._pos += len(chunk)
            return chunk
        if n >= self._read_size:
            return await asyncio.to_thread(self._file.read, n)
        self._buf = await asyncio.to_thread(self._file.read, self._read_size)
        chunk = self._buf[:n]
        self._pos = len(chunk)
        return chunk


class FileSink:
    """A `ByteSink` writing to a blocking binary file in a worker thread."""

    __slots__ = ("_file",)

    def __init__(self, file: _BinaryWritable) -> None:
        self._file = file

    async def write(self, data: Bytes, /) -> None:
        await asyncio.to_thread(self._file.write, data)


class ListSink:
    """A `ByteSink` collecting everything written; `writes` counts the calls."""

    __slots__ = ("parts", "writes")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.writes = 0

    async def write(self, data: Bytes, /) -> None:
        self.writes += 1
        self.parts.append(bytes(data))

    def getvalue(self) -> bytes:
        """Everything written so far, concatenated."""
        return b"".join(self.parts)


class HashingSink:
    """A `ByteSink` computing sha256 and size of what passes through, forwarding to `inner`."""

    __slots__ = ("inner", "sha256", "size")

    def __init__(self, inner: ByteSink | None = None) -> None:
        self.inner = inner
        self.sha256 = hashlib.sha256()
        self.size = 0

    async def write(self, data: Bytes, /) -> None:
        self.sha256.update(data)
        self.size += data.nbytes if isinstance(data, memoryview) else len(data)
        if self.inner is not None:
            await self.inner.write(data)
