"""DirectoryService on LMDB (`lmdb:///path`): table `directory`, key = 32-byte digest,
value = canonical protobuf. Values are verified on read; a closure is written in one
transaction after validation. Table `directory_written` keeps when each directory was last
written (a closure put again refreshes the times of those older than WRITE_REFRESH), for
garbage collection (castore.gc)."""

from __future__ import annotations

import struct
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from pytvix.castore.composition import Composition, ServiceConfig
from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.directoryservice import ClosureStore, DirectoryService
from pytvix.castore.directoryservice.codec import DirectoryScrub, decode_verified
from pytvix.castore.directoryservice.traverse import EncodedClosureWalk
from pytvix.castore.drivers.lmdb import LmdbConfig, LmdbEnv
from pytvix.castore.gc import StoredObject, write_refresh
from pytvix.castore.progress import Progress
from pytvix.castore.proto import decode_directory
from pytvix.castore.scrub import ScrubReport
from pytvix.castore.workers import run

TABLE = b"directory"
WRITTEN = b"directory_written"
_TIME = struct.Struct("<d")
DELETE_BATCH = 4096
# get_recursive reads this many directories per read transaction, so a slow consumer never
# pins an old snapshot (which would keep LMDB from reusing pages) for long.
RECURSIVE_BATCH = 1024


class LmdbDirectoryService(ClosureStore):
    def __init__(self, env: LmdbEnv) -> None:
        self.env = env
        self._db = env.db(TABLE)
        self._written = env.db(WRITTEN)
        self._closed = False

    async def get(self, digest: B3Digest) -> Directory | None:
        data = self.env.read(lambda txn: txn.get(digest, db=self._db))
        return None if data is None else decode_verified(digest, data)

    async def persist_closure(self, closure: Sequence[Directory]) -> None:
        rows = [(bytes(d.digest()), d.encode()) for d in closure]

        def write(txn: Any) -> None:
            now = time.time()
            stamp = _TIME.pack(now)
            for key, value in rows:
                new = txn.put(key, value, db=self._db, overwrite=False)
                if new or self._written_at(txn, key) < now - write_refresh():
                    txn.put(key, stamp, db=self._written)

        await self.env.awrite(write)

    def _written_at(self, txn: Any, key: bytes) -> float:
        value = txn.get(key, db=self._written)
        return 0.0 if value is None else float(_TIME.unpack(value)[0])

    # --- garbage collection (castore.gc.Collectable) -------------------------------------

    async def gc_objects(self) -> AsyncIterator[StoredObject]:
        after: bytes | None = None
        while rows := await run(self.env.read, partial(self._gc_rows, after=after)):
            for key, size, written in rows:
                yield StoredObject("directory", B3Digest(key), size, written)
            after = rows[-1][0]

    def _gc_rows(self, txn: Any, *, after: bytes | None) -> list[tuple[bytes, int, float]]:
        cursor = txn.cursor(db=self._db)
        found = cursor.first() if after is None else cursor.set_range(after)
        if found and cursor.key() == after:
            found = cursor.next()
        rows: list[tuple[bytes, int, float]] = []
        while found and len(rows) < RECURSIVE_BATCH:
            key = cursor.key()
            rows.append((key, len(cursor.value()), self._written_at(txn, key)))
            found = cursor.next()
        return rows

    async def gc_expand(self, live: set[B3Digest]) -> Iterable[B3Digest]:
        return ()

    async def gc_delete(
        self, objects: Sequence[StoredObject], written_before: float
    ) -> list[StoredObject]:
        def delete(txn: Any, batch: Sequence[StoredObject]) -> list[StoredObject]:
            gone = []
            for obj in batch:
                assert obj.digest is not None
                if self._written_at(txn, obj.digest) < written_before and txn.delete(
                    obj.digest, db=self._db
                ):
                    txn.delete(obj.digest, db=self._written)
                    gone.append(obj)
            return gone

        deleted: list[StoredObject] = []
        for start in range(0, len(objects), DELETE_BATCH):
            batch = objects[start : start + DELETE_BATCH]
            deleted += await self.env.awrite(partial(delete, batch=batch))
        return deleted

    async def get_recursive(self, root: B3Digest) -> AsyncIterator[Directory]:
        async for data in self.get_recursive_encoded(root):
            directory = decode_directory(data)
            directory._adopt_encoding(data, B3Digest.of(data))  # verified in the batch read
            yield directory

    async def get_recursive_encoded(self, root: B3Digest) -> AsyncIterator[bytes]:
        """The closure as verified canonical bytes, breadth first, each directory once."""
        walk = EncodedClosureWalk(root)
        while walk.pending:
            batch = self.env.read(lambda txn: self._bfs_batch(txn, walk))
            for data in batch:
                yield data

    def _bfs_batch(self, txn: Any, walk: EncodedClosureWalk) -> list[bytes]:
        out: list[bytes] = []
        while walk.pending and len(out) < RECURSIVE_BATCH:
            digest = walk.pending.popleft()
            data = txn.get(digest, db=self._db)
            if not walk.accept(digest, data):
                return out
            out.append(data)
        return out

    # --- maintenance -----------------------------------------------------------------------

    async def scrub(self, report: ScrubReport, progress: Progress) -> None:
        """Re-hash and re-validate every directory; check every child it references is
        stored with the recorded size (Scrubbable)."""
        await run(self.env.read, lambda txn: self._scrub(txn, report, progress))

    def _scrub(self, txn: Any, report: ScrubReport, progress: Progress) -> None:
        scrub = DirectoryScrub(report, progress, str(self.env.path))
        for raw_key, value in txn.cursor(db=self._db):
            scrub.check(raw_key, value)
        scrub.finish()

    async def describe(self) -> dict[str, str | int]:
        return {
            "url": f"lmdb://{self.env.path}",
            "directories": self.env.stat(TABLE)["entries"],
            "LMDB file bytes": self.env.file_size(),
        }

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.env.release()


@dataclass(frozen=True)
class LmdbDirectoryServiceConfig(LmdbConfig, ServiceConfig[DirectoryService]):
    """`lmdb:///path` (or `lmdb://` for a temporary store); TOML: `is_temporary`, `path`."""

    async def build(self, instance: str, composition: Composition) -> DirectoryService:
        return LmdbDirectoryService(self.acquire_env())
