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
import os
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from pytvix.castore.blobservice import BlobService
from pytvix.castore.directory import Directory
from pytvix.castore.directoryservice import DirectoryPutter, DirectoryService
from pytvix.castore.ingest.walk import DirStart, Event, File, IngestError, Symlink, walk
from pytvix.castore.nodes import FileNode, Node, SymlinkNode
from pytvix.castore.scrub import Progress, no_progress
from pytvix.castore.workers import run

SMALL_FILE = 1 << 20
PIECE = 4 << 20
MAX_BUFFERED = 64 << 20
PER_FILE_OVERHEAD = 16 << 10  # budget units charged per file, bounds the number in flight
WALK_BATCH = 512

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

    def add_new(self, n: int | None) -> None:
        self.new_bytes = None if n is None or self.new_bytes is None else self.new_bytes + n


class _Budget:
    """Bytes that may be buffered; acquired in NAR order, so waiting never deadlocks."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._free = limit
        self._cond = asyncio.Condition()

    async def acquire(self, n: int) -> None:
        """Wait for `n` free bytes (an item larger than the limit waits for all of it)."""
        async with self._cond:
            await self._cond.wait_for(lambda: self._free >= min(n, self._limit))
            self._free -= n

    async def release(self, n: int) -> None:
        async with self._cond:
            self._free += n
            self._cond.notify_all()


@dataclass
class _Ingest:
    blobs: BlobService
    putter: DirectoryPutter
    observer: IngestObserver | None
    progress: Progress
    tasks: asyncio.TaskGroup
    stats: IngestStats = field(default_factory=IngestStats)
    budget: _Budget = field(default_factory=lambda: _Budget(MAX_BUFFERED))
    ordered: asyncio.Queue[Event | bytes | asyncio.Future[bytes] | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=4096)
    )

    async def run(self, events: Iterator[Event]) -> Node:
        stack: list[list[tuple[bytes, Awaitable[Node]]]] = []
        root: Awaitable[Node] | None = None
        while batch := await run(_take, events, WALK_BATCH):
            for event in batch:
                if self.observer is not None:
                    await self.ordered.put(event)
                if isinstance(event, DirStart):
                    stack.append([])
                    continue
                if isinstance(event, File):
                    node: Awaitable[Node] = await self._file(event)
                elif isinstance(event, Symlink):
                    self.stats.symlinks += 1
                    node = _done(SymlinkNode(event.target))
                else:
                    self.stats.directories += 1
                    node = self.tasks.create_task(self._finish_dir(stack.pop()))
                if stack:
                    stack[-1].append((event.name, node))
                else:
                    root = node
        await self.ordered.put(None)
        assert root is not None
        return await root

    async def _file(self, event: File) -> Awaitable[Node]:
        if event.size <= SMALL_FILE:
            charge = event.size + PER_FILE_OVERHEAD
            await self.budget.acquire(charge)
            data: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            if self.observer is not None:
                await self.ordered.put(data)
            return self.tasks.create_task(self._small_file(event, data, charge))
        return _done(await self._large_file(event))

    async def _small_file(self, event: File, data: asyncio.Future[bytes], charge: int) -> Node:
        try:
            contents = await run(_read_whole, event)
        except BaseException as e:
            data.set_exception(e)
            data.exception()
            raise
        data.set_result(contents)
        writer = await self.blobs.open_write()
        await writer.write(contents)
        digest = await writer.close()
        if self.observer is None:
            await self.budget.release(charge)
        return self._file_done(event, digest, writer.new_bytes)

    async def _large_file(self, event: File) -> Node:
        fd = await run(_open, event.path)
        writer = await self.blobs.open_write()
        total = 0
        try:
            while piece := await run(os.read, fd, PIECE):
                total += len(piece)
                if total > event.size:
                    break
                if self.observer is not None:
                    await self.budget.acquire(len(piece))
                    await self.ordered.put(piece)
                await writer.write(piece)
                self.progress("bytes", len(piece))
        except BaseException:
            await writer.abort()
            raise
        finally:
            os.close(fd)
        if total != event.size:
            await writer.abort()
            raise IngestError(f"{os.fsdecode(event.path)} changed while it was being imported")
        digest = await writer.close()
        return self._file_done(event, digest, writer.new_bytes, count_bytes=False)

    def _file_done(
        self, event: File, digest: bytes, new_bytes: int | None, *, count_bytes: bool = True
    ) -> FileNode:
        self.stats.files += 1
        self.stats.bytes += event.size
        self.stats.add_new(new_bytes)
        self.progress("files", 1)
        if count_bytes:
            self.progress("bytes", event.size)
        return FileNode(digest, event.size, event.executable)  # type: ignore[arg-type]

    async def _finish_dir(self, entries: list[tuple[bytes, Awaitable[Node]]]) -> Node:
        directory = Directory([(name, await node) for name, node in entries])
        await self.putter.put(directory)
        return directory.as_node()

    async def feed_observer(self) -> None:
        """Hands events and contents to the observer strictly in NAR order."""
        assert self.observer is not None
        while (item := await self.ordered.get()) is not None:
            if isinstance(item, bytes):
                self.observer.data(item)
                await self.budget.release(len(item))
            elif isinstance(item, asyncio.Future):
                contents = await item
                self.observer.data(contents)
                await self.budget.release(len(contents) + PER_FILE_OVERHEAD)
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
    putter = directories.put_multiple_start()
    try:
        async with asyncio.TaskGroup() as tasks:
            ingest = _Ingest(blobs, putter, observer, progress, tasks)
            if observer is not None:
                tasks.create_task(ingest.feed_observer())
            root = await ingest.run(events)
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    if ingest.stats.directories:
        await putter.close()
    return root, ingest.stats


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


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first real error in a (nested) exception group, preferring non-cancellations."""
    leaves: list[BaseException] = []

    def collect(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for inner in e.exceptions:
                collect(inner)
        else:
            leaves.append(e)

    collect(group)
    for leaf in leaves:
        if not isinstance(leaf, asyncio.CancelledError):
            return leaf
    return leaves[0]


def _done(node: Node) -> asyncio.Future[Node]:
    future: asyncio.Future[Node] = asyncio.get_running_loop().create_future()
    future.set_result(node)
    return future
