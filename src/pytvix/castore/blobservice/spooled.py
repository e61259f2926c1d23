"""Receiving a whole blob from a stream, verified, into memory or (past a limit) a temporary
file, then reading it back seekably."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator

import blake3

from pytvix.castore.blobservice import BlobReader, BytesBlobReader
from pytvix.castore.digests import B3Digest
from pytvix.castore.errors import StorageError
from pytvix.castore.workers import run

SPOOL_MEMORY = 64 << 20


class TempFileBlobReader(BlobReader):
    """A reader over a blob spooled to an (already unlinked) temporary file."""

    def __init__(self, file: tempfile.SpooledTemporaryFile[bytes], size: int) -> None:
        self._file = file
        self._pos = 0
        self.size = size

    async def read(self, n: int = -1) -> bytes:
        def read_at(pos: int, count: int) -> bytes:
            self._file.seek(pos)
            return self._file.read(count)

        data = await run(read_at, self._pos, n if n >= 0 else self.size)
        self._pos += len(data)
        return data

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._pos = self._resolve_seek(offset, whence)
        return self._pos

    def tell(self) -> int:
        return self._pos

    async def close(self) -> None:
        self._file.close()


async def receive_blob(
    pieces: AsyncIterator[bytes | memoryview], digest: B3Digest, source: str
) -> BlobReader:
    """Collect a blob's bytes, checking they hash to `digest` (StorageError otherwise)."""
    hasher = blake3.blake3()
    parts: list[bytes | memoryview] = []
    size = 0
    spool: tempfile.SpooledTemporaryFile[bytes] | None = None
    try:
        async for piece in pieces:
            hasher.update(piece)
            size += len(piece)
            if spool is None:
                parts.append(piece)
                if size > SPOOL_MEMORY:
                    spool = tempfile.SpooledTemporaryFile(max_size=0)  # noqa: SIM115 (kept open)
                    for part in parts:
                        await run(spool.write, part)
                    parts = []
            else:
                await run(spool.write, piece)
        if hasher.digest() != digest:
            raise StorageError(
                f"{source} sent data for blob {digest} that hashes to {B3Digest(hasher.digest())}"
            )
    except BaseException:
        if spool is not None:
            spool.close()
        raise
    if spool is None:
        whole = parts[0] if len(parts) == 1 and isinstance(parts[0], bytes) else b"".join(parts)
        return BytesBlobReader(whole)
    return TempFileBlobReader(spool, size)
