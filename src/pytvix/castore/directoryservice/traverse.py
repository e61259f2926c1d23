"""Walking a directory closure root-first (PROTOCOL.md §2.9)."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.errors import StorageError

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
