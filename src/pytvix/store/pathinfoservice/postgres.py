"""PathInfoService on PostgreSQL (`postgresql://user@host:port/db?...`): table `path_infos`,
store path digest (20-byte bytea) -> PathInfo protobuf bytes, validated on read (schema and
connection handling: `pytvix.castore.drivers.postgres`). `put` overwrites (an upsert, in one
transaction); `list` pages through the table in digest order."""

from __future__ import annotations

from collections.abc import AsyncIterator
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
from pytvix.store.pathinfoservice.stored import decode_stored, scrub_stored
from pytvix.store.proto import path_info_to_proto

LIST_BATCH = 512

GET = "SELECT data FROM path_infos WHERE digest = $1"
PUT = (
    "INSERT INTO path_infos (digest, data) VALUES ($1, $2)"
    " ON CONFLICT (digest) DO UPDATE SET data = EXCLUDED.data"
)
SCAN = "SELECT digest, data FROM path_infos WHERE digest > $1 ORDER BY digest LIMIT $2"


class PostgresPathInfoService(PathInfoService):
    def __init__(self, db: PgDatabase) -> None:
        self.db = db
        self._closed = False

    async def get(self, digest: bytes) -> PathInfo | None:
        data = await self.db.fetchval(GET, digest, what="get path info")
        return None if data is None else decode_stored(digest, data, self.db.label)

    async def put(self, info: PathInfo) -> PathInfo:
        key = info.store_path.digest
        value = path_info_to_proto(info).SerializeToString(deterministic=True)
        await self.db.write(lambda c: c.execute(PUT, key, value), what="put path info")
        return info

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
            await self.db.release()


@dataclass(frozen=True)
class PostgresPathInfoServiceConfig(PgConfig, ServiceConfig[PathInfoService]):
    """`postgresql://...` (fields of PgConfig)."""

    async def build(self, instance: str, composition: Composition) -> PathInfoService:
        return PostgresPathInfoService(await PgDatabase.acquire(self.settings()))
