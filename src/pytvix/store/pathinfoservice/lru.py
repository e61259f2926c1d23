"""`lru` PathInfoService: an in-memory store of at most `capacity` entries, evicting the
least recently used (typically the `near` of a cache in front of a remote store)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass

from pytvix.castore.composition import Composition, ConfigError, ServiceConfig
from pytvix.store.path_info import PathInfo
from pytvix.store.pathinfoservice import PathInfoService


class LruPathInfoService(PathInfoService):
    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ConfigError("lru capacity must be a positive integer")
        self._capacity = capacity
        self._infos: OrderedDict[bytes, PathInfo] = OrderedDict()

    async def get(self, digest: bytes) -> PathInfo | None:
        info = self._infos.get(digest)
        if info is not None:
            self._infos.move_to_end(digest)
        return info

    async def put(self, info: PathInfo) -> PathInfo:
        key = info.store_path.digest
        self._infos[key] = info
        self._infos.move_to_end(key)
        while len(self._infos) > self._capacity:
            self._infos.popitem(last=False)
        return info

    async def list(self) -> AsyncIterator[PathInfo]:
        for info in list(self._infos.values()):
            yield info


@dataclass(frozen=True)
class LruPathInfoServiceConfig(ServiceConfig[PathInfoService]):
    """TOML only: `capacity` (a positive integer)."""

    capacity: int

    async def build(self, instance: str, composition: Composition) -> PathInfoService:
        return LruPathInfoService(self.capacity)

    def durable(self, composition: Composition) -> bool:
        return False
