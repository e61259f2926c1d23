"""Walking a directory closure root-first (PROTOCOL.md §2.9)."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

import blake3

from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.errors import StorageError
from pytvix.castore.proto import child_directory_digests

GetFn = Callable[[B3Digest], Awaitable[Directory | None]]


async def breadth_first(get: GetFn, root: B3Digest) -> AsyncIterator[Directory]:
    """Yield the closure of `root` breadth-first, each directory exactly once, children in
    name order. An unknown root yields nothing; a missing descendant raises StorageError."""
    queue: deque[B3Digest] = deque([root])
    queued: set[B3Digest] = {root}
    while queue:
        digest = queue.popleft()
        directory = await get(digest)
        if directory is None:
            if digest == root:
                return
            raise StorageError(f"directory {digest} does not exist (referenced below {root})")
        for _, node in directory.directories():
            if node.digest not in queued:
                queued.add(node.digest)
                queue.append(node.digest)
        yield directory


class EncodedClosureWalk:
    """Bookkeeping of a root-first walk over stored canonical directory bytes: `pending` holds
    the digests still to fetch (in order), each directory is queued once, and every fetched
    directory is checked against its digest before its children are queued."""

    def __init__(self, root: B3Digest, where: str = "") -> None:
        self.root = root
        self.pending: deque[bytes] = deque([root])
        self._queued: set[bytes] = {root}
        self._where = where  # e.g. " in <store>", for messages

    def accept(self, digest: bytes, data: bytes | None) -> bool:
        """Check one fetched directory (None: not stored) and queue its unseen children.
        False: the root is not stored (the closure is empty). StorageError for a missing
        descendant or bytes that do not hash to their digest."""
        if data is None:
            if digest == self.root:
                return False
            raise StorageError(
                f"directory {B3Digest(digest)} does not exist (referenced below {self.root})"
            )
        if blake3.blake3(data).digest() != digest:
            raise StorageError(f"directory {B3Digest(digest)}{self._where} is corrupt")
        for child in child_directory_digests(data):
            if child not in self._queued:
                self._queued.add(child)
                self.pending.append(child)
        return True
