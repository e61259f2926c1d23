"""Fetching a tree's contents for consumers that walk it in order (NAR rendering, export):
the whole directory closure in one validated recursive get, and blobs fetched ahead of the
consumer so that many small files do not cost one round trip each."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from typing import Literal

from pytvix.castore.blobservice import BlobReader, BlobService
from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.directoryservice import DirectoryService
from pytvix.castore.directoryservice.graph import ClosureError, RootToLeavesValidator
from pytvix.castore.errors import StorageError
from pytvix.castore.nodes import DirectoryNode, FileNode, Node

PREFETCH_SMALL = 1 << 20  # blobs up to this size are fetched whole, ahead of the consumer
PREFETCH_BYTES = 64 << 20
PREFETCH_FILES = 256

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


@dataclass
class _Pending:
    node: FileNode
    task: asyncio.Task[bytes | BlobReader]


class BlobPrefetcher:
    """Contents of files in a fixed order: small blobs as bytes, fetched up to PREFETCH_BYTES /
    PREFETCH_FILES ahead; large ones as readers, opened when the one before is handed out.
    A small blob larger than its node says comes back with more than node.size bytes (one
    extra byte is fetched to notice it)."""

    def __init__(self, blobs: BlobService, files: Iterator[FileNode]) -> None:
        self._blobs = blobs
        self._files = files
        self._window: list[_Pending] = []
        self._window_bytes = 0

    async def next(self) -> bytes | BlobReader:
        self._fill()
        pending = self._window.pop(0)
        if pending.node.size <= PREFETCH_SMALL:
            self._window_bytes -= pending.node.size
        result = await pending.task
        self._fill()
        return result

    def _fill(self) -> None:
        while len(self._window) < PREFETCH_FILES and self._window_bytes < PREFETCH_BYTES:
            node = next(self._files, None)
            if node is None:
                return
            small = node.size <= PREFETCH_SMALL
            fetch: Awaitable[bytes | BlobReader] = (
                self._fetch_small(node) if small else self._open(node)
            )
            task = asyncio.ensure_future(fetch)
            task.add_done_callback(_retrieve)
            self._window.append(_Pending(node, task))
            if not small:
                return  # one large blob at a time
            self._window_bytes += node.size

    async def _open(self, node: FileNode) -> BlobReader:
        reader = await self._blobs.open_read(node.digest)
        if reader is None:
            raise MissingContentError("blob", f"blob {node.digest} not found")
        return reader

    async def _fetch_small(self, node: FileNode) -> bytes:
        reader = await self._open(node)
        async with reader:
            return await reader.read(node.size + 1)

    def close(self) -> None:
        for pending in self._window:
            pending.task.cancel()
        self._window.clear()


def _retrieve(task: asyncio.Task[bytes | BlobReader]) -> None:
    if not task.cancelled():
        task.exception()
