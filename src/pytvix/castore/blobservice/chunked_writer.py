"""The blob writer of the chunking backends (object store, NATS): input is hashed (digest and
Bao outboard in one pass) and cut with FastCDC off the event loop, chunks are stored
concurrently (bounded), and the blob index is committed only after every chunk was stored, so
no index ever points at missing chunks.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable
from typing import Any, Protocol

from pytvix_bao import OutboardHasher

from pytvix.castore.blobservice import BlobWriter, ChunkMeta
from pytvix.castore.blobservice.chunking import Piece, StreamChunker, immutable_piece
from pytvix.castore.digests import EMPTY_BLOB_DIGEST, B3Digest
from pytvix.castore.workers import run

# Chunks in flight per writer: bounds memory to about this many chunks plus a few batches.
MAX_INFLIGHT_CHUNKS = 16
# Writer input is hashed and chunked in batches of this size, off the event loop.
WRITE_BATCH = 4 << 20


class ChunkStore(Protocol):
    """What a chunking backend provides to its writer."""

    avg_chunk_size: int
    # Chunks per start_chunks() call: more than one where a chunk is cheap to store and the
    # hand-off to a worker thread is a noticeable part of its cost (local files).
    chunks_per_job: int

    def start_chunks(self, chunks: list[memoryview]) -> Awaitable[list[tuple[ChunkMeta, bool]]]:
        """Start hashing and storing chunks unless present, now; the result is, per chunk,
        its metadata and whether it was new. Must not block the event loop."""
        ...

    async def store_whole_blob(self, data: bytes) -> tuple[B3Digest, int]:
        """Store a blob held in memory (the writer's path for one-chunk blobs); returns its
        digest and how many bytes were new."""
        ...

    async def commit_index(
        self, digest: B3Digest, chunks: list[ChunkMeta], outboard: bytes
    ) -> None:
        """Make the blob readable, after all its chunks were stored; `outboard` is its Bao
        outboard (castore.bao)."""
        ...


class ChunkedBlobWriter(BlobWriter):
    def __init__(self, store: ChunkStore) -> None:
        self._store = store
        self._chunker = StreamChunker(store.avg_chunk_size)
        self._hasher = OutboardHasher()
        self._pending: list[Piece] = []
        self._pending_size = 0
        self._inflight: deque[asyncio.Future[list[tuple[ChunkMeta, bool]]]] = deque()
        self._inflight_chunks = 0
        self._batch: asyncio.Future[None] | None = None  # the batch being hashed and cut
        self._chunks: list[ChunkMeta] = []
        self._new_bytes = 0
        self._new_chunks = 0
        self._digest: B3Digest | None = None
        self._aborted = False

    async def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._digest is not None or self._aborted:
            raise ValueError("write on a closed blob writer")
        piece = immutable_piece(data)
        self._pending.append(piece)
        self._pending_size += len(piece)
        if self._pending_size >= WRITE_BATCH:
            await self._start_batch(final=False)
        return len(piece)

    async def _start_batch(self, *, final: bool) -> None:
        """Start processing the pending bytes once the previous batch is done, and return:
        the caller produces the next batch meanwhile (at most two batches are held)."""
        pieces, self._pending, self._pending_size = self._pending, [], 0
        if self._batch is not None:
            await self._batch
        self._batch = asyncio.ensure_future(self._process(pieces, final))
        self._batch.add_done_callback(_consume_exception)

    async def _process(self, pieces: list[Piece], final: bool) -> None:
        """Hash and cut the bytes off the loop (two jobs, in parallel), then start storing
        the chunks, waiting for the oldest while too many are in flight."""
        _, chunks = await asyncio.gather(run(self._hash, pieces), run(self._cut, pieces, final))
        step = self._store.chunks_per_job
        for start in range(0, len(chunks), step):
            group = chunks[start : start + step]
            while self._inflight_chunks + len(group) > MAX_INFLIGHT_CHUNKS and self._inflight:
                await self._collect_oldest()
            future = asyncio.ensure_future(self._store.start_chunks(group))
            future.add_done_callback(_consume_exception)
            self._inflight.append(future)
            self._inflight_chunks += len(group)

    def _hash(self, pieces: list[Piece]) -> None:
        for piece in pieces:
            self._hasher.update(piece)

    def _cut(self, pieces: list[Piece], final: bool) -> list[memoryview]:
        chunks = self._chunker.feed(*pieces)
        if final:
            chunks += self._chunker.finish()
        return chunks

    async def _collect_oldest(self) -> None:
        stored = await self._inflight.popleft()
        self._inflight_chunks -= len(stored)
        for chunk, new in stored:
            self._chunks.append(chunk)
            if new:
                self._new_bytes += chunk.size
                self._new_chunks += 1

    async def close(self) -> B3Digest:
        if self._digest is not None:
            return self._digest
        if self._aborted:
            raise ValueError("close on an aborted blob writer")
        try:
            if self._is_small():
                data = b"".join(self._pending)
                digest, self._new_bytes = await self._store.store_whole_blob(data)
                self._chunks.append(ChunkMeta(digest, len(data)))
                self._new_chunks = 1 if self._new_bytes else 0
            else:
                await self._start_batch(final=True)
                assert self._batch is not None
                await self._batch
                while self._inflight:
                    await self._collect_oldest()
                root, outboard = self._hasher.finalize()
                digest = B3Digest(root)
                if digest != EMPTY_BLOB_DIGEST:
                    await self._store.commit_index(digest, self._chunks, outboard)
        except BaseException:
            await self.abort()
            raise
        self.new_bytes = self._new_bytes
        self.chunk_counts = (self._new_chunks, len(self._chunks) - self._new_chunks)
        self._digest = digest
        return digest

    def _is_small(self) -> bool:
        """Nothing cut yet and the whole blob is one chunk: one store job instead of hash,
        cut and index hops."""
        return self._batch is None and self._chunker.is_single_chunk(self._pending_size)

    async def abort(self) -> None:
        """Drop buffered data; chunks already stored stay (unreferenced, harmless)."""
        self._aborted = True
        if self._batch is not None:
            self._batch.cancel()
        while self._inflight:
            self._inflight.popleft().cancel()
        self._inflight_chunks = 0
        self._pending, self._pending_size = [], 0


def _consume_exception(future: asyncio.Future[Any]) -> None:
    """Mark the exception of a job nobody awaits any more (after an abort) as seen."""
    if not future.cancelled():
        future.exception()
