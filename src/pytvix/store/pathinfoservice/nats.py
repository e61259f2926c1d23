"""PathInfoService on NATS JetStream (`nats://host:port?bucket_prefix=pytvix`).

KV bucket `<prefix>-pathinfo`: key hex(20-byte store path digest) -> PathInfo protobuf
(deterministic serialization), validated on read (and checked to be stored under its own
digest). `put` overwrites; `list` streams every key's latest value through an ordered
consumer. A PathInfo larger than one message goes to the `<prefix>-large` object store (see
`pytvix.castore.drivers.nats`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from pytvix.castore.composition import Composition, ServiceConfig
from pytvix.castore.drivers.nats import NatsKvService, NatsSettings
from pytvix.castore.progress import Progress
from pytvix.castore.scrub import ScrubReport
from pytvix.store.path_info import PathInfo
from pytvix.store.pathinfoservice import PathInfoService
from pytvix.store.pathinfoservice.stored import decode_stored, scrub_stored
from pytvix.store.proto import path_info_to_proto

DIGEST_LEN = 20


class NatsPathInfoService(NatsKvService, PathInfoService):
    COUNT_LABEL = "path infos"

    def __init__(self, settings: NatsSettings) -> None:
        super().__init__(settings, "pathinfo")

    async def get(self, digest: bytes) -> PathInfo | None:
        if len(digest) != DIGEST_LEN:
            return None  # never stored
        data = await self.kv.get(digest.hex())
        return None if data is None else decode_stored(digest, data, self._where())

    async def put(self, info: PathInfo) -> PathInfo:
        value = path_info_to_proto(info).SerializeToString(deterministic=True)
        await self.kv.put(info.store_path.digest.hex(), value)
        return info

    async def list(self) -> AsyncIterator[PathInfo]:
        async for key, data in self.kv.items():
            yield decode_stored(key, data, self._where())

    # --- maintenance -----------------------------------------------------------------------

    async def scrub(self, report: ScrubReport, progress: Progress) -> None:
        """Re-validate every stored PathInfo (Scrubbable)."""
        where = self._where()
        async for key, data in self.kv.items():
            scrub_stored(key, data, where, report, progress)


@dataclass(frozen=True)
class NatsPathInfoServiceConfig(NatsSettings, ServiceConfig[PathInfoService]):
    """`nats://host:port?bucket_prefix=pytvix` (fields of NatsSettings)."""

    async def build(self, instance: str, composition: Composition) -> PathInfoService:
        return NatsPathInfoService(self)
