"""DirectoryService on LMDB (`lmdb:///path`): table `directory`, key = 32-byte digest,
value = canonical protobuf. Values are verified on read; a closure is written in one
transaction after validation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from pytvix.castore.composition import Composition, ServiceConfig
from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.directoryservice import ClosureStore, DirectoryService
from pytvix.castore.directoryservice.codec import DirectoryScrub, decode_verified
from pytvix.castore.directoryservice.traverse import EncodedClosureWalk
from pytvix.castore.drivers.lmdb import LmdbConfig, LmdbEnv
from pytvix.castore.progress import Progress
from pytvix.castore.proto import decode_directory
from pytvix.castore.scrub import ScrubReport
from pytvix.castore.workers import run

TABLE = b"directory"
# get_recursive reads this many directories per read transaction, so a slow consumer never
# pins an old snapshot (which would keep LMDB from reusing pages) for long.
RECURSIVE_BATCH = 1024


class LmdbDirectoryService(ClosureStore):
    def __init__(self, env: LmdbEnv) -> None:
        self.env = env
        self._db = env.db(TABLE)
        self._closed = False

    async def get(self, digest: B3Digest) -> Directory | None:
        data = self.env.read(lambda txn: txn.get(digest, db=self._db))
        return None if data is None else decode_verified(digest, data)

    async def persist_closure(self, closure: Sequence[Directory]) -> None:
        rows = [(bytes(d.digest()), d.encode()) for d in closure]

        def write(txn: Any) -> None:
            for key, value in rows:
                txn.put(key, value, db=self._db)

        await self.env.awrite(write)

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
