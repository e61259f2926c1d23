"""BlobService: bytes by blake3 digest, optionally split into verified chunks.

Contract shared by every backend (the contract suite in `pytvix.testing.contract` checks it):
- `has(d)` is True iff `open_read(d)` returns a reader.
- `open_read(d)` returns a seekable reader over exactly the bytes whose blake3 is `d`, or None.
  Backends that fetch data from storage verify it before returning it; corrupt data raises
  StorageError, it is never returned.
- `open_write()` returns a writer; `close()` returns the blake3 of everything written and only
  then is the blob visible. A blob that was already stored is not rewritten.
- `chunks(d)` returns None if the blob is missing, [] if it is present without finer chunking,
  else the ordered (digest, size) list whose concatenation is the blob; each chunk digest can
  itself be read with `open_read`.
- `outboard(d)` returns None if the blob is missing, else its size and Bao outboard
  (castore.bao): stored beside the blob, or derived from its bytes (and kept, where the
  backend can).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from pytvix.castore.bao import BlobOutboard
from pytvix.castore.blobservice.outboards import derive_outboard
from pytvix.castore.digests import B3Digest

__all__ = [
    "BlobReader",
    "BlobService",
    "BlobWriter",
    "BytesBlobReader",
    "ChunkMeta",
    "PositionalReader",
    "put_blob",
    "read_blob",
    "read_range",
]


@dataclass(frozen=True, slots=True)
class ChunkMeta:
    """One chunk of a blob: its blake3 digest and length."""

    digest: B3Digest
    size: int


class BlobReader(ABC):
    """A seekable async reader over one blob. `size` is the blob's length."""

    size: int

    @abstractmethod
    async def read(self, n: int = -1) -> bytes:
        """Up to `n` bytes from the current position (all remaining if n < 0); b"" at the end."""

    @abstractmethod
    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the position (SEEK_SET, SEEK_CUR, SEEK_END); returns the new position.
        Seeking past the end is allowed (reads then return b"")."""

    @abstractmethod
    def tell(self) -> int: ...

    async def read_parts(self, n: int) -> list[bytes | memoryview]:
        """As read(n), as pieces whose concatenation is the data ([] at the end): readers
        holding the data in pieces spare the copy of joining them for callers that copy the
        data anyway."""
        data = await self.read(n)
        return [data] if data else []

    async def read_at(self, offset: int, n: int) -> bytes:
        """Up to `n` bytes at `offset`, independent of (and not moving) the position.
        Readers that can serve concurrent positional reads override this; the default
        seeks, reads and restores the position, so callers must not interleave it."""
        position = self.tell()
        await self.seek(offset)
        try:
            return await self.read(n)
        finally:
            await self.seek(position)

    async def close(self) -> None:  # noqa: B027 - optional hook, most readers hold nothing
        """Release resources; the reader is unusable afterwards."""

    def _resolve_seek(self, offset: int, whence: int) -> int:
        """Absolute target position of a seek; ValueError if it would be negative."""
        if whence == os.SEEK_SET:
            target = offset
        elif whence == os.SEEK_CUR:
            target = self.tell() + offset
        elif whence == os.SEEK_END:
            target = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        return target

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class PositionalReader(BlobReader):
    """Base of readers whose reads are positional: they implement `read_at` (safe to run
    concurrently unless the class says otherwise); `read`, `seek` and `tell` keep a position
    on top of it."""

    _pos = 0

    def tell(self) -> int:
        return self._pos

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._pos = self._resolve_seek(offset, whence)
        return self._pos

    async def read(self, n: int = -1) -> bytes:
        data = await self.read_at(self._pos, self.size - self._pos if n < 0 else n)
        self._pos += len(data)
        return data

    @abstractmethod
    async def read_at(self, offset: int, n: int) -> bytes: ...


class BytesBlobReader(BlobReader):
    """A reader over bytes already in memory."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._view = memoryview(data)
        self._pos = 0
        self.size = len(data)

    async def read(self, n: int = -1) -> bytes:
        start = self._pos
        end = self.size if n < 0 else min(self.size, start + n)
        if start >= end:
            return b""
        self._pos = end
        if start == 0 and end == self.size:
            return self._data
        return bytes(self._view[start:end])

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._pos = self._resolve_seek(offset, whence)
        return self._pos

    def tell(self) -> int:
        return self._pos

    async def read_at(self, offset: int, n: int) -> bytes:
        return self._data[offset : offset + max(n, 0)]


class BlobWriter(ABC):
    """Accepts the bytes of one blob. Nothing is visible until `close()` succeeds.

    After close, `new_bytes` tells how many of the bytes were not stored before (the rest was
    deduplicated), or is None if the backend cannot tell; writers that cut blobs into chunks
    set `chunk_counts` to (chunks stored, chunks already present).
    """

    new_bytes: int | None = None
    chunk_counts: tuple[int, int] | None = None

    @abstractmethod
    async def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append `data`; returns len(data)."""

    @abstractmethod
    async def close(self) -> B3Digest:
        """Finish the blob and return its digest. Calling close again returns the same digest."""

    async def abort(self) -> None:  # noqa: B027 - optional hook
        """Drop everything written so far (after an error); idempotent."""


class BlobService(ABC):
    """Blobs by blake3 digest. See the module docstring for the contract."""

    @abstractmethod
    async def has(self, digest: B3Digest) -> bool: ...

    @abstractmethod
    async def open_read(self, digest: B3Digest) -> BlobReader | None: ...

    @abstractmethod
    async def open_write(self) -> BlobWriter: ...

    async def chunks(self, digest: B3Digest) -> list[ChunkMeta] | None:
        """Default for backends without chunking: [] if present, None if missing."""
        return [] if await self.has(digest) else None

    async def outboard(self, digest: B3Digest) -> BlobOutboard | None:
        """The blob's size and outboard, or None if it is missing. The pairs are the
        backend's: whoever sends or uses them checks them against the digest. Default:
        derived by reading the whole blob (backends that keep outboards override this)."""
        reader = await self.open_read(digest)
        if reader is None:
            return None
        async with reader:
            return await derive_outboard(reader, digest)

    async def read_many(self, digests: Sequence[B3Digest], limit: int) -> list[bytes | None]:
        """Several (small) blobs whole, or None for missing ones; at most `limit` + 1 bytes of
        each are returned (enough to notice a blob larger than expected). Backends override
        this to batch the work."""
        out: list[bytes | None] = []
        for digest in digests:
            reader = await self.open_read(digest)
            if reader is None:
                out.append(None)
                continue
            async with reader:
                out.append(await reader.read(limit + 1))
        return out

    async def put_many(self, blobs: Sequence[bytes]) -> list[tuple[B3Digest, int | None]]:
        """Store several (small) blobs; returns each one's digest and how many of its bytes
        were new (None if unknown). Backends override this to batch the work."""
        out: list[tuple[B3Digest, int | None]] = []
        for data in blobs:
            writer = await self.open_write()
            await writer.write(data)
            out.append((await writer.close(), writer.new_bytes))
        return out

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections, files, threads. Idempotent."""


async def put_blob(service: BlobService, data: bytes | bytearray | memoryview) -> B3Digest:
    """Store `data` as one blob and return its digest."""
    writer = await service.open_write()
    try:
        await writer.write(data)
    except BaseException:
        await writer.abort()
        raise
    return await writer.close()


async def read_range(
    reader: BlobReader, start: int, end: int, piece: int = 1 << 20
) -> AsyncIterator[bytes]:
    """The bytes [start, end) of a blob in pieces of at most `piece`, by positional reads (a
    chunked blob's reader fetches only the chunks the range touches); stops early at the
    blob's end."""
    position = start
    while position < end:
        data = await reader.read_at(position, min(piece, end - position))
        if not data:
            return
        position += len(data)
        yield data


async def read_blob(service: BlobService, digest: B3Digest) -> bytes | None:
    """The whole blob, or None if it is missing. For small blobs and tests."""
    reader = await service.open_read(digest)
    if reader is None:
        return None
    async with reader:
        return await reader.read()
