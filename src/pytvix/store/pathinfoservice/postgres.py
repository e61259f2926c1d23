"""PathInfoService on PostgreSQL (`postgresql://user@host:port/db?...`): table `path_infos`,
store path digest (20-byte bytea) -> PathInfo protobuf bytes, validated on read (schema and
connection handling: `pytvix.castore.drivers.postgres`). `put` overwrites (an upsert, in one
transaction); `list` pages through the table in digest order."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from pytvix.castore.composition import Composition, ServiceConfig
from pytvix.castore.drivers.postgres import (
    PgConfig,
    PgDatabase,
)
from pytvix.castore.progress import Progress
from pytvix.castore.scrub import ScrubReport
from pytvix.store.path_info import PathInfo
from pytvix.store.pathinfoservice import PathInfoService
from pytvix.store.pathinfoservice.roots import GcBusy, PathTimes, ReadTimes, split_digests
from pytvix.store.pathinfoservice.stored import decode_stored, scrub_stored
from pytvix.store.proto import path_info_to_proto

LIST_BATCH = 512

GET = "SELECT data FROM path_infos WHERE digest = $1"
PUT = (
    "INSERT INTO path_infos (digest, data, added) VALUES ($1, $2, $3)"
    " ON CONFLICT (digest) DO UPDATE SET data = EXCLUDED.data"
)
SCAN = "SELECT digest, data FROM path_infos WHERE digest > $1 ORDER BY digest LIMIT $2"
TIMES = "SELECT digest, added, last_read FROM path_infos WHERE digest > $1 ORDER BY digest LIMIT $2"
READS = (
    "UPDATE path_infos SET last_read = r.t FROM unnest($1::bytea[], $2::float8[]) AS r(d, t)"
    " WHERE digest = r.d AND last_read < r.t"
)
DELETE = "DELETE FROM path_infos WHERE digest = $1"
PINS = "SELECT name, digests FROM pins"
SET_PIN = (
    "INSERT INTO pins (name, digests) VALUES ($1, $2)"
    " ON CONFLICT (name) DO UPDATE SET digests = EXCLUDED.digests"
)
UNPIN = "DELETE FROM pins WHERE name = $1"
GC_LOCK = 0x7079_7476_6967  # the session advisory lock one collection holds


class PostgresPathInfoService(PathInfoService):
    def __init__(self, db: PgDatabase) -> None:
        self.db = db
        self._closed = False
        self._reads = ReadTimes(self._record_reads)

    async def get(self, digest: bytes) -> PathInfo | None:
        data = await self.db.fetchval(GET, digest, what="get path info")
        if data is None:
            return None
        self._reads.read(digest)
        return decode_stored(digest, data, self.db.label)

    async def put(self, info: PathInfo) -> PathInfo:
        key = info.store_path.digest
        value = path_info_to_proto(info).SerializeToString(deterministic=True)
        now = time.time()
        await self.db.write(lambda c: c.execute(PUT, key, value, now), what="put path info")
        return info

    async def _record_reads(self, reads: dict[bytes, float]) -> None:
        digests, times = list(reads), list(reads.values())
        await self.db.write(lambda c: c.execute(READS, digests, times), what="record reads")

    # --- roots for garbage collection (RootStore) -------------------------------------------

    async def delete(self, digest: bytes) -> bool:
        status = await self.db.write(lambda c: c.execute(DELETE, digest), what="delete path info")
        return str(status).endswith(" 1")

    async def pins(self) -> dict[str, tuple[bytes, ...]]:
        rows = await self.db.fetch(PINS, what="list pins")
        return {row["name"]: split_digests(bytes(row["digests"])) for row in rows}

    async def set_pin(self, name: str, digests: Sequence[bytes]) -> None:
        value = b"".join(digests)
        await self.db.write(lambda c: c.execute(SET_PIN, name, value), what="pin")

    async def unpin(self, name: str) -> bool:
        status = await self.db.write(lambda c: c.execute(UNPIN, name), what="unpin")
        return str(status).endswith(" 1")

    async def times(self) -> AsyncIterator[PathTimes]:
        await self._reads.flush()
        after = b""
        while rows := await self.db.fetch(TIMES, after, LIST_BATCH, what="path info times"):
            for row in rows:
                yield PathTimes(bytes(row["digest"]), float(row["added"]), float(row["last_read"]))
            after = bytes(rows[-1]["digest"])

    @asynccontextmanager
    async def gc_lock(self) -> AsyncIterator[None]:
        async with self.db.session_lock(GC_LOCK) as taken:
            if not taken:
                raise GcBusy(f"another garbage collection holds the lock of {self.db.label}")
            yield

    async def list(self) -> AsyncIterator[PathInfo]:
        async for key, data in self._rows("list path infos"):
            yield decode_stored(key, data, self.db.label)

    async def _rows(self, what: str) -> AsyncIterator[tuple[bytes, bytes]]:
        """Every row in digest order, LIST_BATCH per query (each query retried alone)."""
        after = b""
        while True:
            rows = await self.db.fetch(SCAN, after, LIST_BATCH, what=what)
            for row in rows:
                yield bytes(row["digest"]), row["data"]
            if len(rows) < LIST_BATCH:
                return
            after = bytes(rows[-1]["digest"])

    # --- maintenance -----------------------------------------------------------------------

    async def scrub(self, report: ScrubReport, progress: Progress) -> None:
        """Re-validate every stored PathInfo (Scrubbable)."""
        async for key, data in self._rows("scrub path infos"):
            scrub_stored(key, data, self.db.label, report, progress)

    async def describe(self) -> dict[str, str | int]:
        stats = await self.db.table_stats("path_infos")
        return {"url": self.db.label, "path infos": stats["rows"], "table bytes": stats["bytes"]}

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._reads.flush()
            await self.db.release()


@dataclass(frozen=True)
class PostgresPathInfoServiceConfig(PgConfig, ServiceConfig[PathInfoService]):
    """`postgresql://...` (fields of PgConfig)."""

    async def build(self, instance: str, composition: Composition) -> PathInfoService:
        return PostgresPathInfoService(await PgDatabase.acquire(self.settings()))
