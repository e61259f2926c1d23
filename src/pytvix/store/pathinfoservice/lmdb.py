"""PathInfoService on LMDB (`lmdb:///path`): table `pathinfo`, key = 20-byte store path
digest, value = PathInfo protobuf (validated on read)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from pytvix.castore.composition import Composition, ServiceConfig
from pytvix.castore.drivers.lmdb import LmdbConfig, LmdbEnv
from pytvix.castore.progress import Progress
from pytvix.castore.scrub import ScrubReport
from pytvix.castore.workers import run
from pytvix.store.path_info import PathInfo
from pytvix.store.pathinfoservice import PathInfoService
from pytvix.store.pathinfoservice.stored import decode_stored, scrub_stored
from pytvix.store.proto import path_info_to_proto

TABLE = b"pathinfo"
Rows = list[tuple[bytes, bytes]]
LIST_BATCH = 512


class LmdbPathInfoService(PathInfoService):
    def __init__(self, env: LmdbEnv) -> None:
        self.env = env
        self._db = env.db(TABLE)
        self._where = f"lmdb://{env.path}"
        self._closed = False

    async def get(self, digest: bytes) -> PathInfo | None:
        data = self.env.read(lambda txn: txn.get(digest, db=self._db))
        return None if data is None else decode_stored(digest, data, self._where)

    async def put(self, info: PathInfo) -> PathInfo:
        key = info.store_path.digest
        value = path_info_to_proto(info).SerializeToString(deterministic=True)
        await self.env.awrite(lambda txn: txn.put(key, value, db=self._db))
        return info

    async def list(self) -> AsyncIterator[PathInfo]:
        after: bytes | None = None
        while True:
            rows = self.env.read(partial(self._batch, after=after))
            for key, data in rows:
                yield decode_stored(key, data, self._where)
            if len(rows) < LIST_BATCH:
                return
            after = rows[-1][0]

    def _batch(self, txn: Any, after: bytes | None) -> Rows:
        cursor = txn.cursor(db=self._db)
        found = cursor.set_range(after) if after is not None else cursor.first()
        rows: Rows = []
        while found and len(rows) < LIST_BATCH:
            key, value = cursor.item()
            if key != after:
                rows.append((key, value))
            found = cursor.next()
        return rows

    # --- maintenance -----------------------------------------------------------------------

    async def scrub(self, report: ScrubReport, progress: Progress) -> None:
        """Re-validate every stored PathInfo (Scrubbable)."""

        def scrub(txn: Any) -> None:
            for key, value in txn.cursor(db=self._db):
                scrub_stored(key, value, self._where, report, progress)

        await run(self.env.read, scrub)

    async def describe(self) -> dict[str, str | int]:
        return {
            "url": f"lmdb://{self.env.path}",
            "path infos": self.env.stat(TABLE)["entries"],
            "LMDB file bytes": self.env.file_size(),
        }

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.env.release()


@dataclass(frozen=True)
class LmdbPathInfoServiceConfig(LmdbConfig, ServiceConfig[PathInfoService]):
    """`lmdb:///path` (or `lmdb://` for a temporary store); TOML: `is_temporary`, `path`."""

    async def build(self, instance: str, composition: Composition) -> PathInfoService:
        return LmdbPathInfoService(self.acquire_env())
