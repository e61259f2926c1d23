"""BlobService client of the castore over plain HTTP (castore.http_server): read-only,
`castore+http(s)://host[:port][/prefix]`, with more mirrors as `?mirror=http(s)://...`
(TOML: `urls = [...]`). Every byte it returns was verified against the blob's digest: blobs
are fetched as Bao-encoded ranges (castore.bao_decode), never as plain bytes.

- Opening a blob fetches its first 16 KiB group and its last chunk (`bao?chunks=0-15,-1`):
  the whole of a small blob, and the proof of a large one's size.
- Reads that continue where the previous one ended stream the rest of the blob (`bao` for
  the whole blob, `bao?chunks=N-` from group-aligned chunk N), decoded and verified as it
  arrives, at most WINDOW bytes ahead of the reader; other reads fetch their own
  group-aligned range. The same reads ask for the same URLs, so caches in front hit.
- A mirror that is down, answers an error, or sends bytes that do not verify is logged and
  the next one is asked (for the rest of a stream, from where it broke). A range that no
  mirror serves verified is a StorageError naming the blob and the bytes; other ranges of
  the blob still read.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
from pytvix_bao import outboard_size

from pytvix.buffers import Buffer
from pytvix.castore.bao import GROUP, BaoError, BlobOutboard, check_outboard_async
from pytvix.castore.bao_decode import Piece, RangeDecoder
from pytvix.castore.bao_ranges import CHUNK, RangeSpec
from pytvix.castore.blobservice import (
    BlobReader,
    BlobService,
    BlobWriter,
    ChunkMeta,
    PositionalReader,
)
from pytvix.castore.blobservice.outboards import OutboardCache
from pytvix.castore.composition import Composition, ServiceConfig
from pytvix.castore.digests import B3Digest
from pytvix.castore.drivers.http import (
    BadResponse,
    Mirrors,
    MirrorsConfig,
    NotOnMirror,
    read_limited,
)
from pytvix.castore.errors import StorageError
from pytvix.castore.readahead import BUDGET

T = TypeVar("T")

OPENING = RangeSpec.chunks(0, GROUP // CHUNK) + RangeSpec.last_chunk()
RECEIVE = 1 << 20  # bytes taken from the socket at a time, decoded on the event loop
STREAM_MIN = 1 << 20  # sequential reads with more than this left stream the rest
WINDOW = 8 << 20  # bytes a stream decodes ahead of its reader (from the read-ahead budget)
SMALL_WINDOW = 1 << 20  # ... when the budget is spent
KEEP_BEHIND = 1 << 20  # streamed bytes kept behind the furthest read (concurrent readers)
CACHED_SPANS = 4  # verified ranges kept per reader


def blob_path(digest: B3Digest, suffix: str = "", spec: RangeSpec | None = None) -> str:
    return f"/castore/blob/{digest.hex()}{suffix}" + (f"?chunks={spec.text()}" if spec else "")


def _span(digest: B3Digest, spec: RangeSpec | None) -> str:
    return f"blob {digest}" + (f" chunks {spec.text()}" if spec else "")


@dataclass(frozen=True)
class Decoded:
    size: int
    pieces: list[Piece]
    size_proven: bool


def feed(decoder: RangeDecoder, data: bytes) -> list[Piece]:
    """Decode received bytes; BadResponse if they do not verify. On the event loop: decoding
    runs at over 1 GB/s, and handing each piece to a thread cost more than it saved (README,
    "Verified streaming")."""
    try:
        return decoder.feed(data)
    except BaoError as e:
        raise BadResponse(f"bytes that are not the blob's: {e}") from e


class HttpBlobService(BlobService):
    def __init__(self, mirrors: Mirrors) -> None:
        self.mirrors = mirrors
        self._outboards = OutboardCache()

    async def has(self, digest: B3Digest) -> bool:
        async def present(response: aiohttp.ClientResponse) -> bool:
            return True

        found = await self.mirrors.fetch(blob_path(digest), present, f"blob {digest}", "HEAD")
        return bool(found)

    async def chunks(self, digest: B3Digest) -> list[ChunkMeta] | None:
        return [] if await self.has(digest) else None

    async def open_read(self, digest: B3Digest) -> BlobReader | None:
        opened = await self.ranges(digest, OPENING)
        if opened is None:
            return None
        if not opened.size_proven:
            raise StorageError(f"{self.mirrors}: the size of blob {digest} did not verify")
        return HttpBlobReader(self, digest, opened)

    async def ranges(self, digest: B3Digest, spec: RangeSpec | None) -> Decoded | None:
        """The verified bytes of `spec` (None: the whole blob), from the first mirror whose
        answer verifies; None if no mirror has the blob."""

        async def decode(response: aiohttp.ClientResponse) -> Decoded:
            decoder = RangeDecoder(digest, spec)
            pieces: list[Piece] = []
            async for data in response.content.iter_chunked(RECEIVE):
                pieces += feed(decoder, data)
            try:
                decoder.finish()
            except BaoError as e:
                raise BadResponse(str(e)) from e
            assert decoder.size is not None
            return Decoded(decoder.size, pieces, decoder.size_proven)

        return await self.mirrors.fetch(
            blob_path(digest, "/bao", spec), decode, _span(digest, spec)
        )

    async def outboard(self, digest: B3Digest) -> BlobOutboard | None:
        """A mirror's outboard, checked against the digest (and kept in memory)."""
        found = self._outboards.get(digest)
        if found is not None:
            return found
        sized = await self.ranges(digest, RangeSpec.last_chunk())
        if sized is None:
            return None
        if not sized.size_proven:
            raise StorageError(f"{self.mirrors}: the size of blob {digest} did not verify")
        size = sized.size

        async def checked(response: aiohttp.ClientResponse) -> BlobOutboard:
            pairs = await read_limited(response, outboard_size(size))
            board = BlobOutboard(size, pairs)
            try:
                await check_outboard_async(digest, board)
            except BaoError as e:
                raise BadResponse(f"an outboard that does not verify: {e}") from e
            return board

        found = await self.mirrors.fetch(
            blob_path(digest, "/outboard"), checked, f"the outboard of blob {digest}"
        )
        if found is not None:
            self._outboards.put(digest, found)
        return found

    async def open_write(self) -> BlobWriter:
        raise StorageError(f"{self.mirrors}: the castore over HTTP is read-only")

    async def close(self) -> None:
        await self.mirrors.close()


class HttpBlobReader(PositionalReader):
    """See the module docstring; concurrent positional reads are fine."""

    def __init__(self, service: HttpBlobService, digest: B3Digest, opened: Decoded) -> None:
        self._service = service
        self.digest = digest
        self.size = opened.size
        self._cache: OrderedDict[int, Buffer] = OrderedDict(
            (offset, data) for offset, data in _merged(opened.pieces)
        )
        self._stream: _Stream | None = None
        self._next = 0  # where a sequential reader reads next

    async def read_at(self, offset: int, n: int) -> bytes:
        end = min(self.size, offset + max(n, 0))
        if offset >= end:
            return b""
        sequential, self._next = offset == self._next, end
        cached = self._cached(offset, end)
        if cached is not None:
            return cached
        stream = self._stream
        if stream is not None and not stream.serves(offset):
            await stream.close()
            stream = self._stream = None
        if stream is None and sequential and self.size - offset > STREAM_MIN:
            stream = self._stream = _Stream(self._service, self.digest, offset - offset % GROUP)
        if stream is not None:
            data = await stream.read(offset, end)
            if data is not None:
                return data
            await stream.close()  # no mirror could continue it: this read asks on its own
            if self._stream is stream:
                self._stream = None
        return await self._fetch(offset, end)

    async def _fetch(self, offset: int, end: int) -> bytes:
        start = offset - offset % GROUP
        stop = min(self.size, -(-end // GROUP) * GROUP)
        spec = RangeSpec.chunks(start // CHUNK, -(-stop // CHUNK))
        try:
            found = await self._service.ranges(self.digest, spec)
        except StorageError as e:
            raise StorageError(f"bytes {start}-{stop} of {e}") from e
        if found is None or found.size != self.size:
            raise StorageError(f"{self._service.mirrors}: blob {self.digest} vanished")
        [(at, data)] = _merged(found.pieces)
        self._cache[at] = data
        while len(self._cache) > CACHED_SPANS:
            self._cache.popitem(last=False)
        return bytes(memoryview(data)[offset - at : end - at])

    def _cached(self, offset: int, end: int) -> bytes | None:
        for at, data in self._cache.items():
            if at <= offset and end <= at + len(data):
                return bytes(memoryview(data)[offset - at : end - at])
        return None

    async def close(self) -> None:
        if self._stream is not None:
            await self._stream.close()
            self._stream = None


class _Stream:
    """The blob from byte `start` (group-aligned) to its end, decoded and verified by a
    background task as it arrives, from one mirror after another if need be."""

    def __init__(self, service: HttpBlobService, digest: B3Digest, start: int) -> None:
        self._service = service
        self._digest = digest
        self._pieces: deque[Piece] = deque()  # verified, from self._lo to self._hi
        self._lo = self._hi = start
        self._served = start  # furthest end read so far
        self._changed = asyncio.Condition()
        self._failed = False
        self._window = WINDOW if BUDGET.try_take(WINDOW) else SMALL_WINDOW
        self._task = asyncio.create_task(self._receive())

    def serves(self, offset: int) -> bool:
        """Whether a read at `offset` is (or will soon be) in this stream."""
        return not self._failed and self._lo <= offset <= self._hi + self._window

    async def read(self, offset: int, end: int) -> bytes | None:
        """The verified bytes [offset, end), once they arrived; None if the stream broke
        before."""
        async with self._changed:
            self._served = max(self._served, end)
            self._changed.notify_all()
            await self._changed.wait_for(lambda: self._hi >= end or self._failed)
            if self._hi < end:
                return None
            parts = [
                memoryview(data)[max(offset - at, 0) : end - at]
                for at, data in self._pieces
                if at < end and offset < at + len(data)
            ]
            while self._pieces and self._pieces[0][0] + len(self._pieces[0][1]) <= (
                self._served - KEEP_BEHIND
            ):
                at, data = self._pieces.popleft()
                self._lo = at + len(data)
            return b"".join(parts)

    async def _receive(self) -> None:
        mirrors = self._service.mirrors
        for base in mirrors.order():
            spec = RangeSpec.chunks(self._hi // CHUNK) if self._hi else None
            what = f"{_span(self._digest, spec)} (streamed)"
            try:
                async with mirrors.get(base, blob_path(self._digest, "/bao", spec)) as response:
                    await self._decode(response, RangeDecoder(self._digest, spec))
                return
            except NotOnMirror:
                continue
            except BadResponse as e:
                mirrors.failed(base, what, str(e))
        async with self._changed:
            self._failed = True
            self._changed.notify_all()

    async def _decode(self, response: aiohttp.ClientResponse, decoder: RangeDecoder) -> None:
        async for data in response.content.iter_chunked(RECEIVE):
            pieces = feed(decoder, data)
            async with self._changed:
                for at, verified in pieces:
                    if at >= self._hi:  # a restarted stream repeats nothing, but be sure
                        self._pieces.append((at, verified))
                        self._hi = at + len(verified)
                self._changed.notify_all()
                await self._changed.wait_for(lambda: self._hi - self._served < self._window)
        try:
            decoder.finish()
        except BaoError as e:
            raise BadResponse(str(e)) from e

    async def close(self) -> None:
        if not self._task.done():
            self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        if self._window == WINDOW:
            BUDGET.give(WINDOW)
            self._window = 0
        self._pieces.clear()


def _merged(pieces: list[Piece]) -> list[tuple[int, bytes]]:
    """Contiguous verified pieces joined into spans."""
    spans: list[tuple[int, list[Buffer]]] = []
    end = -1
    for at, data in pieces:
        if at == end:
            spans[-1][1].append(data)
        else:
            spans.append((at, [data]))
        end = at + len(data)
    return [(at, b"".join(parts)) for at, parts in spans]


@dataclass(frozen=True)
class HttpBlobServiceConfig(MirrorsConfig, ServiceConfig[BlobService]):
    """`castore+http(s)://host[:port][/prefix]` (`?mirror=http(s)://...`, repeatable); TOML:
    `urls`, the mirrors in order of preference."""

    urls: tuple[str, ...]

    async def build(self, instance: str, composition: Composition) -> BlobService:
        return HttpBlobService(self.mirrors())
