"""In-memory PathInfoService (`memory://`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from pytvix.castore.composition import Composition, ServiceConfig, ServiceUrl
from pytvix.store.path_info import PathInfo
from pytvix.store.pathinfoservice import PathInfoService
from pytvix.store.pathinfoservice.roots import GcBusy, PathTimes


class MemoryPathInfoService(PathInfoService):
    def __init__(self) -> None:
        self._infos: dict[bytes, PathInfo] = {}
        self._added: dict[bytes, float] = {}
        self._read: dict[bytes, float] = {}
        self._pins: dict[str, tuple[bytes, ...]] = {}
        self._gc = asyncio.Lock()

    async def get(self, digest: bytes) -> PathInfo | None:
        info = self._infos.get(digest)
        if info is not None:
            self._read[digest] = time.time()
        return info

    async def put(self, info: PathInfo) -> PathInfo:
        digest = info.store_path.digest
        self._infos[digest] = info
        self._added.setdefault(digest, time.time())
        return info

    async def list(self) -> AsyncIterator[PathInfo]:
        for info in list(self._infos.values()):
            yield info

    # --- roots for garbage collection (RootStore) -------------------------------------------

    async def delete(self, digest: bytes) -> bool:
        self._added.pop(digest, None)
        self._read.pop(digest, None)
        return self._infos.pop(digest, None) is not None

    async def pins(self) -> dict[str, tuple[bytes, ...]]:
        return dict(self._pins)

    async def set_pin(self, name: str, digests: Sequence[bytes]) -> None:
        self._pins[name] = tuple(digests)

    async def unpin(self, name: str) -> bool:
        return self._pins.pop(name, None) is not None

    async def times(self) -> AsyncIterator[PathTimes]:
        for digest in list(self._infos):
            yield PathTimes(digest, self._added.get(digest, 0.0), self._read.get(digest, 0.0))

    @asynccontextmanager
    async def gc_lock(self) -> AsyncIterator[None]:
        if self._gc.locked():
            raise GcBusy("another garbage collection is running on this memory store")
        async with self._gc:
            yield


@dataclass(frozen=True)
class MemoryPathInfoServiceConfig(ServiceConfig[PathInfoService]):
    """`memory://` or `type = "memory"`: no options."""

    @classmethod
    def from_url(cls, url: ServiceUrl) -> MemoryPathInfoServiceConfig:
        url.require_memory_form()
        return cls()

    async def build(self, instance: str, composition: Composition) -> PathInfoService:
        return MemoryPathInfoService()

    def durable(self, composition: Composition) -> bool:
        return False
