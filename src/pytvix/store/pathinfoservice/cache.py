"""`cache` PathInfoService (near/far): reads near first, then far, copying hits into near
(no negative caching: a miss is asked again next time). Puts write through to far, then near;
listing comes from far. Concurrent misses for one path ask far once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import ClassVar

from pytvix.castore.composition import Composition, ServiceConfig
from pytvix.castore.singleflight import SingleFlight
from pytvix.observability import NOOP_CACHE, CacheCounters, cache_counters
from pytvix.store.composition import PATHINFO_SERVICES
from pytvix.store.path_info import PathInfo
from pytvix.store.pathinfoservice import NarCalculationService, PathInfoService


class CachePathInfoService(PathInfoService):
    def __init__(
        self, near: PathInfoService, far: PathInfoService, counters: CacheCounters = NOOP_CACHE
    ) -> None:
        self.near = near
        self.far = far
        self.counters = counters  # gets answered from near or not
        self._fills: SingleFlight[bytes, PathInfo | None] = SingleFlight()

    async def get(self, digest: bytes) -> PathInfo | None:
        info = await self.near.get(digest)
        if info is not None:
            self.counters.hit()
            return info
        self.counters.miss()
        return await self._fills.run(digest, lambda: self._fill(digest))

    async def _fill(self, digest: bytes) -> PathInfo | None:
        info = await self.far.get(digest)
        if info is not None:
            await self.near.put(info)
        return info

    async def put(self, info: PathInfo) -> PathInfo:
        stored = await self.far.put(info)
        await self.near.put(stored)
        return stored

    def list(self) -> AsyncIterator[PathInfo]:
        return self.far.list()

    def nar_calculation_service(self) -> NarCalculationService | None:
        return self.far.nar_calculation_service()


@dataclass(frozen=True)
class CachePathInfoServiceConfig(ServiceConfig[PathInfoService]):
    """TOML only: `near` and `far` name other path info services."""

    near: str
    far: str
    allow_unknown_fields: ClassVar[bool] = True

    async def build(self, instance: str, composition: Composition) -> PathInfoService:
        return CachePathInfoService(
            await composition.build(PATHINFO_SERVICES, self.near),
            await composition.build(PATHINFO_SERVICES, self.far),
            cache_counters("pathinfo", instance),
        )

    def durable(self, composition: Composition) -> bool:
        return composition.durable(PATHINFO_SERVICES, self.far)  # writes go to far first
