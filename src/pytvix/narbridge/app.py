"""The nar-bridge HTTP application (aiohttp): the read side of a Nix binary cache backed by
the store, and the upload side `nix copy --to http://...` uses (PROTOCOL.md §4.7-§4.8).

Reads are public. Uploads (PUT) may require a bearer token. A NAR upload is ingested while it
streams in (decompressed if it was compressed), its hash checked against its name, and kept in
a small in-memory table until the narinfo naming its NarHash arrives; only then is a PathInfo
stored, so a failed or mismatching upload leaves no store path behind.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass

from aiohttp import web

from pytvix.castore.errors import CastoreError
from pytvix.narbridge.names import (
    BadRequest,
    NotFound,
    castore_node,
    nar_upload_name,
    narinfo_digest,
)
from pytvix.narbridge.nar import serve_nar, upload_nar
from pytvix.narbridge.uploads import RecentUploads
from pytvix.nixcompat import nixbase32
from pytvix.nixcompat.narinfo import NarInfo, NarInfoError, parse_narinfo
from pytvix.nixcompat.signing import SigningKey
from pytvix.store.composition import StoreServices
from pytvix.store.narinfo import nar_url, to_narinfo
from pytvix.store.path_info import PathInfo

log = logging.getLogger(__name__)

MAX_NARINFO = 2 << 20
NARINFO_TYPE = "text/x-nix-narinfo"


@dataclass(frozen=True)
class BridgeConfig:
    priority: int = 39
    signing_key: SigningKey | None = None
    upload_token: str | None = None
    compression: str = "none"  # how NARs are served: "none" or "zstd"
    max_nar_upload: int = 64 << 30


class NarBridge:
    def __init__(self, services: StoreServices, config: BridgeConfig) -> None:
        self.services = services
        self.config = config
        self.uploads = RecentUploads()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_NARINFO)
        app.router.add_get("/", self.index, allow_head=True)
        app.router.add_get("/nix-cache-info", self.cache_info, allow_head=True)
        app.router.add_route("*", "/nar/{tail:.*}", self.nar)
        app.router.add_route("*", "/{name}", self.narinfo)
        return app

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(text="Hello from nar-bridge")

    async def cache_info(self, request: web.Request) -> web.Response:
        body = f"StoreDir: /nix/store\nWantMassQuery: 1\nPriority: {self.config.priority}\n"
        return web.Response(text=body, content_type="text/x-nix-cache-info")

    def _authorize(self, request: web.Request) -> None:
        token = self.config.upload_token
        if token is None:
            return
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise web.HTTPUnauthorized(
                text="uploads need a valid bearer token",
                headers={"WWW-Authenticate": 'Bearer realm="nar-bridge"'},
            )

    # --- narinfo ----------------------------------------------------------------------------

    async def narinfo(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if request.method in ("GET", "HEAD"):
            return await self._get_narinfo(request, name)
        if request.method == "PUT":
            self._authorize(request)
            return await self._put_narinfo(request, name)
        raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD", "PUT"])

    async def _get_narinfo(self, request: web.Request, name: str) -> web.StreamResponse:
        try:
            digest = narinfo_digest(name)
        except NotFound as e:
            raise web.HTTPNotFound() from e
        try:
            info = await self.services.path_info.get(digest)
        except CastoreError as e:
            log.error("narinfo %s: %s", name, e)
            raise web.HTTPInternalServerError() from e
        if info is None:
            raise web.HTTPNotFound()
        if request.method == "HEAD":
            return web.Response(content_type=NARINFO_TYPE)
        return web.Response(text=self.render(info), content_type=NARINFO_TYPE)

    def render(self, info: PathInfo) -> str:
        """The narinfo served for `info`, with our signature added if we have a key."""
        compression = self.config.compression
        url = nar_url(info.node, info.nar_size)
        if compression == "zstd":
            path, _, query = url.partition("?")
            url = f"{path}.zst?{query}"
        narinfo = to_narinfo(info, url, compression)
        key = self.config.signing_key
        if key is not None and all(s.name != key.name for s in narinfo.signatures):
            narinfo = narinfo.with_signature(key)
        return narinfo.render()

    async def _put_narinfo(self, request: web.Request, name: str) -> web.Response:
        try:
            digest = narinfo_digest(name)
        except NotFound as e:
            raise web.HTTPBadRequest(text=f"not a narinfo name: {name}") from e
        try:
            text = (await request.read()).decode()
            narinfo = parse_narinfo(text)
        except web.HTTPRequestEntityTooLarge:
            raise
        except (UnicodeDecodeError, NarInfoError) as e:
            raise web.HTTPBadRequest(text=f"invalid narinfo: {e}") from e
        if narinfo.store_path.digest != digest:
            raise web.HTTPBadRequest(text=f"narinfo for {narinfo.store_path} uploaded as {name}")
        info = self._path_info(narinfo)
        try:
            await self.services.path_info.put(info)
        except CastoreError as e:
            log.error("storing %s: %s", narinfo.store_path, e)
            raise web.HTTPInternalServerError() from e
        return web.Response()

    def _path_info(self, narinfo: NarInfo) -> PathInfo:
        upload = self.uploads.get(narinfo.nar_hash)
        if upload is None:
            raise web.HTTPBadRequest(text="unknown NARHash: upload the NAR first")
        if upload.nar_size != narinfo.nar_size:
            raise web.HTTPBadRequest(
                text=f"NarSize {narinfo.nar_size} does not match the NAR ({upload.nar_size})"
            )
        if narinfo.file_hash is not None and narinfo.file_hash != upload.file_sha256:
            raise web.HTTPBadRequest(text="FileHash does not match the uploaded file")
        if narinfo.file_size is not None and narinfo.file_size != upload.file_size:
            raise web.HTTPBadRequest(text="FileSize does not match the uploaded file")
        return PathInfo(
            store_path=narinfo.store_path,
            node=upload.node,
            references=narinfo.references,
            nar_size=upload.nar_size,
            nar_sha256=upload.nar_sha256,
            signatures=narinfo.signatures,
            deriver=narinfo.deriver,
            ca=narinfo.ca,
        )

    # --- NARs -------------------------------------------------------------------------------

    async def nar(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        if request.method == "PUT":
            self._authorize(request)
            return await self._put_nar(request, tail)
        if request.method not in ("GET", "HEAD"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD", "PUT"])
        prefix = "tvix-castore/"
        if not tail.startswith(prefix):
            raise web.HTTPNotFound()
        try:
            node, compressed = castore_node(tail[len(prefix) :])
        except NotFound as e:
            raise web.HTTPNotFound() from e
        except BadRequest as e:
            raise web.HTTPBadRequest(text=str(e)) from e
        try:
            nar_size = int(request.query["narsize"])
            if nar_size < 0:
                raise ValueError(nar_size)
        except (KeyError, ValueError) as e:
            raise web.HTTPBadRequest(text="narsize query parameter required") from e
        return await serve_nar(request, node, nar_size, compressed, self.services)

    async def _put_nar(self, request: web.Request, name: str) -> web.Response:
        try:
            file_hash, compression = nar_upload_name(name)
        except ValueError as e:
            raise web.HTTPUnauthorized(text=str(e)) from e  # upstream answers 401 here
        upload = await upload_nar(
            request, file_hash, compression, self.services, self.config.max_nar_upload
        )
        self.uploads.add(upload)
        log.info(
            "received NAR sha256:%s (%d bytes)",
            nixbase32.encode(upload.nar_sha256),
            upload.nar_size,
        )
        return web.Response()
