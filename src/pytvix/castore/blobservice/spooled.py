"""Receiving a whole blob from a stream, verified (by its digest, or group by group with its
outboard), into memory or (past a limit) a temporary file, then reading it back seekably."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator

import blake3

from pytvix.buffers import Buffer, ByteQueue
from pytvix.castore.bao import GROUP, BaoError, BlobOutboard, verify_groups
from pytvix.castore.blobservice import BlobReader, BytesBlobReader
from pytvix.castore.blobservice.verified_readers import DamagedRanges
from pytvix.castore.digests import B3Digest
from pytvix.castore.errors import StorageError
from pytvix.castore.workers import run

SPOOL_MEMORY = 64 << 20
CHECK_BATCH = 64 * GROUP  # bytes checked at once against an outboard


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
    pieces: AsyncIterator[bytes | memoryview],
    digest: B3Digest,
    source: str,
    outboard: BlobOutboard | None = None,
) -> BlobReader:
    """Collect a blob's bytes, checking they hash to `digest` (StorageError otherwise). With
    the blob's outboard, bytes are checked group by group as they arrive: reads of the groups
    that do not verify are errors (naming the bytes), reads of the others succeed."""
    check = _GroupCheck(digest, outboard, source) if outboard is not None else None
    hasher = blake3.blake3()
    spool = _Spool()
    try:
        async for received in pieces:
            if check is None:
                hasher.update(received)
                await spool.add(received)
            else:
                for piece in await check.feed(received):
                    await spool.add(piece)
        if check is not None:
            for piece in await check.finish():
                await spool.add(piece)
        elif hasher.digest() != digest:
            raise StorageError(
                f"{source} sent data for blob {digest} that hashes to {B3Digest(hasher.digest())}"
            )
    except BaseException:
        spool.discard()
        raise
    return spool.reader() if check is None else check.reader(spool.reader())


class _Spool:
    """Received bytes in memory, moved to a temporary file past SPOOL_MEMORY."""

    def __init__(self) -> None:
        self.parts: list[Buffer] = []
        self.size = 0
        self.file: tempfile.SpooledTemporaryFile[bytes] | None = None

    async def add(self, piece: Buffer) -> None:
        self.size += len(piece)
        if self.file is not None:
            await run(self.file.write, piece)
            return
        self.parts.append(piece)
        if self.size > SPOOL_MEMORY:
            self.file = tempfile.SpooledTemporaryFile(max_size=0)  # noqa: SIM115 (kept open)
            for part in self.parts:
                await run(self.file.write, part)
            self.parts = []

    def discard(self) -> None:
        if self.file is not None:
            self.file.close()

    def reader(self) -> BlobReader:
        if self.file is not None:
            return TempFileBlobReader(self.file, self.size)
        parts = self.parts
        return BytesBlobReader(
            parts[0] if len(parts) == 1 and isinstance(parts[0], bytes) else b"".join(parts)
        )


class _GroupCheck:
    """Checks a blob's bytes, arriving in order, against its outboard in batches of groups,
    and notes the groups that do not verify (their bytes are kept, never returned)."""

    def __init__(self, digest: B3Digest, outboard: BlobOutboard, source: str) -> None:
        self.digest = digest
        self.outboard = outboard
        self.source = source
        self.pending = ByteQueue()
        self.checked = 0  # bytes checked so far
        self.bad: list[tuple[int, int]] = []  # byte spans that did not verify
        self.reason = ""

    async def feed(self, piece: bytes | memoryview) -> list[Buffer]:
        """Take received bytes; those now checked."""
        self.pending.append(piece)
        if self.checked + self.pending.size > self.outboard.size:
            raise StorageError(
                f"{self.source} sent more than the {self.outboard.size} bytes of blob {self.digest}"
            )
        out = []
        while self.pending.size >= CHECK_BATCH:
            out.append(await self._check(self.pending.take(CHECK_BATCH)))
        return out

    async def finish(self) -> list[Buffer]:
        if self.checked + self.pending.size != self.outboard.size:
            raise StorageError(f"{self.source} ended blob {self.digest} early")
        return (
            [await self._check(self.pending.take(self.pending.size))] if self.pending.size else []
        )

    def reader(self, inner: BlobReader) -> BlobReader:
        """`inner`, failing the reads that touch bytes which did not verify."""
        return DamagedRanges(inner, self.bad, self.reason) if self.bad else inner

    async def _check(self, data: Buffer) -> Buffer:
        start = self.checked
        self.checked += len(data)
        try:
            await run(self._verify, start, data)
        except BaoError:
            await run(self._find_bad_groups, start, data)
        return data

    def _verify(self, start: int, data: Buffer) -> None:
        verify_groups(self.digest, self.outboard.size, self.outboard.pairs, start // GROUP, data)

    def _find_bad_groups(self, start: int, data: Buffer) -> None:
        view = memoryview(data)
        for at in range(0, len(view), GROUP):
            try:
                self._verify(start + at, view[at : at + GROUP])
            except BaoError as e:
                lo, hi = start + at, start + min(at + GROUP, len(view))
                if self.bad and self.bad[-1][1] == lo:
                    self.bad[-1] = (self.bad[-1][0], hi)
                else:
                    self.bad.append((lo, hi))
                self.reason = self.reason or (
                    f"{self.source} sent bytes of blob {self.digest} that are not the blob's: {e}"
                )
