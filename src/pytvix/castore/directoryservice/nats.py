"""DirectoryService on NATS JetStream (`nats://host:port?bucket_prefix=pytvix`).

KV bucket `<prefix>-directories`: key hex(digest) -> canonical Directory bytes, verified
(digest and validity) on every read. A directory larger than one message goes to the
`<prefix>-large` object store (see `pytvix.castore.drivers.nats_kv`).

Closures are validated by the putter, then written leaves first: a directory is created only
after all its subdirectories are acknowledged (directories of one depth level concurrently),
so no reader ever sees a directory whose children are missing, even mid-write. A write that
fails part-way leaves some complete sub-closures without their parent: unreferenced and
harmless (a later upload of the closure skips them; creates rewrite a present directory only
when its message is older than castore.gc.WRITE_REFRESH, for garbage collection). Reads of a closure
fetch a window of directories ahead, breadth first.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from functools import partial

from pytvix.castore.composition import Composition, ServiceConfig
from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.directoryservice import ClosureStore, DirectoryService
from pytvix.castore.directoryservice.codec import DirectoryScrub, decode_verified
from pytvix.castore.directoryservice.traverse import EncodedClosureWalk
from pytvix.castore.drivers.nats import NatsSettings, gather_limited
from pytvix.castore.drivers.nats_kv import NatsKvService
from pytvix.castore.gc import StoredObject, write_refresh
from pytvix.castore.progress import Progress
from pytvix.castore.proto import decode_directory
from pytvix.castore.scrub import ScrubReport

# Directories written / read ahead at once.
WRITE_CONCURRENCY = 64
READ_WINDOW = 64


class NatsDirectoryService(NatsKvService, ClosureStore):
    COUNT_LABEL = "directories"

    def __init__(self, settings: NatsSettings) -> None:
        super().__init__(settings, "directories")

    async def get(self, digest: B3Digest) -> Directory | None:
        data = await self.kv.get(digest.hex())
        return None if data is None else decode_verified(digest, data)

    async def persist_closure(self, closure: Sequence[Directory]) -> None:
        """Create the directories level by level, leaves first (see the module docstring)."""
        levels: dict[B3Digest, int] = {}
        by_level: list[list[tuple[str, bytes]]] = []
        for directory in closure:
            digest = directory.digest()
            if digest in levels:
                continue
            level = 1 + max((levels[n.digest] for _, n in directory.directories()), default=-1)
            levels[digest] = level
            if level == len(by_level):
                by_level.append([])
            by_level[level].append((digest.hex(), directory.encode()))
        for rows in by_level:
            await gather_limited(
                [partial(self.kv.create, k, v, write_refresh()) for k, v in rows],
                WRITE_CONCURRENCY,
            )

    async def get_recursive(self, root: B3Digest) -> AsyncIterator[Directory]:
        async for data in self.get_recursive_encoded(root):
            directory = decode_directory(data)
            directory._adopt_encoding(data, B3Digest.of(data))  # verified while fetching
            yield directory

    async def get_recursive_encoded(self, root: B3Digest) -> AsyncIterator[bytes]:
        """The closure as verified canonical bytes, breadth first, each directory once."""
        walk = EncodedClosureWalk(root, f" in {self._where()}")
        window: deque[tuple[bytes, asyncio.Task[bytes | None]]] = deque()
        try:
            while walk.pending or window:
                while walk.pending and len(window) < READ_WINDOW:
                    digest = walk.pending.popleft()
                    task = asyncio.ensure_future(self.kv.get(digest.hex()))
                    task.add_done_callback(_consume_exception)
                    window.append((digest, task))
                digest, task = window.popleft()
                data = await task
                if not walk.accept(digest, data):
                    return
                assert data is not None
                yield data
        finally:
            for _, task in window:
                task.cancel()

    # --- garbage collection (castore.gc.Collectable) -------------------------------------

    def gc_objects(self) -> AsyncIterator[StoredObject]:
        return self.kv.gc_objects("directory")

    async def gc_expand(self, live: set[B3Digest]) -> Iterable[B3Digest]:
        return ()

    async def gc_delete(
        self, objects: Sequence[StoredObject], written_before: float
    ) -> list[StoredObject]:
        return await self.kv.gc_delete(objects, written_before)

    # --- maintenance -----------------------------------------------------------------------

    async def scrub(self, report: ScrubReport, progress: Progress) -> None:
        """Re-hash and re-validate every directory; check every child it references is
        stored with the recorded size (Scrubbable)."""
        scrub = DirectoryScrub(report, progress, self._where())
        async for key, value in self.kv.items():
            scrub.check(key, value)
        scrub.finish()


def _consume_exception(task: asyncio.Task[bytes | None]) -> None:
    if not task.cancelled():
        task.exception()


@dataclass(frozen=True)
class NatsDirectoryServiceConfig(NatsSettings, ServiceConfig[DirectoryService]):
    """`nats://host:port?bucket_prefix=pytvix` (fields of NatsSettings)."""

    async def build(self, instance: str, composition: Composition) -> DirectoryService:
        return NatsDirectoryService(self)
