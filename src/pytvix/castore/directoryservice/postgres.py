"""DirectoryService on PostgreSQL (`postgresql://user@host:port/db?...`): table
`directories`, digest (32-byte bytea) -> canonical protobuf bytes (schema and connection
handling: `pytvix.castore.drivers.postgres`).

Values are verified on read (blake3(value) == digest). A validated closure is inserted in one
transaction (`ON CONFLICT DO NOTHING` dedups), so it is stored entirely or not at all.
`get_recursive` fetches breadth first one level per query (`digest = ANY($1)`): a closure
costs about one round trip per level of depth, not one per directory.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import blake3

from pytvix.castore.composition import Composition, ServiceConfig
from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.directoryservice import ClosureStore, DirectoryService
from pytvix.castore.directoryservice.codec import DirectoryScrub, decode_verified
from pytvix.castore.drivers.postgres import (
    Connection,
    PgConfig,
    PgDatabase,
)
from pytvix.castore.errors import StorageError
from pytvix.castore.gc import StoredObject, write_refresh
from pytvix.castore.progress import Progress
from pytvix.castore.proto import child_directory_digests
from pytvix.castore.scrub import ScrubReport

T = TypeVar("T")

INSERT_BATCH = 2000  # rows per INSERT statement (all statements share one transaction)
FETCH_BATCH = 1000  # digests per `= ANY($1)` lookup
SCRUB_BATCH = 2000

GET = "SELECT data FROM directories WHERE digest = $1"
GET_MANY = "SELECT digest, data FROM directories WHERE digest = ANY($1::bytea[])"
INSERT = (
    "INSERT INTO directories (digest, data, written)"
    " SELECT d, v, $3 FROM unnest($1::bytea[], $2::bytea[]) AS t(d, v)"
    " ON CONFLICT (digest) DO UPDATE SET written = EXCLUDED.written"
    " WHERE directories.written < EXCLUDED.written - $4"
)
SCAN = "SELECT digest, data FROM directories WHERE digest > $1 ORDER BY digest LIMIT $2"
GC_SCAN = (
    "SELECT digest, octet_length(data) AS size, written FROM directories"
    " WHERE digest > $1 ORDER BY digest LIMIT $2"
)
GC_DELETE = (
    "DELETE FROM directories WHERE digest = ANY($1::bytea[]) AND written < $2 RETURNING digest"
)


class PostgresDirectoryService(ClosureStore):
    def __init__(self, db: PgDatabase) -> None:
        self.db = db
        self._closed = False

    async def get(self, digest: B3Digest) -> Directory | None:
        data = await self.db.fetchval(GET, digest, what="get directory")
        return None if data is None else decode_verified(digest, data)

    async def persist_closure(self, closure: Sequence[Directory]) -> None:
        # in digest order: concurrent closures sharing directories lock rows in one order
        rows = sorted({bytes(d.digest()): d.encode() for d in closure}.items())
        digests = [digest for digest, _ in rows]
        values = [value for _, value in rows]

        now = time.time()

        async def insert(conn: Connection) -> None:
            for start in range(0, len(digests), INSERT_BATCH):
                end = start + INSERT_BATCH
                await conn.execute(
                    INSERT, digests[start:end], values[start:end], now, write_refresh()
                )

        await self.db.write(insert, what="put directory closure")

    async def get_recursive(self, root: B3Digest) -> AsyncIterator[Directory]:
        def decode(digest: B3Digest, data: bytes) -> tuple[Directory, list[bytes]]:
            directory = decode_verified(digest, data)
            return directory, [node.digest for _, node in directory.directories()]

        async for directory in self._walk(root, decode):
            yield directory

    async def get_recursive_encoded(self, root: B3Digest) -> AsyncIterator[bytes]:
        """The closure as verified canonical bytes, breadth first, each directory once."""

        def check(digest: B3Digest, data: bytes) -> tuple[bytes, list[bytes]]:
            if blake3.blake3(data).digest() != digest:
                raise StorageError(f"directory {digest} is corrupt (in {self.db.label})")
            try:
                return data, child_directory_digests(data)
            except Exception as e:  # protobuf DecodeError: bytes hashing to a digest we asked
                raise StorageError(f"directory {digest} is stored but invalid: {e}") from e

        async for data in self._walk(root, check):
            yield data

    async def _walk(
        self, root: B3Digest, handle: Callable[[B3Digest, bytes], tuple[T, list[bytes]]]
    ) -> AsyncIterator[T]:
        """Breadth first, one query per level (per FETCH_BATCH digests): `handle` verifies a
        row and returns (item, child digests). Each directory is yielded once, root first."""
        level: list[bytes] = [root]
        queued: set[bytes] = {root}
        while level:
            following: list[bytes] = []
            for start in range(0, len(level), FETCH_BATCH):
                batch = level[start : start + FETCH_BATCH]
                rows = await self.db.fetch(GET_MANY, batch, what="get directories")
                found = {bytes(r["digest"]): r["data"] for r in rows}
                for digest in batch:
                    data = found.get(digest)
                    if data is None:
                        if digest == root:
                            return
                        raise StorageError(
                            f"directory {B3Digest(digest)} does not exist "
                            f"(referenced below {root}, in {self.db.label})"
                        )
                    item, children = handle(B3Digest(digest), data)
                    for child in children:
                        if child not in queued:
                            queued.add(child)
                            following.append(child)
                    yield item
            level = following

    # --- maintenance -----------------------------------------------------------------------

    async def scrub(self, report: ScrubReport, progress: Progress) -> None:
        """Re-hash and re-validate every directory; check every child it references is
        stored with the recorded size (Scrubbable)."""
        scrub = DirectoryScrub(report, progress, self.db.label)
        after = b""
        while True:
            rows = await self.db.fetch(SCAN, after, SCRUB_BATCH, what="scrub directories")
            for row in rows:
                scrub.check(bytes(row["digest"]), row["data"])
            if len(rows) < SCRUB_BATCH:
                break
            after = bytes(rows[-1]["digest"])
        scrub.finish()

    # --- garbage collection (castore.gc.Collectable) -------------------------------------

    async def gc_objects(self) -> AsyncIterator[StoredObject]:
        after = b""
        while rows := await self.db.fetch(GC_SCAN, after, SCRUB_BATCH, what="list directories"):
            for row in rows:
                digest = B3Digest(bytes(row["digest"]))
                yield StoredObject("directory", digest, int(row["size"]), float(row["written"]))
            after = bytes(rows[-1]["digest"])

    async def gc_expand(self, live: set[B3Digest]) -> Iterable[B3Digest]:
        return ()

    async def gc_delete(
        self, objects: Sequence[StoredObject], written_before: float
    ) -> list[StoredObject]:
        by_digest = {bytes(o.digest): o for o in objects if o.digest is not None}
        rows = await self.db.write(
            lambda c: c.fetch(GC_DELETE, list(by_digest), written_before), what="gc directories"
        )
        return [by_digest[bytes(row["digest"])] for row in rows]

    async def describe(self) -> dict[str, str | int]:
        stats = await self.db.table_stats("directories")
        return {
            "url": self.db.label,
            "directories": stats["rows"],
            "table bytes": stats["bytes"],
        }

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self.db.release()


@dataclass(frozen=True)
class PostgresDirectoryServiceConfig(PgConfig, ServiceConfig[DirectoryService]):
    """`postgresql://...` (fields of PgConfig)."""

    async def build(self, instance: str, composition: Composition) -> DirectoryService:
        return PostgresDirectoryService(await PgDatabase.acquire(self.settings()))
