"""Serving NARs (streamed, ranged or zstd-compressed) and receiving uploaded ones."""

from __future__ import annotations

import logging
import re

from aiohttp import web

from pytvix.castore.errors import CastoreError
from pytvix.castore.nodes import Node
from pytvix.narbridge.uploads import Upload
from pytvix.store.composition import StoreServices
from pytvix.store.nar.compression import (
    CompressionError,
    DecompressingSource,
    HashingSource,
    ZstdSink,
)
from pytvix.store.nar.errors import NarError
from pytvix.store.nar.ingest import ingest_nar
from pytvix.store.nar.render import render_nar
from pytvix.store.nar.seekable import SeekableNar

log = logging.getLogger(__name__)

NAR_HEADERS = {
    "Cache-Control": "max-age=31536000, immutable",
    "Content-Type": "application/x-nix-nar",
}
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class _ResponseSink:
    def __init__(self, response: web.StreamResponse) -> None:
        self._response = response

    async def write(self, data: bytes | bytearray | memoryview, /) -> None:
        await self._response.write(bytes(data) if isinstance(data, memoryview) else data)


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
    request: web.Request, node: Node, nar_size: int, compressed: bool, services: StoreServices
) -> web.StreamResponse:
    headers = dict(NAR_HEADERS)
    if request.method == "HEAD":
        if not compressed:
            headers["Content-Length"] = str(nar_size)
        return web.Response(headers=headers)
    range_header = request.headers.get("Range")
    if range_header and not compressed:
        wanted = _range(range_header, nar_size)
        if wanted is not None:
            return await _serve_range(
                request, node, services, nar_size=nar_size, wanted=wanted, headers=headers
            )
    response = web.StreamResponse(headers=headers)
    if not compressed:
        response.content_length = nar_size
    else:
        response.enable_chunked_encoding()
    await response.prepare(request)
    try:
        if compressed:
            await _render_compressed(response, node, services)
        else:
            await render_nar(_ResponseSink(response), node, services.blob, services.directory)
    except CastoreError as e:
        # headers are gone already; cutting the stream short tells the client
        log.error("rendering NAR for %s failed: %s", request.path, e)
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response


async def _render_compressed(
    response: web.StreamResponse, node: Node, services: StoreServices
) -> None:
    sink = ZstdSink(_ResponseSink(response))
    await render_nar(sink, node, services.blob, services.directory)
    await sink.finish()


async def _serve_range(
    request: web.Request,
    node: Node,
    services: StoreServices,
    *,
    nar_size: int,
    wanted: tuple[int, int],
    headers: dict[str, str],
) -> web.StreamResponse:
    try:
        nar = await SeekableNar.build(node, services.blob, services.directory)
    except CastoreError as e:
        log.error("NAR layout for %s: %s", request.path, e)
        raise web.HTTPInternalServerError() from e
    if nar.size != nar_size:
        raise web.HTTPBadRequest(text=f"narsize {nar_size} is wrong, the NAR has {nar.size}")
    start, end = wanted
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{nar_size}"
    response = web.StreamResponse(status=206, headers=headers)
    response.content_length = end - start
    await response.prepare(request)
    try:
        async for piece in nar.read_range(start, end):
            await response.write(piece)
    except CastoreError as e:
        log.error("serving %s bytes %d-%d: %s", request.path, start, end, e)
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response


class _LimitedSource:
    """The request body, refusing more than `limit` bytes."""

    def __init__(self, request: web.Request, limit: int) -> None:
        self._content = request.content
        self._limit = limit
        self._read = 0

    async def read(self, n: int, /) -> bytes:
        data = await self._content.read(n)
        self._read += len(data)
        if self._read > self._limit:
            raise web.HTTPRequestEntityTooLarge(max_size=self._limit, actual_size=self._read)
        return data


async def upload_nar(
    request: web.Request,
    name_hash: bytes,
    compression: str,
    services: StoreServices,
    limit: int,
) -> Upload:
    """Ingest an uploaded NAR; the name's hash is the NAR's sha256 for `.nar` and the file's
    (compressed bytes') sha256 otherwise, as `nix copy` names them."""
    raw = HashingSource(_LimitedSource(request, limit))
    try:
        node, nar_size, nar_sha256 = await ingest_nar(
            DecompressingSource(raw, compression), services.blob, services.directory
        )
    except (NarError, CompressionError) as e:
        raise web.HTTPBadRequest(text=f"invalid NAR: {e}") from e
    except CastoreError as e:
        log.error("ingesting uploaded NAR: %s", e)
        raise web.HTTPInternalServerError() from e
    expected = nar_sha256 if compression == "none" else raw.sha256.digest()
    if expected != name_hash:
        raise web.HTTPBadRequest(text="the uploaded data does not match the hash in its name")
    return Upload(node, nar_size, nar_sha256, raw.sha256.digest(), raw.size)
