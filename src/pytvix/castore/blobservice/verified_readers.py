"""Readers that check bytes fetched from an untrusted source against the blob's digest before
returning them.

- `BaoVerifiedReader`: with the blob's outboard, every read (at any offset) is widened to
  whole 16 KiB groups and checked with castore.bao before a byte is returned, so bytes that
  are not the blob's (a corrupt chunk, chunks of another blob listed under this digest) are
  an error for exactly the groups they spoil.
- `DamagedRanges`: bytes received whole, some of which did not verify: reads touching
  those fail, the others pass.
- `WholeBlobCheck`: without an outboard, reads pass through, and while they run from the
  start without a jump the blob is hashed as it goes: the read that reaches the end returns
  nothing unless the whole blob hashes to its digest. A reader that jumps around gets only
  what its source checks (per chunk digest).
"""

from __future__ import annotations

import blake3

from pytvix.castore.bao import BaoError, BlobOutboard, group_span, verify_groups
from pytvix.castore.blobservice import BlobReader, PositionalReader
from pytvix.castore.digests import B3Digest
from pytvix.castore.errors import StorageError
from pytvix.castore.workers import run

INLINE_VERIFY = 64 << 10  # reads up to this size are verified on the event loop


class BaoVerifiedReader(PositionalReader):
    def __init__(
        self, digest: B3Digest, outboard: BlobOutboard, inner: BlobReader, source: str
    ) -> None:
        """Read the blob `digest` through `inner` (its bytes from `source`, unchecked)."""
        self.digest = digest
        self.outboard = outboard
        self.size = outboard.size
        self._inner = inner
        self._source = source

    async def read_at(self, offset: int, n: int) -> bytes:
        end = min(self.size, offset + max(n, 0))
        if offset >= end:
            return b""
        first, start, stop = group_span(self.size, offset, end)
        data = await self._inner.read_at(start, stop - start)
        try:
            if len(data) != stop - start:
                raise BaoError(f"{len(data)} bytes arrived instead of {stop - start}")
            if len(data) > INLINE_VERIFY:
                await run(self._verify, first, data)
            else:
                self._verify(first, data)
        except BaoError as e:
            raise StorageError(
                f"{self._source} sent bytes {start}-{stop} of blob {self.digest} that are "
                f"not the blob's: {e}"
            ) from e
        return data if (start, stop) == (offset, end) else data[offset - start : end - start]

    def _verify(self, first: int, data: bytes) -> None:
        verify_groups(self.digest, self.size, self.outboard.pairs, first, data)

    async def close(self) -> None:
        await self._inner.close()


class WholeBlobCheck(PositionalReader):
    def __init__(self, digest: B3Digest, inner: BlobReader, source: str) -> None:
        """Pass reads of the blob `digest` through `inner` (bytes from `source`)."""
        self.digest = digest
        self.size = inner.size
        self._inner = inner
        self._source = source
        self._hasher: blake3.blake3 | None = blake3.blake3()
        self._hashed = 0  # bytes hashed: reads from here on continue the hash

    async def read_at(self, offset: int, n: int) -> bytes:
        data = await self._inner.read_at(offset, n)
        if self._hasher is None or offset > self._hashed or not data:
            if data and offset > self._hashed:
                self._hasher = None  # a jump: the whole blob can no longer be checked
            return data
        fresh = memoryview(data)[self._hashed - offset :]
        if len(fresh) > INLINE_VERIFY:
            await run(self._hasher.update, fresh)
        else:
            self._hasher.update(fresh)
        self._hashed += len(fresh)
        if self._hashed == self.size and self._hasher.digest() != self.digest:
            raise StorageError(
                f"{self._source} sent chunks that do not make up blob {self.digest}: they "
                f"hash to {B3Digest(self._hasher.digest())}"
            )
        return data

    async def close(self) -> None:
        await self._inner.close()


class DamagedRanges(PositionalReader):
    def __init__(self, inner: BlobReader, spans: list[tuple[int, int]], reason: str) -> None:
        """Reads of `inner` that touch one of the byte `spans` raise StorageError
        (`reason`, and the span); the others pass."""
        self.size = inner.size
        self._inner = inner
        self._spans = spans
        self._reason = reason

    async def read_at(self, offset: int, n: int) -> bytes:
        end = min(self.size, offset + max(n, 0))
        for lo, hi in self._spans:
            if lo < end and offset < hi:
                raise StorageError(f"{self._reason} (bytes {lo}-{hi})")
        return await self._inner.read_at(offset, n)

    async def close(self) -> None:
        await self._inner.close()
