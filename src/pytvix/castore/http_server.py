"""The castore over plain HTTP, read-only (README, "Protocol notes"): blobs (with Range), their
Bao outboards and verified ranges, directories and closures, by digest.

Every answer about a digest is immutable, so responses carry `ETag` and a year-long
`Cache-Control: public, immutable`, and any CDN or caching proxy can sit in front; the bytes
come from the store's verified readers, and outboards and encoded ranges are checked against
the digest before they go out, so nothing unverified is served. Errors: a digest not in the
documented form, a malformed `Range` or range query, or an unknown query parameter is 400;
a `Range` past the end is 416; an unknown digest 404 (not cacheable); a store error 500
(or, once the body has started, a cut connection).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web

from pytvix.castore.bao import BaoError, BlobOutboard, check_outboard_async
from pytvix.castore.bao_encode import encode_ranges
from pytvix.castore.bao_plan import encoded_size
from pytvix.castore.bao_ranges import CHUNK, ChunkRanges, RangeSpec, RangeSyntaxError
from pytvix.castore.blobservice import BlobReader, BlobService, read_range
from pytvix.castore.blobservice.outboards import OutboardCache
from pytvix.castore.canonical import varint
from pytvix.castore.digests import B3Digest
from pytvix.castore.directoryservice import DirectoryService, EncodedClosureSource
from pytvix.castore.errors import CastoreError

log = logging.getLogger(__name__)

PREFIX = "/castore"
IMMUTABLE = "public, max-age=31536000, immutable"
DIGEST = re.compile(r"^[0-9a-f]{64}$")
BYTE_RANGE = re.compile(r"^(\d*)-(\d*)$")
PIECE = 1 << 20
DIRECTORY_TYPE = "application/x-protobuf"
CLOSURE_TYPE = "application/x-protobuf; delimited=varint"

Guard = Callable[[web.Request, Awaitable[None]], Awaitable[None]]
"""Awaits one socket write of a response (e.g. under a stall deadline)."""


async def _unguarded(request: web.Request, step: Awaitable[None]) -> None:
    await step


def parse_digest(text: str) -> B3Digest:
    """A digest in its URL form (64 lowercase hex digits); 400 otherwise."""
    if not DIGEST.match(text):
        raise web.HTTPBadRequest(
            text=f"not a digest: {text[:80]!r} (expected 64 lowercase hex digits)"
        )
    return B3Digest.from_hex(text)


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """[start, end) of a `Range: bytes=` header, or None to send the whole blob (another
    unit, or several ranges). 400 if it does not parse, 416 if it starts past the end."""
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes":
        return None
    if "," in spec:
        return None
    match = BYTE_RANGE.match(spec.strip())
    if match is None or match.groups() == ("", ""):
        raise web.HTTPBadRequest(text=f"malformed Range: {header[:80]!r}")
    first, last = match.groups()
    if first:
        start = int(first)
        end = min(int(last) + 1, size) if last else size
        if last and int(last) < start:
            raise web.HTTPBadRequest(text=f"malformed Range: {header[:80]!r}")
    else:
        start, end = max(size - int(last), 0), size
    if start >= end:
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    return start, end


def range_spec(request: web.Request) -> RangeSpec | None:
    """The verified ranges a `.../bao` request asks for: `chunks=` or `bytes=` (not both),
    None for the whole blob. 400 for anything else."""
    query = request.query
    unknown = sorted(set(query) - {"chunks", "bytes"})
    if unknown or len(query) > 1:
        raise web.HTTPBadRequest(text="expected at most one of chunks=RANGES or bytes=RANGES")
    for key, unit in (("chunks", CHUNK), ("bytes", 1)):
        if key in query:
            try:
                return RangeSpec.parse(query[key], unit)
            except RangeSyntaxError as e:
                raise web.HTTPBadRequest(text=f"{key}=: {e}") from e
    return None


class CastoreHttp:
    """Handlers for `blobs` and `directories` below PREFIX; `guard` awaits each write."""

    def __init__(
        self, blobs: BlobService, directories: DirectoryService, guard: Guard = _unguarded
    ) -> None:
        self.blobs = blobs
        self.directories = directories
        self.guard = guard
        self._outboards = OutboardCache()

    def add_routes(self, app: web.Application) -> None:
        for path, handler, name in (
            ("/blob/{digest}", self.blob, "castore-blob"),
            ("/blob/{digest}/bao", self.bao, "castore-bao"),
            ("/blob/{digest}/outboard", self.outboard, "castore-outboard"),
            ("/directory/{digest}", self.directory, "castore-directory"),
            ("/directory/{digest}/closure", self.closure, "castore-closure"),
        ):
            app.router.add_get(PREFIX + path, handler, allow_head=True, name=name)

    def app(self) -> web.Application:
        """A standalone application with these routes."""
        app = web.Application()
        self.add_routes(app)
        return app

    # --- blobs -----------------------------------------------------------------------------

    async def blob(self, request: web.Request) -> web.StreamResponse:
        digest = parse_digest(request.match_info["digest"])
        etag = f'"{digest.hex()}"'
        reader = await self._open(digest)
        async with reader:
            if _not_modified(request, etag):
                return _not_modified_response(etag)
            size = reader.size
            wanted = None
            header = request.headers.get("Range")
            if header and request.headers.get("If-Range", etag) == etag:
                wanted = byte_range(header, size)
            start, end = wanted or (0, size)
            headers = _headers(etag, "application/octet-stream")
            headers["Accept-Ranges"] = "bytes"
            status = 200
            if wanted is not None:
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
            body = read_range(reader, start, end, PIECE)
            return await self._send(
                request, status, headers, length=end - start, first=b"", rest=body
            )

    async def bao(self, request: web.Request) -> web.StreamResponse:
        digest = parse_digest(request.match_info["digest"])
        spec = range_spec(request)
        board = await self._outboard(digest)
        ranges = spec.resolve(board.size) if spec else ChunkRanges.all(board.size)
        etag = f'"{digest.hex()}.bao' + (f'.{ranges.text()}"' if spec else '"')
        if _not_modified(request, etag):
            return _not_modified_response(etag)
        headers = _headers(etag, "application/octet-stream")
        length = encoded_size(board.size, ranges)
        if request.method == "HEAD":
            return await self._send(request, 200, headers, length=length, first=b"")
        reader = await self._open(digest)
        async with reader:
            stream = encode_ranges(digest, board, ranges, reader.read_at, PIECE)
            # the first piece holds the pairs on the path to the first range: a corrupt
            # stored outboard is still a clean 500 here
            async with _storage(request):
                first = await anext(stream)
            return await self._send(request, 200, headers, length=length, first=first, rest=stream)

    async def outboard(self, request: web.Request) -> web.StreamResponse:
        digest = parse_digest(request.match_info["digest"])
        etag = f'"{digest.hex()}.outboard"'
        board = await self._outboard(digest)
        if _not_modified(request, etag):
            return _not_modified_response(etag)
        async with _storage(request):
            await check_outboard_async(digest, board)
        headers = _headers(etag, "application/octet-stream")
        return await self._send(request, 200, headers, length=len(board.pairs), first=board.pairs)

    async def _open(self, digest: B3Digest) -> BlobReader:
        async with _storage(None):
            reader = await self.blobs.open_read(digest)
        if reader is None:
            raise _not_found(f"blob {digest.hex()} not found")
        return reader

    async def _outboard(self, digest: B3Digest) -> BlobOutboard:
        """The blob's outboard, kept in a bounded cache (a 1 GiB blob's is 4 MiB; fetching it
        for every range request cost more than the range): what the store still has is
        served from there. Callers check the pairs they send."""
        async with _storage(None):
            board = self._outboards.get(digest)
            if board is not None and await self.blobs.has(digest):
                return board
            board = await self.blobs.outboard(digest)
        if board is None:
            raise _not_found(f"blob {digest.hex()} not found")
        self._outboards.put(digest, board)
        return board

    # --- directories -----------------------------------------------------------------------

    async def directory(self, request: web.Request) -> web.StreamResponse:
        digest = parse_digest(request.match_info["digest"])
        etag = f'"{digest.hex()}"'
        async with _storage(request):
            found = await self.directories.get(digest)
        if found is None:
            raise _not_found(f"directory {digest.hex()} not found")
        if _not_modified(request, etag):
            return _not_modified_response(etag)
        data = found.encode()
        headers = _headers(etag, DIRECTORY_TYPE)
        return await self._send(request, 200, headers, length=len(data), first=data)

    async def closure(self, request: web.Request) -> web.StreamResponse:
        digest = parse_digest(request.match_info["digest"])
        etag = f'"{digest.hex()}.closure"'
        stream = self._encoded_closure(digest)
        async with _storage(request):
            first = await anext(stream, None)
        if first is None:
            raise _not_found(f"directory {digest.hex()} not found")
        if _not_modified(request, etag):
            return _not_modified_response(etag)
        headers = _headers(etag, CLOSURE_TYPE)
        return await self._send(request, 200, headers, length=None, first=first, rest=stream)

    async def _encoded_closure(self, root: B3Digest) -> AsyncIterator[bytes]:
        """The closure root first, each directory as varint length + canonical bytes."""
        if isinstance(self.directories, EncodedClosureSource):
            async for data in self.directories.get_recursive_encoded(root):
                yield varint(len(data)) + data
            return
        async for directory in self.directories.get_recursive(root):
            data = directory.encode()
            yield varint(len(data)) + data

    # --- sending ---------------------------------------------------------------------------

    async def _send(
        self,
        request: web.Request,
        status: int,
        headers: dict[str, str],
        *,
        length: int | None,
        first: bytes | memoryview,
        rest: AsyncIterator[bytes] | None = None,
    ) -> web.StreamResponse:
        """Send `first`, then the pieces of `rest` (an async generator is closed in any
        case)."""
        try:
            response = web.StreamResponse(status=status, headers=headers)
            if length is not None:
                response.content_length = length
            elif request.method != "HEAD":
                response.enable_chunked_encoding()
            await response.prepare(request)
            if request.method == "HEAD":
                return response
            try:
                if first:
                    await self.guard(request, response.write(first))
                if rest is not None:
                    async for piece in rest:
                        await self.guard(request, response.write(piece))
            except (CastoreError, BaoError) as e:
                # the headers are gone: a cut connection tells the client (and any cache)
                log.error("serving %s: %s", request.path, e)
                if request.transport is not None:
                    request.transport.abort()
                return response
            except ConnectionResetError:
                return response  # the client went away
            await response.write_eof()
            return response
        finally:
            if isinstance(rest, AsyncGenerator):
                await rest.aclose()


@asynccontextmanager
async def _storage(request: web.Request | None) -> AsyncIterator[None]:
    """A store error (or an outboard that does not verify) before the response started is
    logged and answered 500."""
    try:
        yield
    except (CastoreError, BaoError) as e:
        log.error("%s: %s", request.path if request else "castore", e)
        raise web.HTTPInternalServerError(text="storage error") from e


def _headers(etag: str, content_type: str) -> dict[str, str]:
    return {"ETag": etag, "Cache-Control": IMMUTABLE, "Content-Type": content_type}


def _not_modified(request: web.Request, etag: str) -> bool:
    wanted = request.headers.get("If-None-Match", "")
    return any(tag.strip() in (etag, "*", f"W/{etag}") for tag in wanted.split(",") if tag)


def _not_modified_response(etag: str) -> web.Response:
    return web.Response(status=304, headers={"ETag": etag, "Cache-Control": IMMUTABLE})


def _not_found(text: str) -> web.HTTPNotFound:
    return web.HTTPNotFound(text=text, headers={"Cache-Control": "no-cache"})
