"""Receiving a whole blob from a stream, verified (by its digest, or group by group with its
outboard), into memory or (past a limit) a temporary file, then reading it back seekably;
or, with its outboard, reading it from the stream as it arrives (StreamedBlobReader)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Callable

import blake3

from pytvix.buffers import Buffer, ByteQueue
from pytvix.castore.bao import GROUP, BaoError, BlobOutboard, verify_groups
from pytvix.castore.blobservice import BlobReader, BytesBlobReader, PositionalReader
from pytvix.castore.blobservice.verified_readers import DamagedRanges
from pytvix.castore.digests import B3Digest
from pytvix.castore.errors import StorageError
from pytvix.castore.workers import run

SPOOL_MEMORY = 64 << 20
CHECK_BATCH = 64 * GROUP  # bytes checked at once against an outboard
SKIP_AHEAD = 8 << 20  # a streamed read this far ahead of the stream skips to it


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


class StreamedBlobReader(PositionalReader):
    """A blob without chunks, read with its outboard from a stream of the whole blob: while
    reads go on where the previous one ended (or a little ahead: SKIP_AHEAD), they take from
    the stream, each batch of groups checked before a byte of it is returned, holding about
    one batch. The first read anywhere else receives the whole blob (receive_blob, from a
    new stream) and reads from that. Reads of groups that do not verify are StorageErrors
    naming the bytes. Its read_at is not for concurrent calls (callers serialize them)."""

    def __init__(
        self,
        open_stream: Callable[[], AsyncIterator[bytes | memoryview]],
        digest: B3Digest,
        outboard: BlobOutboard,
        source: str,
    ) -> None:
        self.size = outboard.size
        self._open_stream = open_stream
        self._digest = digest
        self._outboard = outboard
        self._source = source
        self._stream: AsyncIterator[bytes | memoryview] | None = None
        self._check = _GroupCheck(digest, outboard, source)
        self._ready = ByteQueue()  # checked, from self._at on
        self._at = 0  # blob offset of the first byte in self._ready
        self._ended = False
        self._whole: BlobReader | None = None  # the blob received whole, after a jump

    async def read_at(self, offset: int, n: int) -> bytes:
        end = min(self.size, offset + max(n, 0))
        if offset >= end:
            return b""
        if self._whole is None and not self._at <= offset <= self._at + SKIP_AHEAD:
            await self._receive_whole()
        if self._whole is not None:
            return await self._whole.read_at(offset, end - offset)
        while self._at + self._ready.size < end and not self._ended:
            await self._receive()
        self._ready.take(offset - self._at)  # skipped ahead
        self._at = offset
        for lo, hi in self._check.bad:
            if lo < end and offset < hi:
                raise StorageError(f"{self._check.reason} (bytes {lo}-{hi})")
        data = bytes(self._ready.take(end - offset))
        self._at = end
        return data

    async def _receive(self) -> None:
        if self._stream is None:
            self._stream = self._open_stream()
        piece = await anext(self._stream, None)
        if piece is None:
            self._ended = True
            checked = await self._check.finish()
        else:
            checked = await self._check.feed(piece)
        for data in checked:
            self._ready.append(data)

    async def _receive_whole(self) -> None:
        await self._close_stream()
        self._ready = ByteQueue()
        stream = self._open_stream()
        try:
            self._whole = await receive_blob(stream, self._digest, self._source, self._outboard)
        finally:
            await _aclose(stream)

    async def _close_stream(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            await _aclose(stream)

    async def close(self) -> None:
        await self._close_stream()
        if self._whole is not None:
            await self._whole.close()


async def _aclose(stream: AsyncIterator[bytes | memoryview]) -> None:
    if isinstance(stream, AsyncGenerator):
        await stream.aclose()
