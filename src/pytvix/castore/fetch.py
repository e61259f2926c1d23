"""Fetching a tree's contents for consumers that walk it in order (NAR rendering, export):
the whole directory closure in one validated recursive get, and blobs fetched ahead of the
consumer so that many small files do not cost one round trip each."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from pytvix.castore.blobservice import BlobReader, BlobService
from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.directoryservice import DirectoryService
from pytvix.castore.directoryservice.graph import ClosureError, RootToLeavesValidator
from pytvix.castore.errors import StorageError
from pytvix.castore.nodes import DirectoryNode, FileNode, Node
from pytvix.castore.readahead import BUDGET

PREFETCH_SMALL = 1 << 20  # blobs up to this size are fetched whole, ahead of the consumer
PREFETCH_BYTES = 16 << 20  # per consumer, within the process-wide read-ahead budget
PREFETCH_FILES = 1024
BATCH_FILES = 128  # small blobs fetched per read_many call
BATCH_BYTES = 8 << 20

Closure = dict[B3Digest, Directory]


class MissingContentError(StorageError):
    """A blob or directory a tree refers to is missing (or its closure is invalid)."""

    def __init__(self, what: Literal["blob", "directory"], message: str) -> None:
        super().__init__(message)
        self.what = what


async def fetch_closure(directories: DirectoryService, root: B3Digest) -> Closure:
    """Every directory below `root` (inclusive), validated root first."""
    validator = RootToLeavesValidator(root)
    closure: Closure = {}
    try:
        async for directory in directories.get_recursive(root):
            validator.add(directory)
            closure[directory.digest()] = directory
        if not closure:
            raise MissingContentError("directory", f"directory {root} not found")
        validator.finalize()
    except ClosureError as e:
        raise MissingContentError("directory", f"invalid closure below {root}: {e}") from e
    return closure


async def fetch_tree(directories: DirectoryService, node: Node) -> Closure:
    """The closure of a root node (empty for files and symlinks)."""
    if isinstance(node, DirectoryNode):
        return await fetch_closure(directories, node.digest)
    return {}


def files_in_order(node: Node, closure: Closure) -> Iterator[FileNode]:
    """The file nodes of the tree depth first in name order (the NAR order)."""
    if isinstance(node, FileNode):
        yield node
    elif isinstance(node, DirectoryNode):
        stack = [iter(closure[node.digest].entries())]
        while stack:
            for _, child in stack[-1]:
                if isinstance(child, FileNode):
                    yield child
                elif isinstance(child, DirectoryNode):
                    stack.append(iter(closure[child.digest].entries()))
                    break
            else:
                stack.pop()


@dataclass(slots=True)
class _Item:
    node: FileNode
    task: asyncio.Task[list[bytes | None]] | asyncio.Task[BlobReader]
    index: int = 0  # position in its batch (small blobs)
    budgeted: bool = False  # fetched ahead, holding read-ahead budget until handed out


class BlobPrefetcher:
    """Contents of files in a fixed order: small blobs as bytes, fetched in batches up to
    PREFETCH_BYTES / PREFETCH_FILES ahead (as far as the process-wide read-ahead budget
    allows: the next one is always fetched); large ones as readers, opened when the one before
    is handed out. A small blob larger than its node says comes back with more than node.size
    bytes (one extra byte is fetched to notice it)."""

    def __init__(self, blobs: BlobService, files: Iterator[FileNode]) -> None:
        self._blobs = blobs
        self._files = files
        self._queue: deque[_Item] = deque()
        self._queued_bytes = 0
        self._large_pending = False
        self._pending: FileNode | None = None  # the next file, looked at but not queued

    async def next(self) -> bytes | BlobReader:
        self._fill()
        item = self._queue.popleft()
        if item.budgeted:
            BUDGET.give(item.node.size)
        if item.node.size <= PREFETCH_SMALL:
            self._queued_bytes -= item.node.size
            batch = await item.task
            assert isinstance(batch, list)
            data = batch[item.index]
            if data is None:
                raise MissingContentError("blob", f"blob {item.node.digest} not found")
            self._fill()
            return data
        self._large_pending = False
        reader = await item.task
        assert not isinstance(reader, list)
        self._fill()
        return reader

    def _fill(self) -> None:
        """Top the window up, in whole batches, once it has drained to half."""
        if len(self._queue) > PREFETCH_FILES // 2 or self._queued_bytes > PREFETCH_BYTES // 2:
            return
        batch: list[tuple[FileNode, bool]] = []
        batch_bytes = 0
        while (
            not self._large_pending
            and len(self._queue) + len(batch) < PREFETCH_FILES
            and self._queued_bytes < PREFETCH_BYTES
        ):
            node = self._peek()
            if node is None:
                break
            ahead = bool(self._queue or batch)  # the first one is needed now, not ahead
            if node.size > PREFETCH_SMALL:
                self._pending = None
                self._launch_batch(batch)
                batch = []
                task = asyncio.ensure_future(self._open(node))
                task.add_done_callback(_retrieve)
                self._queue.append(_Item(node, task))  # a reader: its chunks are budgeted
                self._large_pending = True  # one large blob at a time
                break
            if ahead and not BUDGET.try_take(node.size):
                break
            self._pending = None
            batch.append((node, ahead))
            batch_bytes += node.size
            self._queued_bytes += node.size
            if len(batch) >= BATCH_FILES or batch_bytes >= BATCH_BYTES:
                self._launch_batch(batch)
                batch, batch_bytes = [], 0
        self._launch_batch(batch)

    def _peek(self) -> FileNode | None:
        if self._pending is None:
            self._pending = next(self._files, None)
        return self._pending

    def _launch_batch(self, batch: list[tuple[FileNode, bool]]) -> None:
        if not batch:
            return
        limit = max(node.size for node, _ in batch)
        digests = [node.digest for node, _ in batch]
        task = asyncio.ensure_future(self._blobs.read_many(digests, limit))
        task.add_done_callback(_retrieve)
        for index, (node, budgeted) in enumerate(batch):
            self._queue.append(_Item(node, task, index, budgeted))

    async def _open(self, node: FileNode) -> BlobReader:
        reader = await self._blobs.open_read(node.digest)
        if reader is None:
            raise MissingContentError("blob", f"blob {node.digest} not found")
        return reader

    def close(self) -> None:
        for item in self._queue:
            item.task.cancel()
            if item.budgeted:
                BUDGET.give(item.node.size)
        self._queue.clear()


def _retrieve(task: asyncio.Task[list[bytes | None]] | asyncio.Task[BlobReader]) -> None:
    if not task.cancelled():
        task.exception()
