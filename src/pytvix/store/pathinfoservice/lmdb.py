"""PathInfoService on LMDB (`lmdb:///path`): table `pathinfo`, key = 20-byte store path
digest, value = PathInfo protobuf (validated on read). For garbage collection (RootStore):
table `pathinfo_times` (digest -> when added, when last read: two doubles), table `pin` (name
-> the concatenated digests it holds), and an flock on `<path>/gc.lock`."""

from __future__ import annotations

import struct
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from pytvix.castore.composition import Composition, ServiceConfig
from pytvix.castore.drivers.lmdb import LmdbConfig, LmdbEnv
from pytvix.castore.drivers.local_files import FileLock
from pytvix.castore.progress import Progress
from pytvix.castore.scrub import ScrubReport
from pytvix.castore.workers import run
from pytvix.store.path_info import PathInfo
from pytvix.store.pathinfoservice import PathInfoService
from pytvix.store.pathinfoservice.roots import GcBusy, PathTimes, ReadTimes, split_digests
from pytvix.store.pathinfoservice.stored import decode_stored, scrub_stored
from pytvix.store.proto import path_info_to_proto

TABLE = b"pathinfo"
TIMES = b"pathinfo_times"
PINS = b"pin"
_TIMES = struct.Struct("<dd")
Rows = list[tuple[bytes, bytes]]
LIST_BATCH = 512


class LmdbPathInfoService(PathInfoService):
    def __init__(self, env: LmdbEnv) -> None:
        self.env = env
        self._db = env.db(TABLE)
        self._times = env.db(TIMES)
        self._pins = env.db(PINS)
        self._where = f"lmdb://{env.path}"
        self._closed = False
        self._reads = ReadTimes(self._record_reads)

    async def get(self, digest: bytes) -> PathInfo | None:
        data = self.env.read(lambda txn: txn.get(digest, db=self._db))
        if data is None:
            return None
        self._reads.read(digest)
        return decode_stored(digest, data, self._where)

    async def put(self, info: PathInfo) -> PathInfo:
        key = info.store_path.digest
        value = path_info_to_proto(info).SerializeToString(deterministic=True)

        def write(txn: Any) -> None:
            txn.put(key, value, db=self._db)
            txn.put(key, _TIMES.pack(time.time(), 0.0), db=self._times, overwrite=False)

        await self.env.awrite(write)
        return info

    async def _record_reads(self, reads: dict[bytes, float]) -> None:
        def write(txn: Any) -> None:
            for digest, when in reads.items():
                old = txn.get(digest, db=self._times)
                if old is not None:
                    added, _ = _TIMES.unpack(old)
                    txn.put(digest, _TIMES.pack(added, when), db=self._times)

        await self.env.awrite(write)

    # --- roots for garbage collection (RootStore) -------------------------------------------

    async def delete(self, digest: bytes) -> bool:
        def write(txn: Any) -> bool:
            txn.delete(digest, db=self._times)
            return bool(txn.delete(digest, db=self._db))

        return await self.env.awrite(write)

    async def pins(self) -> dict[str, tuple[bytes, ...]]:
        def read(txn: Any) -> dict[str, tuple[bytes, ...]]:
            return {name.decode(): split_digests(v) for name, v in txn.cursor(db=self._pins)}

        return self.env.read(read)

    async def set_pin(self, name: str, digests: Sequence[bytes]) -> None:
        value = b"".join(digests)
        await self.env.awrite(lambda txn: txn.put(name.encode(), value, db=self._pins))

    async def unpin(self, name: str) -> bool:
        return bool(await self.env.awrite(lambda txn: txn.delete(name.encode(), db=self._pins)))

    async def times(self) -> AsyncIterator[PathTimes]:
        await self._reads.flush()
        after: bytes | None = None
        while True:
            rows = self.env.read(partial(self._batch, after=after, table=self._times))
            for key, value in rows:
                added, last_read = _TIMES.unpack(value)
                yield PathTimes(key, added, last_read)
            if len(rows) < LIST_BATCH:
                return
            after = rows[-1][0]

    @asynccontextmanager
    async def gc_lock(self) -> AsyncIterator[None]:
        lock = FileLock(self.env.path / "gc.lock")
        try:
            lock.__enter__()
        except BlockingIOError as e:
            raise GcBusy(f"another garbage collection holds {lock.path}") from e
        try:
            yield
        finally:
            lock.__exit__()

    async def list(self) -> AsyncIterator[PathInfo]:
        after: bytes | None = None
        while True:
            rows = self.env.read(partial(self._batch, after=after, table=self._db))
            for key, data in rows:
                yield decode_stored(key, data, self._where)
            if len(rows) < LIST_BATCH:
                return
            after = rows[-1][0]

    def _batch(self, txn: Any, after: bytes | None, table: Any) -> Rows:
        cursor = txn.cursor(db=table)
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
            await self._reads.flush()
            self.env.release()


@dataclass(frozen=True)
class LmdbPathInfoServiceConfig(LmdbConfig, ServiceConfig[PathInfoService]):
    """`lmdb:///path` (or `lmdb://` for a temporary store); TOML: `is_temporary`, `path`."""

    async def build(self, instance: str, composition: Composition) -> PathInfoService:
        return LmdbPathInfoService(self.acquire_env())
