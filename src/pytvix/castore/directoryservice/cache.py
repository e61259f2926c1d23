"""`cache` DirectoryService (near/far): reads the near store first; on a miss fetches the whole
closure from the far store (validated), stores it in the near store and serves it. Writes go
through to the far store, then the near one. Concurrent misses for one root fetch it once.
The near store only ever receives complete closures, so a near hit is always complete."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from pytvix.castore.composition import (
    DIRECTORY_SERVICES,
    Composition,
    ConfigError,
    ServiceConfig,
    ServiceUrl,
)
from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.directoryservice import DirectoryPutter, DirectoryService, put_closure
from pytvix.castore.directoryservice.graph import RootToLeavesValidator, leaves_to_root
from pytvix.castore.singleflight import SingleFlight
from pytvix.observability import NOOP_CACHE, CacheCounters, cache_counters


class CacheDirectoryService(DirectoryService):
    def __init__(
        self, near: DirectoryService, far: DirectoryService, counters: CacheCounters = NOOP_CACHE
    ) -> None:
        self.near = near
        self.far = far
        self.counters = counters  # get and get_recursive answered from near or not
        self._fills: SingleFlight[B3Digest, list[Directory]] = SingleFlight()

    async def get(self, digest: B3Digest) -> Directory | None:
        directory = await self.near.get(digest)
        if directory is not None:
            self.counters.hit()
            return directory
        self.counters.miss()
        closure = await self._fills.run(digest, lambda: self._fill(digest))
        return closure[0] if closure else None

    async def get_recursive(self, root: B3Digest) -> AsyncIterator[Directory]:
        found = False
        async for directory in self.near.get_recursive(root):
            found = True
            yield directory
        if found:
            self.counters.hit()
            return
        self.counters.miss()
        for directory in await self._fills.run(root, lambda: self._fill(root)):
            yield directory

    async def _fill(self, root: B3Digest) -> list[Directory]:
        """The closure of `root` from the far store, root first, copied into the near store."""
        validator = RootToLeavesValidator(root)
        closure = []
        async for directory in self.far.get_recursive(root):
            validator.add(directory)
            closure.append(directory)
        if not closure:
            return []
        validator.finalize()
        await put_closure(self.near, leaves_to_root(root, closure))
        return closure

    def put_multiple_start(self) -> DirectoryPutter:
        return _WriteThroughPutter(self.far.put_multiple_start(), self.near.put_multiple_start())


class _WriteThroughPutter(DirectoryPutter):
    def __init__(self, far: DirectoryPutter, near: DirectoryPutter) -> None:
        self._far = far
        self._near = near

    async def put(self, directory: Directory) -> None:
        await self._far.put(directory)
        await self._near.put(directory)

    async def close(self) -> B3Digest:
        root = await self._far.close()
        await self._near.close()
        return root


@dataclass(frozen=True)
class CacheDirectoryServiceConfig(ServiceConfig[DirectoryService]):
    """TOML `near` and `far` (other directory services); URL `cache://?near=URL&far=URL`."""

    near: str
    far: str

    @classmethod
    def from_url(cls, url: ServiceUrl) -> CacheDirectoryServiceConfig:
        url.reject_query(("near", "far"))
        near, far = url.query_value("near"), url.query_value("far")
        if not near or not far:
            raise ConfigError(f"{url.raw}: cache URLs need near=<url> and far=<url>")
        return cls(near, far)

    async def build(self, instance: str, composition: Composition) -> DirectoryService:
        return CacheDirectoryService(
            await composition.build(DIRECTORY_SERVICES, self.near),
            await composition.build(DIRECTORY_SERVICES, self.far),
            cache_counters("directory", instance),
        )

    def durable(self, composition: Composition) -> bool:
        return composition.durable(DIRECTORY_SERVICES, self.far)  # writes go to far first
