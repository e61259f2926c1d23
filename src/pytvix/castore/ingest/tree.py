"""Building castore directories from a depth-first stream of entries, uploading small blobs
in parallel. Shared by filesystem import and NAR import.

Entries arrive in depth-first order (`dir_start`, leaves, `dir_end`); leaf nodes may still be
uploading (awaitables). Each finished directory becomes a task that waits for its children and
then hands the Directory to the putter, so children always reach the putter before their
parent while siblings upload concurrently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from pytvix.castore.blobservice import BlobService
from pytvix.castore.directory import Directory
from pytvix.castore.directoryservice import DirectoryPutter
from pytvix.castore.nodes import FileNode, Node

MAX_BUFFERED = 256 << 20
PER_BLOB_OVERHEAD = 16 << 10  # budget charged per blob, bounds the number in flight


class ByteBudget:
    """Bytes that may be held in memory. Callers acquire in stream order, so a waiter never
    blocks a consumer that releases in the same order."""

    def __init__(self, limit: int = MAX_BUFFERED) -> None:
        self._limit = limit
        self._free = limit
        self._cond = asyncio.Condition()

    async def acquire(self, n: int) -> None:
        """Wait for `n` free bytes (an item larger than the limit waits for all of it)."""
        async with self._cond:
            await self._cond.wait_for(lambda: self._free >= min(n, self._limit))
            self._free -= n

    def try_acquire(self, n: int) -> bool:
        """Take `n` bytes if they are free right now."""
        if self._free >= min(n, self._limit):
            self._free -= n
            return True
        return False

    async def release(self, n: int) -> None:
        async with self._cond:
            self._free += n
            self._cond.notify_all()


class TreeBuilder:
    """Collects depth-first entries into directories uploaded through `putter`."""

    def __init__(self, putter: DirectoryPutter, tasks: asyncio.TaskGroup) -> None:
        self._putter = putter
        self._tasks = tasks
        self._stack: list[list[tuple[bytes, Awaitable[Node]]]] = []
        self._root: Awaitable[Node] | None = None
        self.directories = 0

    def dir_start(self) -> None:
        self._stack.append([])

    def leaf(self, name: bytes, node: Node | Awaitable[Node]) -> None:
        self._add(name, done(node) if isinstance(node, Node) else node)

    def dir_end(self, name: bytes) -> None:
        self.directories += 1
        self._add(name, self._tasks.create_task(self._finish(self._stack.pop())))

    def _add(self, name: bytes, node: Awaitable[Node]) -> None:
        if self._stack:
            self._stack[-1].append((name, node))
        else:
            self._root = node

    async def _finish(self, entries: list[tuple[bytes, Awaitable[Node]]]) -> Node:
        directory = Directory([(name, await node) for name, node in entries])
        await self._putter.put(directory)
        return directory.as_node()

    async def root(self) -> Node:
        """The root node, once every upload finished; closes the putter if a directory was
        built."""
        if self._root is None or self._stack:
            raise RuntimeError("the entry stream is incomplete")
        node = await self._root
        if self.directories:
            await self._putter.close()
        return node


BATCH_FILES = 128  # small blobs stored per worker job
BATCH_BYTES = 8 << 20


class BlobBatcher:
    """Stores small in-memory blobs in batches (one `put_many` per batch) and releases their
    budget once stored. Call `flush()` before waiting on the budget and at the end."""

    def __init__(self, blobs: BlobService, tasks: asyncio.TaskGroup, budget: ByteBudget) -> None:
        self._blobs = blobs
        self._tasks = tasks
        self._budget = budget
        self._batch: list[tuple[bytes, bool, int, asyncio.Future[Node]]] = []
        self._bytes = 0

    def add(self, data: bytes, executable: bool, charge: int) -> asyncio.Future[Node]:
        node: asyncio.Future[Node] = asyncio.get_running_loop().create_future()
        self._batch.append((data, executable, charge, node))
        self._bytes += len(data)
        if len(self._batch) >= BATCH_FILES or self._bytes >= BATCH_BYTES:
            self.flush()
        return node

    def flush(self) -> None:
        if self._batch:
            self._tasks.create_task(self._store(self._batch))
            self._batch = []
            self._bytes = 0

    async def _store(self, batch: list[tuple[bytes, bool, int, asyncio.Future[Node]]]) -> None:
        try:
            results = await self._blobs.put_many([data for data, _, _, _ in batch])
        except BaseException as e:
            for *_, node in batch:
                node.set_exception(e)
                node.exception()  # retrieved: the task reports the error
            raise
        for (data, executable, charge, node), (digest, _) in zip(batch, results, strict=True):
            node.set_result(file_node(digest, len(data), executable))
            await self._budget.release(charge)


def done(node: Node) -> asyncio.Future[Node]:
    future: asyncio.Future[Node] = asyncio.get_running_loop().create_future()
    future.set_result(node)
    return future


def file_node(digest: bytes, size: int, executable: bool) -> FileNode:
    return FileNode(digest, size, executable)  # type: ignore[arg-type]


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
