"""A seekable reader over a blob stored as a list of chunks.

Only the chunks a read touches are fetched. Reads that continue where the previous one ended
prefetch the next few chunks in the background, so fetching (I/O, decompression,
verification) overlaps with the consumer. `read_at` serves concurrent positional reads (as
the kernel issues for one open file through FUSE) without serializing them.
"""

from __future__ import annotations

import asyncio
import bisect
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from itertools import accumulate

from pytvix.castore.blobservice import BlobReader, ChunkMeta

FetchChunk = Callable[[ChunkMeta], Awaitable[bytes]]

# Chunks in flight beyond a sequential read: local stores read cold chunks from disk at
# 0.75-0.93 GB/s with 8, 1.09-1.10 GB/s with 16, 1.04-1.07 with 32 (1 GiB blob, 256 KiB chunks).
DEFAULT_READAHEAD = 16


class ChunkedBlobReader(BlobReader):
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
        # chunk index -> fetch (done or in flight), least recently used first
        self._cache: OrderedDict[int, asyncio.Task[bytes]] = OrderedDict()
        self._expected_next = 0  # where a sequential reader would read next

    def tell(self) -> int:
        return self._pos

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._pos = self._resolve_seek(offset, whence)
        return self._pos

    async def read(self, n: int = -1) -> bytes:
        data = await self.read_at(self._pos, self.size - self._pos if n < 0 else n)
        self._pos += len(data)
        return data

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
        horizon = last + (self._readahead if offset == self._expected_next else 0)
        horizon = min(horizon, len(self._chunks) - 1)
        self._expected_next = end
        parts: list[bytes | memoryview] = []
        for index in range(first, last + 1):
            for ahead in range(index, min(index + self._readahead, horizon) + 1):
                self._task(ahead)
            data = await asyncio.shield(self._task(index))
            start = self._ends[index] - self._chunks[index].size
            lo = max(offset, start) - start
            hi = min(end, self._ends[index]) - start
            parts.append(data if lo == 0 and hi == len(data) else memoryview(data)[lo:hi])
        return parts

    def _task(self, index: int) -> asyncio.Task[bytes]:
        task = self._cache.get(index)
        if task is not None:
            self._cache.move_to_end(index)
            return task
        task = asyncio.ensure_future(self._fetch(self._chunks[index]))
        task.add_done_callback(_consume_exception)
        self._cache[index] = task
        while len(self._cache) > 2 * self._readahead + 4:
            # forget the least recently used; a read still waiting on it keeps it alive
            self._cache.popitem(last=False)
        return task

    async def close(self) -> None:
        for task in self._cache.values():
            task.cancel()
        self._cache.clear()


def _consume_exception(task: asyncio.Task[bytes]) -> None:
    if not task.cancelled():
        task.exception()
