"""A seekable reader over a blob stored as a list of chunks.

Only the chunks a read touches are fetched. Sequential reads prefetch the next few chunks in
the background, so fetching (I/O, decompression, verification) overlaps with the consumer.
"""

from __future__ import annotations

import asyncio
import bisect
import os
from collections.abc import Awaitable, Callable, Sequence
from itertools import accumulate

from pytvix.castore.blobservice import BlobReader, ChunkMeta

FetchChunk = Callable[[ChunkMeta], Awaitable[bytes]]

DEFAULT_READAHEAD = 4


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
        self._pending: dict[int, asyncio.Task[bytes]] = {}
        self._last_index = -1

    def tell(self) -> int:
        return self._pos

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._pos = self._resolve_seek(offset, whence)
        return self._pos

    async def read(self, n: int = -1) -> bytes:
        end = self.size if n < 0 else min(self.size, self._pos + n)
        parts: list[bytes] = []
        while self._pos < end:
            index = bisect.bisect_right(self._ends, self._pos)
            data = await self._chunk(index)
            start = self._ends[index] - self._chunks[index].size
            lo = self._pos - start
            hi = min(len(data), end - start)
            parts.append(data if lo == 0 and hi == len(data) else data[lo:hi])
            self._pos = start + hi
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def _chunk(self, index: int) -> bytes:
        sequential = index == self._last_index + 1 or index == self._last_index
        task = self._pending.get(index)
        if task is None:
            task = self._start(index)
        # drop prefetched chunks we moved away from, then prefetch ahead when sequential
        for other in [i for i in self._pending if i < index - 1 or i > index + self._readahead]:
            self._pending.pop(other).cancel()
        if sequential:
            for ahead in range(index + 1, min(index + 1 + self._readahead, len(self._chunks))):
                if ahead not in self._pending:
                    self._start(ahead)
        self._last_index = index
        return await asyncio.shield(task)

    def _start(self, index: int) -> asyncio.Task[bytes]:
        task = asyncio.ensure_future(self._fetch(self._chunks[index]))
        task.add_done_callback(_consume_exception)
        self._pending[index] = task
        return task

    async def close(self) -> None:
        for task in self._pending.values():
            task.cancel()
        self._pending.clear()


def _consume_exception(task: asyncio.Task[bytes]) -> None:
    if not task.cancelled():
        task.exception()
