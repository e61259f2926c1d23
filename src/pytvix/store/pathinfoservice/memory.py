"""In-memory PathInfoService (`memory://`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from pytvix.castore.composition import Composition, ServiceConfig, ServiceUrl
from pytvix.store.path_info import PathInfo
from pytvix.store.pathinfoservice import PathInfoService


class MemoryPathInfoService(PathInfoService):
    def __init__(self) -> None:
        self._infos: dict[bytes, PathInfo] = {}

    async def get(self, digest: bytes) -> PathInfo | None:
        return self._infos.get(digest)

    async def put(self, info: PathInfo) -> PathInfo:
        self._infos[info.store_path.digest] = info
        return info

    async def list(self) -> AsyncIterator[PathInfo]:
        for info in list(self._infos.values()):
            yield info


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
