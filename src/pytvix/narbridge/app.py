"""The nar-bridge HTTP application (aiohttp): the read side of a Nix binary cache backed by
the store, and the upload side `nix copy --to http://...` uses (PROTOCOL.md §4.7-§4.8).

A binary cache is a trust anchor for every machine substituting from it, so:
- Reads are public; uploads (PUT) need the upload token unless the operator allowed
  anonymous uploads (narbridge.auth).
- A NAR upload is ingested while it streams in (decompressed, with a cap on its decompressed
  size), its hash checked against its name, and kept in a small in-memory table until the
  narinfo naming its NarHash arrives; only then is a PathInfo stored, so a failed or
  mismatching upload leaves no store path behind.
- A narinfo upload is checked against that NAR (NarHash, NarSize, FileHash, FileSize) and,
  for content-addressed paths, against its content address (the store path recomputed). Its
  `Sig:` lines are kept only if they verify against the keys the operator trusts.
- A store path, once stored, is never replaced: the same path info again is accepted, any
  other content for it is a 409 Conflict.
- With a signing key, the bridge signs only path infos whose NAR hash it computed or checked
  itself (an upload it received, or a NAR it rendered from the store and hashed).
Every request counts against a cap on requests in flight, and every transfer step that waits
on the client too long ends its connection (narbridge.limits).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass

from aiohttp import web

from pytvix.castore.errors import CastoreError
from pytvix.castore.http_server import CastoreHttp
from pytvix.castore.nodes import Node
from pytvix.castore.singleflight import SingleFlight
from pytvix.narbridge.auth import UploadPolicy
from pytvix.narbridge.limits import RequestLimiter, StallWatchdog
from pytvix.narbridge.names import (
    BadRequest,
    NotFound,
    castore_node,
    nar_upload_name,
    narinfo_digest,
)
from pytvix.narbridge.nar import serve_nar, upload_nar
from pytvix.narbridge.uploads import RecentUploads, SharedUploads
from pytvix.nixcompat import nixbase32
from pytvix.nixcompat.narinfo import NarInfo, NarInfoError, parse_narinfo
from pytvix.nixcompat.signing import SigningKey, VerifyingKey
from pytvix.observability import http_in_flight, http_middlewares
from pytvix.store.composition import StoreServices
from pytvix.store.content_address import ContentAddressError, verify_content_address
from pytvix.store.nar_calculation import SimpleRenderer
from pytvix.store.narinfo import nar_url, to_narinfo
from pytvix.store.path_info import PathInfo

log = logging.getLogger(__name__)

MAX_NARINFO = 2 << 20
NARINFO_TYPE = "text/x-nix-narinfo"
VERIFIED_CAPACITY = 100_000  # NAR hashes remembered as checked (about 200 bytes each)


@dataclass(frozen=True)
class BridgeConfig:
    priority: int = 39
    signing_key: SigningKey | None = None
    upload_token: str | None = None
    allow_anonymous_uploads: bool = False
    trusted_keys: tuple[VerifyingKey, ...] = ()  # for the Sig: lines of uploaded narinfos
    compression: str = "none"  # how NARs are served: "none" or "zstd"
    max_nar_size: int = 64 << 30  # an upload, as sent and decompressed
    max_requests: int = 512
    stall_timeout: float = 60.0
    access_log: bool = False  # a line per request (pytvix.observability.http)
    serve_metrics: bool = False  # GET /metrics (Prometheus) beside the cache
    serve_castore: bool = False  # the read-only castore below /castore/ (castore.http_server)
    uploads_dir: str | None = None  # uploads shared by worker processes (narbridge.uploads)


class NarBridge:
    def __init__(self, services: StoreServices, config: BridgeConfig) -> None:
        self.services = services
        self.config = config
        self.uploads: RecentUploads | SharedUploads = (
            SharedUploads(config.uploads_dir) if config.uploads_dir else RecentUploads()
        )
        self.policy = UploadPolicy(config.upload_token, config.allow_anonymous_uploads)
        self.limiter = RequestLimiter(config.max_requests)
        self.watchdog = StallWatchdog(config.stall_timeout)
        self.verified = VerifiedNars(VERIFIED_CAPACITY)
        self._calculator = services.path_info.nar_calculation_service() or SimpleRenderer(
            services.blob, services.directory
        )
        self._checks: SingleFlight[tuple[Node, int, bytes], bool] = SingleFlight()
        self._stores: dict[bytes, asyncio.Lock] = {}

    def app(self) -> web.Application:
        app = web.Application(
            client_max_size=MAX_NARINFO,
            middlewares=[*http_middlewares(), self.limiter.middleware],
        )
        http_in_flight(lambda: self.limiter.active)
        if self.config.serve_metrics:
            from pytvix.observability.endpoint import metrics_handler  # noqa: PLC0415

            app.router.add_get("/metrics", metrics_handler, name="metrics")
        if self.config.serve_castore:
            castore = CastoreHttp(self.services.blob, self.services.directory, self.watchdog.guard)
            castore.add_routes(app)
        app.router.add_get("/", self.index, allow_head=True, name="index")
        app.router.add_get("/nix-cache-info", self.cache_info, allow_head=True, name="cache-info")
        app.router.add_route("*", "/nar/{tail:.*}", self.nar, name="nar")
        app.router.add_route("*", "/{name}", self.narinfo, name="narinfo")
        app.on_cleanup.append(lambda _: self.watchdog.close())
        return app

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(text="Hello from nar-bridge")

    async def cache_info(self, request: web.Request) -> web.Response:
        body = f"StoreDir: /nix/store\nWantMassQuery: 1\nPriority: {self.config.priority}\n"
        return web.Response(text=body, content_type="text/x-nix-cache-info")

    # --- narinfo ----------------------------------------------------------------------------

    async def narinfo(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if request.method in ("GET", "HEAD"):
            return await self._get_narinfo(request, name)
        if request.method == "PUT":
            self.policy.check(request)
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
        sign = self.config.signing_key is not None and await self._nar_hash_checked(info)
        return web.Response(text=self.render(info, sign=sign), content_type=NARINFO_TYPE)

    def render(self, info: PathInfo, *, sign: bool) -> str:
        """The narinfo served for `info`, with our signature added if `sign`."""
        compression = self.config.compression
        url = nar_url(info.node, info.nar_size)
        if compression == "zstd":
            path, _, query = url.partition("?")
            url = f"{path}.zst?{query}"
        narinfo = to_narinfo(info, url, compression)
        key = self.config.signing_key
        if sign and key is not None and all(s.name != key.name for s in narinfo.signatures):
            narinfo = narinfo.with_signature(key)
        return narinfo.render()

    async def _nar_hash_checked(self, info: PathInfo) -> bool:
        """Whether `info`'s NAR hash and size are those of its content, as this bridge has
        seen (an upload it hashed) or now computes (rendering the NAR from the store)."""
        key = (info.node, info.nar_size, info.nar_sha256)
        if key in self.verified:
            return True
        return await self._checks.run(key, lambda: self._check_nar_hash(info))

    async def _check_nar_hash(self, info: PathInfo) -> bool:
        try:
            size, sha256 = await self._calculator.calculate_nar(info.node)
        except CastoreError as e:
            log.error("%s: cannot check its NAR hash (served unsigned): %s", info.store_path, e)
            return False
        if (size, sha256) != (info.nar_size, info.nar_sha256):
            log.error(
                "%s: the stored NAR hash or size is not its content's (served unsigned)",
                info.store_path,
            )
            return False
        self.verified.add((info.node, info.nar_size, info.nar_sha256))
        return True

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
            await verify_content_address(info, self.services.blob, self.services.directory)
        except ContentAddressError as e:
            raise web.HTTPBadRequest(text=str(e)) from e
        except CastoreError as e:
            log.error("checking the content address of %s: %s", narinfo.store_path, e)
            raise web.HTTPInternalServerError() from e
        async with self._storing(digest):
            await self._store_new(info)
        self.verified.add((info.node, info.nar_size, info.nar_sha256))
        return web.Response()

    async def _store_new(self, info: PathInfo) -> None:
        """Store `info` unless the path exists: the same path info again is fine, another
        one is a 409 (a store path, once in the cache, always names the same content)."""
        try:
            existing = await self.services.path_info.get(info.store_path.digest)
            if existing is None:
                await self.services.path_info.put(info)
                return
        except CastoreError as e:
            log.error("storing %s: %s", info.store_path, e)
            raise web.HTTPInternalServerError() from e
        if not same_path(existing, info):
            log.warning("refused an upload replacing %s with other content", info.store_path)
            raise web.HTTPConflict(
                text=f"{info.store_path.to_absolute_path()} is already in this cache with "
                "other contents or metadata; a store path is never replaced"
            )

    def _storing(self, digest: bytes) -> asyncio.Lock:
        """One narinfo upload per store path at a time (check, then store)."""
        lock = self._stores.get(digest)
        if lock is None:
            if len(self._stores) > 10_000:
                self._stores = {d: x for d, x in self._stores.items() if x.locked()}
            lock = self._stores[digest] = asyncio.Lock()
        return lock

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
        info = PathInfo(
            store_path=narinfo.store_path,
            node=upload.node,
            references=narinfo.references,
            nar_size=upload.nar_size,
            nar_sha256=upload.nar_sha256,
            deriver=narinfo.deriver,
            ca=narinfo.ca,
        )
        fingerprint = info.fingerprint()
        trusted = tuple(
            sig
            for sig in narinfo.signatures
            if any(key.verify(fingerprint, sig) for key in self.config.trusted_keys)
        )
        dropped = len(narinfo.signatures) - len(trusted)
        if dropped:
            log.info("%s: dropped %d signature(s) by untrusted keys", info.store_path, dropped)
        return PathInfo(
            info.store_path,
            info.node,
            info.references,
            info.nar_size,
            info.nar_sha256,
            trusted,
            info.deriver,
            info.ca,
        )

    # --- NARs -------------------------------------------------------------------------------

    async def nar(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        if request.method == "PUT":
            self.policy.check(request)
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
        return await serve_nar(
            request,
            node,
            nar_size,
            compressed=compressed,
            services=self.services,
            watchdog=self.watchdog,
        )

    async def _put_nar(self, request: web.Request, name: str) -> web.Response:
        try:
            file_hash, compression = nar_upload_name(name)
        except ValueError as e:
            raise web.HTTPUnauthorized(text=str(e)) from e  # upstream answers 401 here
        upload = await upload_nar(
            request,
            file_hash,
            compression,
            services=self.services,
            limit=self.config.max_nar_size,
            watchdog=self.watchdog,
        )
        self.uploads.add(upload)
        log.info(
            "received NAR sha256:%s (%d bytes)",
            nixbase32.encode(upload.nar_sha256),
            upload.nar_size,
        )
        return web.Response()


def same_path(a: PathInfo, b: PathInfo) -> bool:
    """Whether two path infos describe the same store path the same way (signatures and
    deriver aside)."""
    return (a.store_path, a.node, a.nar_size, a.nar_sha256, a.references, a.ca) == (
        b.store_path,
        b.node,
        b.nar_size,
        b.nar_sha256,
        b.references,
        b.ca,
    )


class VerifiedNars:
    """The (root node, NAR size, NAR sha256) triples known to match, least recent first out."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._seen: OrderedDict[tuple[Node, int, bytes], None] = OrderedDict()

    def add(self, key: tuple[Node, int, bytes]) -> None:
        self._seen[key] = None
        self._seen.move_to_end(key)
        while len(self._seen) > self._capacity:
            self._seen.popitem(last=False)

    def __contains__(self, key: tuple[Node, int, bytes]) -> bool:
        return key in self._seen
