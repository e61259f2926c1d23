"""A seekable reader over a blob stored as a list of chunks.

Only the chunks a read touches are fetched. Reads that continue where the previous one ended
prefetch the next few chunks in the background, so fetching (I/O, decompression,
verification) overlaps with the consumer, as far as the process-wide read-ahead budget
(castore.readahead) allows; a stalled consumer holds its read-ahead and a few chunks it read.
`read_at` serves concurrent positional reads (as the kernel issues for one open file through
FUSE) without serializing them.
"""

from __future__ import annotations

import asyncio
import bisect
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from itertools import accumulate

from pytvix.castore.blobservice import ChunkMeta, PositionalReader
from pytvix.castore.readahead import BUDGET

FetchChunk = Callable[[ChunkMeta], Awaitable[bytes]]

# Chunks in flight beyond a sequential read: enough to keep a local disk busy (README,
# "Measurements behind the code").
DEFAULT_READAHEAD = 16
# Chunks already read that stay cached, for concurrent reads nearby (FUSE sends several).
KEEP_READ_CHUNKS = 2


class ChunkedBlobReader(PositionalReader):
    """Reads a blob through `fetch(chunk)`, which must return the verified chunk bytes
    (raising StorageError otherwise)."""

    def __init__(
        self, chunks: Sequence[ChunkMeta], fetch: FetchChunk, readahead: int = DEFAULT_READAHEAD
    ) -> None:
        self._chunks = list(chunks)
        self._ends = list(accumulate(c.size for c in self._chunks))
        self._fetch = fetch
        self._readahead = readahead
        self.size = self._ends[-1] if self._ends else 0
        self._pos = 0
        # chunk index -> fetch (done or in flight), least recently used first: chunks fetched
        # ahead (holding read-ahead budget) and up to KEEP_READ_CHUNKS already read
        self._cache: OrderedDict[int, asyncio.Task[bytes]] = OrderedDict()
        self._ahead: set[int] = set()
        self._expected_next = 0  # where a sequential reader would read next

    async def read_parts(self, n: int) -> list[bytes | memoryview]:
        parts = await self._parts_at(self._pos, n)
        self._pos += sum(len(p) for p in parts)
        return parts

    async def read_at(self, offset: int, n: int) -> bytes:
        parts = await self._parts_at(offset, n)
        if not parts:
            return b""
        return bytes(parts[0]) if len(parts) == 1 else b"".join(parts)

    async def _parts_at(self, offset: int, n: int) -> list[bytes | memoryview]:
        """The bytes of [offset, offset + n) as pieces of the chunks (views where a chunk
        is not used whole)."""
        end = min(self.size, offset + max(n, 0))
        if offset >= end:
            return []
        first = bisect.bisect_right(self._ends, offset)
        last = bisect.bisect_right(self._ends, end - 1)
        # sequential readers keep `readahead` chunks in flight beyond what they asked for
        sequential = offset == self._expected_next
        horizon = last + (self._readahead if sequential else 0)
        horizon = min(horizon, len(self._chunks) - 1)
        self._expected_next = end
        if sequential:
            self._drop_ahead_before(first)
        parts: list[bytes | memoryview] = []
        for index in range(first, last + 1):
            for ahead in range(index + 1, min(index + self._readahead, horizon) + 1):
                self._speculate(ahead)
            data = await asyncio.shield(self._demand(index))
            start = self._ends[index] - self._chunks[index].size
            lo = max(offset, start) - start
            hi = min(end, self._ends[index]) - start
            parts.append(data if lo == 0 and hi == len(data) else memoryview(data)[lo:hi])
        return parts

    def _demand(self, index: int) -> asyncio.Task[bytes]:
        """The fetch of a chunk a read needs now (started if need be); read-ahead it was
        fetched as gives its budget back."""
        task = self._cache.get(index)
        if task is None:
            task = self._start(index)
        else:
            self._cache.move_to_end(index)
        if index in self._ahead:
            self._ahead.discard(index)
            BUDGET.give(self._chunks[index].size)
        demanded = [i for i in self._cache if i not in self._ahead]
        for old in demanded[:-KEEP_READ_CHUNKS]:
            del self._cache[old]  # a read still waiting on it keeps it alive
        return task

    def _speculate(self, index: int) -> None:
        """Fetch a chunk ahead of the reader if the process-wide read-ahead budget allows."""
        if index in self._cache or len(self._ahead) >= self._readahead:
            return
        if BUDGET.try_take(self._chunks[index].size):
            self._ahead.add(index)
            self._start(index)

    def _drop_ahead_before(self, index: int) -> None:
        """Forget read-ahead a sequential reader has skipped past."""
        for skipped in [i for i in self._ahead if i < index]:
            self._ahead.discard(skipped)
            self._cache.pop(skipped, None)
            BUDGET.give(self._chunks[skipped].size)

    def _start(self, index: int) -> asyncio.Task[bytes]:
        task = asyncio.ensure_future(self._fetch(self._chunks[index]))
        task.add_done_callback(_consume_exception)
        self._cache[index] = task
        return task

    async def close(self) -> None:
        for task in self._cache.values():
            task.cancel()
        self._cache.clear()
        for index in self._ahead:
            BUDGET.give(self._chunks[index].size)
        self._ahead.clear()


def _consume_exception(task: asyncio.Task[bytes]) -> None:
    if not task.cancelled():
        task.exception()
