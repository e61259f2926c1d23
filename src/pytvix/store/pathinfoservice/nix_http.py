"""`nix+http(s)://` PathInfoService: fetch-through from a Nix binary cache (PROTOCOL.md §4.9).

A lookup fetches `<base>/<hash>.narinfo` (404/403: not found), checks a signature from one of
the trusted keys if any are configured, downloads the NAR it points to, decompresses it (none,
xz, bzip2, gzip, zstd), ingests it into the configured blob and directory services and only
returns a PathInfo if the NAR's size and sha256 (and the file's, when given) match. Read-only.

It keeps nothing itself: every lookup downloads again. Put a `cache` path info service with a
persistent near store in front of it (README, "Fetch-through from a Nix binary cache") so a
path is fetched once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import ClassVar
from urllib.parse import urljoin

import aiohttp

from pytvix.castore.blobservice import BlobService
from pytvix.castore.composition import (
    BLOB_SERVICES,
    DIRECTORY_SERVICES,
    Composition,
    ConfigError,
    ServiceConfig,
    ServiceUrl,
)
from pytvix.castore.directoryservice import DirectoryService
from pytvix.castore.errors import InvalidRequestError, StorageError
from pytvix.nixcompat import nixbase32
from pytvix.nixcompat.narinfo import NarInfo, NarInfoError, parse_narinfo
from pytvix.nixcompat.signing import InvalidKey, VerifyingKey
from pytvix.observability import NOOP_FETCH, FetchCounters, fetch_counters
from pytvix.store.nar.compression import CompressionError, DecompressingSource, HashingSource
from pytvix.store.nar.errors import NarError
from pytvix.store.nar.ingest import ingest_nar
from pytvix.store.path_info import PathInfo
from pytvix.store.pathinfoservice import PathInfoService

log = logging.getLogger(__name__)

TIMEOUT = aiohttp.ClientTimeout(total=None, connect=30, sock_read=300)
MAX_NARINFO = 2 << 20


class NixHttpPathInfoService(PathInfoService):
    def __init__(
        self,
        base_url: str,
        blobs: BlobService,
        directories: DirectoryService,
        public_keys: tuple[VerifyingKey, ...] = (),
        counters: FetchCounters = NOOP_FETCH,
    ) -> None:
        self.base_url = base_url
        self.blobs = blobs
        self.directories = directories
        self.public_keys = public_keys
        self.counters = counters
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=TIMEOUT)
        return self._session

    async def get(self, digest: bytes) -> PathInfo | None:
        try:
            info = await self._get(digest)
        except Exception:
            self.counters.error()
            raise
        (self.counters.miss if info is None else self.counters.hit)()
        return info

    async def _get(self, digest: bytes) -> PathInfo | None:
        url = urljoin(self.base_url, f"{nixbase32.encode(digest)}.narinfo")
        started = time.perf_counter()
        try:
            async with self._client().get(url) as response:
                if response.status in (403, 404):
                    return None
                if response.status != 200:
                    raise StorageError(f"{url}: HTTP {response.status}")
                text = await response.text()
            self.counters.upstream("narinfo", time.perf_counter() - started)
            narinfo = parse_narinfo(text)
        except aiohttp.ClientError as e:
            raise StorageError(f"{url}: {e}") from e
        except (NarInfoError, UnicodeDecodeError) as e:
            raise StorageError(f"{url}: invalid narinfo: {e}") from e
        if narinfo.store_path.digest != digest:
            raise StorageError(f"{url} describes {narinfo.store_path}")
        if self.public_keys and not narinfo.verify(self.public_keys):
            raise StorageError(f"{url}: no valid signature by a trusted key")
        return await self._fetch_nar(narinfo)

    async def _fetch_nar(self, narinfo: NarInfo) -> PathInfo:
        url = urljoin(self.base_url, narinfo.url)
        started = time.perf_counter()
        try:
            async with self._client().get(url) as response:
                if response.status != 200:
                    raise StorageError(f"{url}: HTTP {response.status}")
                raw = HashingSource(response.content)
                node, nar_size, nar_sha256 = await ingest_nar(
                    DecompressingSource(raw, narinfo.effective_compression, limit=narinfo.nar_size),
                    self.blobs,
                    self.directories,
                )
        except aiohttp.ClientError as e:
            raise StorageError(f"{url}: {e}") from e
        except (NarError, CompressionError) as e:
            raise StorageError(f"{url}: invalid NAR: {e}") from e
        self.counters.upstream("nar", time.perf_counter() - started)
        self.counters.downloaded(raw.size)
        if (nar_size, nar_sha256) != (narinfo.nar_size, narinfo.nar_hash):
            raise StorageError(f"{url}: NAR hash or size differs from the narinfo's")
        if narinfo.file_hash is not None and raw.sha256.digest() != narinfo.file_hash:
            raise StorageError(f"{url}: FileHash differs from the narinfo's")
        return PathInfo(
            store_path=narinfo.store_path,
            node=node,
            references=narinfo.references,
            nar_size=nar_size,
            nar_sha256=nar_sha256,
            signatures=narinfo.signatures,
            deriver=narinfo.deriver,
            ca=narinfo.ca,
        )

    async def put(self, info: PathInfo) -> PathInfo:
        raise InvalidRequestError(f"{self.base_url} is a read-only Nix binary cache")

    async def list(self) -> AsyncIterator[PathInfo]:
        raise InvalidRequestError(f"{self.base_url} cannot list its store paths")
        yield  # pragma: no cover (makes this an async generator)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
            await asyncio.sleep(0)  # let aiohttp close its connections


@dataclass(frozen=True)
class NixHttpPathInfoServiceConfig(ServiceConfig[PathInfoService]):
    """`nix+http(s)://host/path?trusted-public-keys=NAME:KEY%20...`; TOML type `nix`:
    `base_url`, `blob_service`, `directory_service`, `public_keys`."""

    base_url: str
    blob_service: str = "default"
    directory_service: str = "default"
    public_keys: tuple[str, ...] = field(default_factory=tuple)
    allow_unknown_fields: ClassVar[bool] = True

    @classmethod
    def from_url(cls, url: ServiceUrl) -> NixHttpPathInfoServiceConfig:
        if url.inner_scheme not in ("http", "https"):
            raise ConfigError(f"{url.raw}: expected nix+http:// or nix+https://")
        url.reject_query(("trusted-public-keys", "blob_service", "directory_service"))
        keys = tuple(k for v in url.query_values("trusted-public-keys") for k in v.split())
        base = url.raw.split("+", 1)[1].split("?", 1)[0]
        return cls(
            base,
            url.query_value("blob_service") or "default",
            url.query_value("directory_service") or "default",
            keys,
        )

    def durable(self, composition: Composition) -> bool:
        return False  # read-only: it keeps nothing

    async def build(self, instance: str, composition: Composition) -> PathInfoService:
        try:
            keys = tuple(VerifyingKey.parse(k) for k in self.public_keys)
        except InvalidKey as e:
            raise ConfigError(f"path info service {instance!r}: bad public key: {e}") from e
        if not keys:
            log.warning(
                "%s: no trusted-public-keys given, so unsigned narinfos are accepted "
                "(anyone who can change the cache's answers can change what you get); "
                "add ?trusted-public-keys=NAME:KEY",
                self.base_url,
            )
        return NixHttpPathInfoService(
            self.base_url,
            await composition.build(BLOB_SERVICES, self.blob_service),
            await composition.build(DIRECTORY_SERVICES, self.directory_service),
            keys,
            fetch_counters(instance),
        )
