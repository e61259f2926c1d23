"""Serving NARs (streamed, ranged or zstd-compressed) and receiving uploaded ones."""

from __future__ import annotations

import logging
import re

from aiohttp import web

from pytvix.castore.errors import CastoreError
from pytvix.castore.fetch import MissingContentError, fetch_tree
from pytvix.castore.nodes import Node
from pytvix.narbridge.limits import StallWatchdog
from pytvix.narbridge.uploads import Upload
from pytvix.store.composition import StoreServices
from pytvix.store.nar.compression import (
    CompressionError,
    DecompressedTooLarge,
    DecompressingSource,
    HashingSource,
    ZstdSink,
)
from pytvix.store.nar.errors import NarError
from pytvix.store.nar.ingest import ingest_nar
from pytvix.store.nar.io import ByteSink
from pytvix.store.nar.render import render_nar
from pytvix.store.nar.seekable import SeekableNar
from pytvix.store.nar.sizes import nar_size

log = logging.getLogger(__name__)

NAR_HEADERS = {
    "Cache-Control": "max-age=31536000, immutable",
    "Content-Type": "application/x-nix-nar",
}
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class _ResponseSink:
    """Writes to the response, each write under the stall deadline."""

    def __init__(
        self, request: web.Request, response: web.StreamResponse, watchdog: StallWatchdog
    ) -> None:
        self._request = request
        self._response = response
        self._watchdog = watchdog

    async def write(self, data: bytes | bytearray | memoryview, /) -> None:
        await self._watchdog.guard(self._request, self._response.write(data))


def _range(header: str, size: int) -> tuple[int, int] | None:
    """[start, end) of a single `bytes=` range, or None for headers we do not serve as a
    range (several ranges); raises 416 for unsatisfiable ones."""
    match = RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if first:
        start = int(first)
        end = min(int(last) + 1, size) if last else size
    elif last:
        start, end = max(size - int(last), 0), size
    else:
        return None
    if start >= size or start >= end:
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    return start, end


async def serve_nar(
    request: web.Request,
    node: Node,
    claimed_size: int,
    *,
    compressed: bool,
    services: StoreServices,
    watchdog: StallWatchdog,
) -> web.StreamResponse:
    """The NAR of `node`, whose size the URL claims: a URL whose size is not the NAR's is a
    404 (serving it would truncate the NAR or promise bytes that never come)."""
    try:
        closure = await fetch_tree(services.directory, node)
    except MissingContentError as e:
        raise web.HTTPNotFound(text=str(e)) from e
    except CastoreError as e:
        log.error("fetching the directories of %s: %s", request.path, e)
        raise web.HTTPInternalServerError() from e
    size = nar_size(node, closure)
    if size != claimed_size:
        raise web.HTTPNotFound(text=f"no NAR of {claimed_size} bytes here (this one has {size})")
    headers = dict(NAR_HEADERS)
    if request.method == "HEAD":
        if not compressed:
            headers["Content-Length"] = str(size)
        return web.Response(headers=headers)
    range_header = request.headers.get("Range")
    if range_header and not compressed:
        wanted = _range(range_header, size)
        if wanted is not None:
            nar = await SeekableNar.build(node, services.blob, services.directory, closure)
            return await _serve_range(request, nar, wanted, headers, watchdog)
    response = web.StreamResponse(headers=headers)
    if not compressed:
        response.content_length = size
    else:
        response.enable_chunked_encoding()
    await response.prepare(request)
    sink: ByteSink = _ResponseSink(request, response, watchdog)
    try:
        if compressed:
            zstd = ZstdSink(sink)
            await render_nar(zstd, node, services.blob, services.directory, closure)
            await zstd.finish()
        else:
            await render_nar(sink, node, services.blob, services.directory, closure)
    except CastoreError as e:
        # headers are gone already; cutting the stream short tells the client
        log.error("rendering NAR for %s failed: %s", request.path, e)
        if request.transport is not None:
            request.transport.close()
        return response
    except ConnectionResetError:
        return response  # the client went away (or stalled and was dropped)
    await response.write_eof()
    return response


async def _serve_range(
    request: web.Request,
    nar: SeekableNar,
    wanted: tuple[int, int],
    headers: dict[str, str],
    watchdog: StallWatchdog,
) -> web.StreamResponse:
    start, end = wanted
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{nar.size}"
    response = web.StreamResponse(status=206, headers=headers)
    response.content_length = end - start
    await response.prepare(request)
    sink = _ResponseSink(request, response, watchdog)
    try:
        async for piece in nar.read_range(start, end):
            await sink.write(piece)
    except CastoreError as e:
        log.error("serving %s bytes %d-%d: %s", request.path, start, end, e)
        if request.transport is not None:
            request.transport.close()
        return response
    except ConnectionResetError:
        return response
    await response.write_eof()
    return response


class _LimitedSource:
    """The request body, refusing more than `limit` bytes, each read under the stall
    deadline."""

    def __init__(self, request: web.Request, limit: int, watchdog: StallWatchdog) -> None:
        self._request = request
        self._limit = limit
        self._watchdog = watchdog
        self._read = 0

    async def read(self, n: int, /) -> bytes:
        data = await self._watchdog.guard(self._request, self._request.content.read(n))
        self._read += len(data)
        if self._read > self._limit:
            raise web.HTTPRequestEntityTooLarge(max_size=self._limit, actual_size=self._read)
        return data


async def upload_nar(
    request: web.Request,
    name_hash: bytes,
    compression: str,
    *,
    services: StoreServices,
    limit: int,
    watchdog: StallWatchdog,
) -> Upload:
    """Ingest an uploaded NAR of at most `limit` bytes (as sent, and decompressed); the name's
    hash is the NAR's sha256 for `.nar` and the file's (compressed bytes') sha256 otherwise,
    as `nix copy` names them."""
    raw = HashingSource(_LimitedSource(request, limit, watchdog))
    try:
        node, nar_size, nar_sha256 = await ingest_nar(
            DecompressingSource(raw, compression, limit), services.blob, services.directory
        )
    except DecompressedTooLarge as e:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=limit + 1) from e
    except (NarError, CompressionError) as e:
        raise web.HTTPBadRequest(text=f"invalid NAR: {e}") from e
    except CastoreError as e:
        log.error("ingesting uploaded NAR: %s", e)
        raise web.HTTPInternalServerError() from e
    expected = nar_sha256 if compression == "none" else raw.sha256.digest()
    if expected != name_hash:
        raise web.HTTPBadRequest(text="the uploaded data does not match the hash in its name")
    return Upload(node, nar_size, nar_sha256, raw.sha256.digest(), raw.size)
