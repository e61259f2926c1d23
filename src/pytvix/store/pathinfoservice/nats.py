"""PathInfoService on NATS JetStream (`nats://host:port?bucket_prefix=pytvix`).

KV bucket `<prefix>-pathinfo`: key hex(20-byte store path digest) -> PathInfo protobuf
(deterministic serialization), validated on read (and checked to be stored under its own
digest). `put` overwrites; `list` streams every key's latest value through an ordered
consumer. A PathInfo larger than one message goes to the `<prefix>-large` object store (see
`pytvix.castore.drivers.nats_kv`).

Roots for garbage collection (RootStore): a path's "added" time is the time of its message
(the last put); last reads go to bucket `<prefix>-reads` (key hex digest -> float64 time,
written in batches), pins to `<prefix>-pins` (key hex(name) -> concatenated digests), and
the collection lock is a lease on key `gc` of bucket `<prefix>-locks` (a collector that dies
loses it after LOCK_TTL seconds).
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

from pytvix.castore.composition import Composition, ServiceConfig
from pytvix.castore.drivers.nats import NatsSettings, gather_limited
from pytvix.castore.drivers.nats_kv import KvLease, LeaseHeld, NatsKvService
from pytvix.castore.progress import Progress
from pytvix.castore.scrub import ScrubReport
from pytvix.store.path_info import PathInfo
from pytvix.store.pathinfoservice import PathInfoService
from pytvix.store.pathinfoservice.roots import GcBusy, PathTimes, ReadTimes, split_digests
from pytvix.store.pathinfoservice.stored import decode_stored, scrub_stored
from pytvix.store.proto import path_info_to_proto

DIGEST_LEN = 20
LOCK_TTL = 60.0
_TIME = struct.Struct("<d")
# last-read times written at once
READS_CONCURRENCY = 32


class NatsPathInfoService(NatsKvService, PathInfoService):
    COUNT_LABEL = "path infos"

    def __init__(self, settings: NatsSettings) -> None:
        super().__init__(settings, "pathinfo")
        self.read_kv = self.bucket(settings, "reads")
        self.pin_kv = self.bucket(settings, "pins")
        self.lock = KvLease(self.bucket(settings, "locks"), "gc", LOCK_TTL)
        self._reads = ReadTimes(self._record_reads)

    async def get(self, digest: bytes) -> PathInfo | None:
        if len(digest) != DIGEST_LEN:
            return None  # never stored
        data = await self.kv.get(digest.hex())
        if data is None:
            return None
        self._reads.read(digest)
        return decode_stored(digest, data, self._where())

    async def put(self, info: PathInfo) -> PathInfo:
        value = path_info_to_proto(info).SerializeToString(deterministic=True)
        await self.kv.put(info.store_path.digest.hex(), value)
        return info

    async def _record_reads(self, reads: dict[bytes, float]) -> None:
        jobs = [partial(self.read_kv.put, d.hex(), _TIME.pack(t)) for d, t in reads.items()]
        await gather_limited(jobs, READS_CONCURRENCY)

    # --- roots for garbage collection (RootStore) -------------------------------------------

    async def delete(self, digest: bytes) -> bool:
        deleted = await self.kv.delete(digest.hex())
        await self.read_kv.delete(digest.hex())
        return deleted

    async def pins(self) -> dict[str, tuple[bytes, ...]]:
        return {
            bytes.fromhex(key).decode(): split_digests(value)
            async for key, value in self.pin_kv.items()
        }

    async def set_pin(self, name: str, digests: Sequence[bytes]) -> None:
        await self.pin_kv.put(name.encode().hex(), b"".join(digests))

    async def unpin(self, name: str) -> bool:
        return await self.pin_kv.delete(name.encode().hex())

    async def times(self) -> AsyncIterator[PathTimes]:
        await self._reads.flush()
        last_read = {key: _TIME.unpack(value)[0] async for key, value in self.read_kv.items()}
        async for entry in self.kv.entries():
            yield PathTimes(bytes.fromhex(entry.key), entry.written, last_read.get(entry.key, 0.0))

    @asynccontextmanager
    async def gc_lock(self) -> AsyncIterator[None]:
        holder = f"pid {os.getpid()} on {socket.gethostname()}"
        try:
            async with self.lock.hold(holder):
                yield
        except LeaseHeld as e:
            raise GcBusy(
                f"another garbage collection ({e}) holds the lock in {self._where()}"
            ) from e

    async def list(self) -> AsyncIterator[PathInfo]:
        async for key, data in self.kv.items():
            yield decode_stored(key, data, self._where())

    # --- maintenance -----------------------------------------------------------------------

    async def scrub(self, report: ScrubReport, progress: Progress) -> None:
        """Re-validate every stored PathInfo (Scrubbable)."""
        where = self._where()
        async for key, data in self.kv.items():
            scrub_stored(key, data, where, report, progress)

    async def close(self) -> None:
        if not self._closed:
            await self._reads.flush()
        await super().close()


@dataclass(frozen=True)
class NatsPathInfoServiceConfig(NatsSettings, ServiceConfig[PathInfoService]):
    """`nats://host:port?bucket_prefix=pytvix` (fields of NatsSettings)."""

    async def build(self, instance: str, composition: Composition) -> PathInfoService:
        return NatsPathInfoService(self)
