"""In-memory DirectoryService (`memory://`): canonical bytes in a dict, re-verified on get."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

from pytvix.castore.composition import Composition, ServiceConfig, ServiceUrl
from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.directoryservice import ClosureStore, DirectoryService
from pytvix.castore.directoryservice.codec import decode_verified
from pytvix.castore.gc import StoredObject, TimedValues


class MemoryDirectoryService(ClosureStore):
    def __init__(self) -> None:
        self._dirs = TimedValues("directory")

    async def get(self, digest: B3Digest) -> Directory | None:
        data = self._dirs.values.get(digest)
        return None if data is None else decode_verified(digest, data)

    async def persist_closure(self, closure: Sequence[Directory]) -> None:
        for directory in closure:
            self._dirs.put(directory.digest(), directory.encode())

    async def gc_objects(self) -> AsyncIterator[StoredObject]:
        for obj in self._dirs.objects():
            yield obj

    async def gc_expand(self, live: set[B3Digest]) -> Iterable[B3Digest]:
        return ()

    async def gc_delete(
        self, objects: Sequence[StoredObject], written_before: float
    ) -> list[StoredObject]:
        return self._dirs.delete(objects, written_before)


@dataclass(frozen=True)
class MemoryDirectoryServiceConfig(ServiceConfig[DirectoryService]):
    """`memory://` or `type = "memory"`: no options."""

    @classmethod
    def from_url(cls, url: ServiceUrl) -> MemoryDirectoryServiceConfig:
        url.require_memory_form()
        return cls()

    async def build(self, instance: str, composition: Composition) -> DirectoryService:
        return MemoryDirectoryService()

    def durable(self, composition: Composition) -> bool:
        return False
