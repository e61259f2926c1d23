"""`ingest_path`: a file tree on local disk -> castore root node (PROTOCOL.md §4.6).

Symlinks are never followed (not even the root). A regular file is executable iff its owner-x
bit is set. Files up to SMALL_FILE bytes are read whole on the worker pool and uploaded in
parallel; larger ones are streamed in pieces. Every file is read exactly once; an optional
`observer` sees the whole tree in NAR order, contents included, so a caller can hash the NAR
in the same pass. Memory is bounded: at most MAX_BUFFERED bytes of file contents are held.
Directories are uploaded leaves first through one putter; identical files and subtrees are
stored once (content addressing).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from pytvix.castore.blobservice import BlobService
from pytvix.castore.directoryservice import DirectoryService
from pytvix.castore.ingest.tree import (
    PER_BLOB_OVERHEAD,
    ByteBudget,
    TreeBuilder,
    file_node,
    first_error,
)
from pytvix.castore.ingest.walk import DirStart, Event, File, IngestError, Symlink, walk
from pytvix.castore.nodes import FileNode, Node, SymlinkNode
from pytvix.castore.progress import Progress, no_progress
from pytvix.castore.workers import cpu_pool, pool, run, run_on

SMALL_FILE = 1 << 20
PIECE = 4 << 20
WALK_BATCH = 512
BATCH_FILES = 2048  # small files read and stored per worker job
BATCH_BYTES = 64 << 20
OBSERVE_RUN = 1024  # events and contents handed to the observer per worker job

__all__ = ["IngestError", "IngestObserver", "IngestStats", "ingest_path"]


class IngestObserver(Protocol):
    """Sees the tree in NAR order: every event, and after each File event its contents."""

    def event(self, event: Event) -> None: ...

    def data(self, data: bytes) -> None: ...


@dataclass
class IngestStats:
    files: int = 0
    directories: int = 0
    symlinks: int = 0
    bytes: int = 0
    new_bytes: int | None = 0  # None once a backend could not tell

    def add_file(self, size: int, new_bytes: int | None) -> None:
        self.files += 1
        self.bytes += size
        self._add_new(new_bytes)

    def merge(self, other: IngestStats) -> None:
        self.files += other.files
        self.directories += other.directories
        self.symlinks += other.symlinks
        self.bytes += other.bytes
        self._add_new(other.new_bytes)

    def _add_new(self, n: int | None) -> None:
        self.new_bytes = None if n is None or self.new_bytes is None else self.new_bytes + n


Ordered = Event | bytes | asyncio.Future[bytes] | None


@dataclass(slots=True)
class _Small:
    """A small file waiting in a batch: its node and (for the observer) contents to come."""

    event: File
    node: asyncio.Future[Node]
    contents: asyncio.Future[bytes] | None
    charge: int


@dataclass
class _Ingest:
    blobs: BlobService
    tree: TreeBuilder
    observer: IngestObserver | None
    progress: Progress
    tasks: asyncio.TaskGroup
    stats: IngestStats = field(default_factory=IngestStats)
    budget: ByteBudget = field(default_factory=ByteBudget)
    ordered: asyncio.Queue[Ordered] = field(default_factory=lambda: asyncio.Queue(maxsize=4096))
    batch: list[_Small] = field(default_factory=list)
    batch_bytes: int = 0

    async def run(self, events: Iterator[Event]) -> Node:
        while walked := await run(_take, events, WALK_BATCH):
            for event in walked:
                if self.observer is not None:
                    await self.ordered.put(event)
                if isinstance(event, DirStart):
                    self.tree.dir_start()
                elif isinstance(event, File):
                    if event.size <= SMALL_FILE:
                        self.tree.leaf(event.name, await self._small_file(event))
                    else:
                        self.tree.leaf(event.name, await self._large_file(event))
                elif isinstance(event, Symlink):
                    self.stats.symlinks += 1
                    self.tree.leaf(event.name, SymlinkNode(event.target))
                else:
                    self.tree.dir_end(event.name)
            self.flush()
        await self.ordered.put(None)
        root = await self.tree.root()
        self.stats.directories = self.tree.directories
        return root

    async def _small_file(self, event: File) -> asyncio.Future[Node]:
        charge = event.size + PER_BLOB_OVERHEAD
        await self._acquire(charge)
        loop = asyncio.get_running_loop()
        node: asyncio.Future[Node] = loop.create_future()
        contents: asyncio.Future[bytes] | None = None
        if self.observer is not None:
            contents = loop.create_future()
            await self.ordered.put(contents)
        self.batch.append(_Small(event, node, contents, charge))
        self.batch_bytes += event.size
        if len(self.batch) >= BATCH_FILES or self.batch_bytes >= BATCH_BYTES:
            self.flush()
        return node

    async def _acquire(self, n: int) -> None:
        """Reserve buffer budget, in NAR order. Before waiting, the pending batch is flushed:
        the observer feed may be waiting for it, and only the feed frees budget."""
        if not self.budget.try_acquire(n):
            self.flush()
            await self.budget.acquire(n)

    def flush(self) -> None:
        """Read and store the pending small files as one batch."""
        if self.batch:
            self.tasks.create_task(self._upload_batch(self.batch))
            self.batch = []
            self.batch_bytes = 0

    async def _upload_batch(self, batch: list[_Small]) -> None:
        try:
            datas = await run_on(cpu_pool(), _read_many, [item.event for item in batch])
            for item, data in zip(batch, datas, strict=True):
                if item.contents is not None:
                    item.contents.set_result(data)
            results = await self.blobs.put_many(datas)
        except BaseException as e:
            for item in batch:
                for future in (item.node, item.contents):
                    if future is not None and not future.done():
                        future.set_exception(e)
                        future.exception()  # retrieved: the task reports the error
            raise
        for item, (digest, new_bytes) in zip(batch, results, strict=True):
            item.node.set_result(self._file_done(item.event, digest, new_bytes))
            if self.observer is None:
                await self.budget.release(item.charge)

    async def _large_file(self, event: File) -> Node:
        self.flush()
        fd = await run(_open, event.path)
        writer = await self.blobs.open_write()
        total = 0
        try:
            async with contextlib.aclosing(_read_ahead(fd)) as pieces:
                async for piece in pieces:
                    total += len(piece)
                    if total > event.size:
                        break
                    if self.observer is not None:
                        await self._acquire(len(piece))
                        await self.ordered.put(piece)
                    await writer.write(piece)
                    self.progress("bytes", len(piece))
            if total != event.size:
                raise IngestError(f"{os.fsdecode(event.path)} changed while it was being imported")
        except BaseException:
            await writer.abort()
            raise
        finally:
            os.close(fd)
        digest = await writer.close()
        return self._file_done(event, digest, writer.new_bytes, count_bytes=False)

    def _file_done(
        self, event: File, digest: bytes, new_bytes: int | None, *, count_bytes: bool = True
    ) -> FileNode:
        self.stats.add_file(event.size, new_bytes)
        self.progress("files", 1)
        if count_bytes:
            self.progress("bytes", event.size)
        return file_node(digest, event.size, event.executable)

    async def feed_observer(self) -> None:
        """Hands events and contents to the observer strictly in NAR order, as runs of up to
        OBSERVE_RUN items that a worker thread feeds it (hashing overlaps with storing)."""
        done = False
        while not done:
            item = await self.ordered.get()
            items: list[Event | bytes] = []
            freed = 0
            while True:
                if item is None:
                    done = True
                    break
                if isinstance(item, asyncio.Future):
                    contents = await item
                    items.append(contents)
                    freed += len(contents) + PER_BLOB_OVERHEAD
                else:
                    items.append(item)
                    freed += len(item) if isinstance(item, bytes) else 0
                if len(items) >= OBSERVE_RUN or self.ordered.empty():
                    break
                item = self.ordered.get_nowait()
            if items:
                await run(self._observe, items)
            await self.budget.release(freed)

    def _observe(self, items: list[Event | bytes]) -> None:
        assert self.observer is not None
        for item in items:
            if isinstance(item, bytes):
                self.observer.data(item)
            else:
                self.observer.event(item)


async def ingest_path(
    path: str | bytes | os.PathLike[str],
    blobs: BlobService,
    directories: DirectoryService,
    *,
    observer: IngestObserver | None = None,
    progress: Progress = no_progress,
) -> tuple[Node, IngestStats]:
    """Import the tree at `path`; returns its (anonymous) root node and statistics.
    Raises IngestError for unsupported file types, unreadable or changing files."""
    events = walk(path)
    try:
        async with asyncio.TaskGroup() as tasks:
            tree = TreeBuilder(directories.put_multiple_start(), tasks)
            ingest = _Ingest(blobs, tree, observer, progress, tasks)
            if observer is not None:
                tasks.create_task(ingest.feed_observer())
            root = await ingest.run(events)
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    return root, ingest.stats


async def _read_ahead(fd: int) -> AsyncGenerator[bytes, None]:
    """The file's pieces, the next one being read while the current one is processed."""
    loop = asyncio.get_running_loop()
    pending = loop.run_in_executor(pool(), os.read, fd, PIECE)
    try:
        while piece := await pending:
            pending = loop.run_in_executor(pool(), os.read, fd, PIECE)
            yield piece
    finally:
        if not pending.done():
            await asyncio.wait([pending])


def _take(events: Iterator[Event], n: int) -> list[Event]:
    out = []
    for event in events:
        out.append(event)
        if len(out) == n:
            break
    return out


def _open(path: bytes) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise IngestError(f"{os.fsdecode(path)}: cannot open: {e.strerror}") from e


def _read_many(events: list[File]) -> list[bytes]:
    return [_read_whole(event) for event in events]


def _read_whole(event: File) -> bytes:
    fd = _open(event.path)
    try:
        parts = []
        total = 0
        while piece := os.read(fd, max(event.size - total, 0) + 1):
            parts.append(piece)
            total += len(piece)
            if total > event.size:
                break
    except OSError as e:
        raise IngestError(f"{os.fsdecode(event.path)}: cannot read: {e.strerror}") from e
    finally:
        os.close(fd)
    if total != event.size:
        raise IngestError(f"{os.fsdecode(event.path)} changed while it was being imported")
    return parts[0] if len(parts) == 1 else b"".join(parts)
