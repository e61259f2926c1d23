"""BlobService on object storage (`objectstore+<url>`), in upstream's layout (PROTOCOL.md §2.10).

- `blobs/b3/<hex(digest[:2])>/<hex(digest)>`: a serialized StatBlobResponse listing the blob's
  chunks; the list is empty when the blob is a single chunk. pytvix keeps a chunked blob's
  Bao outboard in its `bao` field, computed in the same pass as the digest (indexes written
  without one get it the first time it is asked for; a single chunk's is derived from it).
- `chunks/b3/<hex(digest[:2])>/<hex(digest)>`: zstd-compressed chunk bytes.

Writes chunk the stream with FastCDC (ChunkedBlobWriter); each chunk is hashed, and compressed
and stored only if it is not stored yet, on the worker pool. The blob index is written last,
after all its chunks (and, with `fsync`, after a durability barrier), so no index ever points
at missing chunks.
Every chunk read is decompressed and verified against its digest before use.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import blake3
from pytvix_bao import outboard, outboard_size

from pytvix.buffers import Buffer
from pytvix.castore.bao import BlobOutboard
from pytvix.castore.blobservice import (
    BlobReader,
    BlobService,
    BlobWriter,
    BytesBlobReader,
    ChunkMeta,
)
from pytvix.castore.blobservice.chunk_codec import decode_chunk, encode_chunk
from pytvix.castore.blobservice.chunk_index import decode_index, encode_index, read_index
from pytvix.castore.blobservice.chunked_reader import DEFAULT_READAHEAD, ChunkedBlobReader
from pytvix.castore.blobservice.chunked_writer import ChunkedBlobWriter
from pytvix.castore.blobservice.chunking import DEFAULT_AVG_CHUNK_SIZE, StreamChunker
from pytvix.castore.blobservice.objectstore_scrub import BlobScrubber
from pytvix.castore.composition import Composition, ConfigError, ServiceConfig, ServiceUrl
from pytvix.castore.digests import EMPTY_BLOB_DIGEST, B3Digest
from pytvix.castore.drivers.objectstore import (
    NOT_CACHED,
    ObjectStore,
    object_store_url,
    open_object_store,
    parse_bool,
)
from pytvix.castore.errors import StorageError
from pytvix.castore.gc import StoredObject, write_refresh
from pytvix.castore.object_layout import (
    BLOBS_PREFIX,
    CHUNKS_PREFIX,
    TRASHED_BLOB,
    blob_key,
    chunk_key,
    count_objects,
    delete_unwritten,
    digest_from_key,
    get_restoring,
    restore,
    trash_key,
    trashed_objects,
)
from pytvix.castore.progress import Progress
from pytvix.castore.scrub import ScrubReport
from pytvix.castore.workers import cpu_pool, run, run_on

# Stored chunks up to this size (the default chunker's largest chunk, 512 KiB, plus zstd
# framing) are read on the event loop when the page cache holds them (_load_chunk): such a
# read costs less than the hand-off to and from a worker thread (README, "Measurements
# behind the code").
INLINE_READ_MAX = 576 << 10
# Chunks a sequential reader keeps in flight beyond its read on remote stores, where each
# fetch is a request with milliseconds of latency (local stores: DEFAULT_READAHEAD).
REMOTE_READAHEAD = 32
LOCAL_CHUNKS_PER_JOB = 4


class ObjectStoreBlobService(BlobService):
    def __init__(
        self, store: ObjectStore, avg_chunk_size: int = DEFAULT_AVG_CHUNK_SIZE, fsync: bool = False
    ) -> None:
        self.store = store
        self.avg_chunk_size = avg_chunk_size
        self.fsync = fsync
        # local chunks are cheap to store: a few per worker job save hand-offs;
        # remote ones wait on the network, and go one per job (in parallel)
        self.chunks_per_job = 1 if store.remote else LOCAL_CHUNKS_PER_JOB
        # writing batches of small blobs: locally CPU and syscall work (no more jobs than
        # cores), remotely waiting on the network (as many as requests should be in flight).
        # (Reading batches stay on pool(): from a cold page cache they wait on the disk.)
        self._batch_executor = store.executor if store.remote else cpu_pool()
        StreamChunker(avg_chunk_size)  # validate the size early
        self._inflight: dict[B3Digest, Future[None]] = {}
        self._dedup = DedupRate()
        self._inflight_lock = threading.Lock()

    # --- reading ---------------------------------------------------------------------------

    async def has(self, digest: B3Digest) -> bool:
        if digest == EMPTY_BLOB_DIGEST:
            return True
        return await self._has(digest) or (await self._restore(digest) and await self._has(digest))

    async def _has(self, digest: B3Digest) -> bool:
        return await self.store.aexists(blob_key(digest)) or await self.store.aexists(
            chunk_key(digest)
        )

    async def _restore(self, digest: B3Digest) -> bool:
        """Put a blob a collection moved to the trash back (object_layout); whether it was."""
        return await run_on(self.store.executor, self._restore_blob, digest)

    def _restore_blob(self, digest: B3Digest) -> bool:
        index = restore(self.store, blob_key(digest))
        return restore(self.store, chunk_key(digest)) or index

    async def chunks(self, digest: B3Digest) -> list[ChunkMeta] | None:
        if digest == EMPTY_BLOB_DIGEST:
            return []
        found = await self._chunks(digest)
        if found is None and await self._restore(digest):
            found = await self._chunks(digest)
        return found

    async def _chunks(self, digest: B3Digest) -> list[ChunkMeta] | None:
        index = await self.store.aget(blob_key(digest))
        if index is not None:
            return decode_index(digest, index)
        return [] if await self.store.aexists(chunk_key(digest)) else None

    async def open_read(self, digest: B3Digest) -> BlobReader | None:
        if digest == EMPTY_BLOB_DIGEST:
            return BytesBlobReader(b"")
        reader = await self._open_read(digest)
        if reader is None and await self._restore(digest):
            reader = await self._open_read(digest)
        return reader

    async def _open_read(self, digest: B3Digest) -> BlobReader | None:
        # A chunk under the blob's own digest is the whole blob (single-chunk blobs, or a
        # chunk read by its digest); only otherwise is the index needed (as upstream).
        data = await self._load_chunk(digest, None)
        if data is not None:
            return BytesBlobReader(data)
        index = await self.store.aget(blob_key(digest))
        if index is None:
            return None
        chunks = decode_index(digest, index)
        if not chunks:  # the chunk under the blob's digest is missing: in the trash?
            data = await run_on(self.store.executor, self._single_chunk, digest)
            return BytesBlobReader(data)
        readahead = REMOTE_READAHEAD if self.store.remote else DEFAULT_READAHEAD
        return ChunkedBlobReader(chunks, self._fetch_chunk, readahead)

    async def outboard(self, digest: B3Digest) -> BlobOutboard | None:
        """A chunked blob's outboard from its index (an index written without one gets it
        now); a single chunk's derived from its bytes."""
        if digest == EMPTY_BLOB_DIGEST:
            return BlobOutboard(0, b"")
        index = await self.store.aget(blob_key(digest))
        chunks, pairs = read_index(digest, index) if index is not None else ([], b"")
        size = sum(c.size for c in chunks)
        if len(chunks) > 1 and len(pairs) == outboard_size(size):
            return BlobOutboard(size, pairs)
        found = await super().outboard(digest)
        if found is not None and len(chunks) > 1:
            index = encode_index(chunks, found.pairs)
            await run_on(self.store.executor, self.store.put, blob_key(digest), index)
        return found

    def read_whole_blob(self, digest: B3Digest, limit: int) -> bytes | None:
        """A blob's bytes (at most limit + 1 of them), verified (blocking; worker threads)."""
        if digest == EMPTY_BLOB_DIGEST:
            return b""
        data = self._read_whole_blob(digest, limit)
        if data is None and self._restore_blob(digest):
            data = self._read_whole_blob(digest, limit)
        return data

    def _read_whole_blob(self, digest: B3Digest, limit: int) -> bytes | None:
        data = self._decode(digest, self.store.get(chunk_key(digest)), None)
        if data is not None:
            return data
        index = self.store.get(blob_key(digest))
        if index is None:
            return None
        chunks = decode_index(digest, index)
        if not chunks:
            return self._single_chunk(digest)
        parts, total = [], 0
        for chunk in chunks:
            part = self.read_chunk(chunk.digest, chunk.size)
            if part is None:
                raise StorageError(f"chunk {chunk.digest} of blob {digest} is missing")
            parts.append(part)
            total += len(part)
            if total > limit:
                break
        return b"".join(parts)[: limit + 1]

    def _single_chunk(self, digest: B3Digest) -> bytes:
        """The chunk under the digest of a blob indexed as that one chunk (blocking)."""
        data = self.read_chunk(digest, None)
        if data is None:
            raise StorageError(f"blob {digest} is indexed as one chunk, but the chunk is missing")
        return data

    async def read_many(self, digests: Sequence[B3Digest], limit: int) -> list[bytes | None]:
        """All blobs in one worker job."""
        return await run(lambda: [self.read_whole_blob(d, limit) for d in digests])

    async def _fetch_chunk(self, chunk: ChunkMeta) -> bytes:
        data = await self._load_chunk(chunk.digest, chunk.size)
        if data is None:
            data = await run_on(self.store.executor, self.read_chunk, chunk.digest, chunk.size)
        if data is None:
            raise StorageError(f"chunk {chunk.digest} is missing from {self.store.url}")
        return data

    async def _load_chunk(self, digest: B3Digest, expected_size: int | None) -> bytes | None:
        """read_chunk(): on the event loop for local chunks in the page cache, where a worker
        thread hand-off costs more than the read (`perf` of a FUSE mount serving `cat` and
        sequential reads: a third of its CPU time in thread switches); else on the store's
        pool."""
        key = chunk_key(digest)
        compressed = self.store.get_cached(key, INLINE_READ_MAX)
        if compressed is NOT_CACHED:
            compressed = await run_on(self.store.executor, self.store.get, key)
        return self._decode(digest, compressed, expected_size)

    def read_chunk(self, digest: B3Digest, expected_size: int | None) -> bytes | None:
        """Fetch, decompress and verify one chunk, restored from the trash if it is there
        (blocking; worker threads)."""
        compressed = get_restoring(self.store, chunk_key(digest))
        return self._decode(digest, compressed, expected_size)

    def _decode(
        self, digest: B3Digest, compressed: Buffer | None, expected_size: int | None
    ) -> bytes | None:
        if compressed is None:
            return None
        where = f"chunk {digest} in {self.store.url}"
        return decode_chunk(memoryview(compressed), digest, expected_size, where)

    # --- writing ---------------------------------------------------------------------------

    async def open_write(self) -> BlobWriter:
        return ChunkedBlobWriter(self)

    def start_chunks(self, chunks: list[memoryview]) -> Awaitable[list[tuple[ChunkMeta, bool]]]:
        """store_chunk of each on the store's pool, as one job (ChunkStore)."""
        job = self.store.executor.submit(lambda: [self.store_chunk(c) for c in chunks])
        return asyncio.wrap_future(job)

    async def store_whole_blob(self, data: bytes) -> tuple[B3Digest, int]:
        """Store a blob held in memory: chunks, then the index (ChunkStore)."""
        return await run(self._store_whole_blob, data)

    async def commit_index(self, digest: B3Digest, chunks: list[ChunkMeta], pairs: bytes) -> None:
        """(ChunkStore)"""
        await run(self.commit_indexes, [(digest, chunks, pairs)])

    def store_chunk(self, chunk: bytes | memoryview) -> tuple[ChunkMeta, bool]:
        """Hash one chunk and store it unless present; returns it and whether it was new
        (blocking; worker threads). Concurrent stores of the same chunk in this process
        write it once: later callers wait for the first."""
        digest = B3Digest(blake3.blake3(chunk).digest())
        meta = ChunkMeta(digest, len(chunk))
        with self._inflight_lock:
            first = self._inflight.get(digest)
            if first is None:
                self._inflight[digest] = mine = Future[None]()
        if first is not None:
            first.result()
            return meta, False
        try:
            new = self._store_unless_present(chunk_key(digest), chunk)
            mine.set_result(None)
        except BaseException as e:
            mine.set_exception(e)
            raise
        finally:
            with self._inflight_lock:
                del self._inflight[digest]
        return meta, new

    def _store_unless_present(self, key: str, chunk: bytes | memoryview) -> bool:
        """Store a chunk unless present; True if it was new. While chunks mostly turn out to
        be present, a cheap existence check comes first; while they mostly turn out new
        (fresh data), one conditional create per chunk instead (half the requests on S3).
        A chunk found present but written long ago is written again, so that garbage
        collection sees it is needed (castore.gc)."""
        if self._dedup.expect_present():
            modified = self.store.modified(key)
            new = modified is None
            if _stale(modified):
                self.store.replace(key, encode_chunk(chunk))
        else:
            new = self.store.create(key, encode_chunk(chunk))
            if not new and _stale(self.store.modified(key)):
                self.store.replace(key, encode_chunk(chunk))
        self._dedup.record(present=not new)
        return new

    def _store_chunks(self, data: bytes) -> tuple[IndexEntry, int]:
        """Chunk a blob held in memory and store its chunks (not its index); returns its
        index entry and how many bytes were new (blocking; worker threads)."""
        chunker = StreamChunker(self.avg_chunk_size)
        if chunker.is_single_chunk(len(data)):
            meta, new = self.store_chunk(data)
            return (meta.digest, [meta], b""), len(data) if new else 0
        chunks, new_bytes = [], 0
        for piece in [*chunker.feed(data), *chunker.finish()]:
            meta, new = self.store_chunk(piece)
            chunks.append(meta)
            new_bytes += meta.size if new else 0
        root, pairs = outboard(data)
        return (B3Digest(root), chunks, pairs), new_bytes

    def _store_whole_blob(self, data: bytes) -> tuple[B3Digest, int]:
        """store_whole_blob, blocking (worker threads)."""
        entry, new_bytes = self._store_chunks(data)
        self.commit_indexes([entry])
        return entry[0], new_bytes

    async def put_many(self, blobs: Sequence[bytes]) -> list[tuple[B3Digest, int | None]]:
        """All blobs in one worker job (small blobs cost a few file writes, not event-loop
        round trips), with one durability barrier for the whole batch."""

        def store_all() -> list[tuple[B3Digest, int | None]]:
            stored = [self._store_chunks(data) for data in blobs]
            self.commit_indexes([entry for entry, _ in stored])
            return [(entry[0], new) for entry, new in stored]

        return await run_on(self._batch_executor, store_all)

    # --- maintenance -----------------------------------------------------------------------

    async def scrub(self, report: ScrubReport, progress: Progress) -> None:
        """Re-hash every blob and chunk (Scrubbable)."""
        await run(BlobScrubber(self.store, self.read_chunk, report, progress).run)

    async def describe(self) -> dict[str, str | int]:
        blobs, _ = await run(count_objects, self.store, BLOBS_PREFIX)
        chunks, stored = await run(count_objects, self.store, CHUNKS_PREFIX)
        return {"url": self.store.url, "blobs": blobs, "chunks": chunks, "stored bytes": stored}

    # --- garbage collection (castore.gc.Collectable) -------------------------------------

    async def gc_objects(self) -> AsyncIterator[StoredObject]:
        for prefix, kind in ((BLOBS_PREFIX, "blob"), (CHUNKS_PREFIX, "chunk")):
            async for meta in self.store.alist(prefix):
                digest = digest_from_key(meta.key, prefix)
                if digest is not None:
                    yield StoredObject(kind, digest, meta.size, meta.modified, meta.key)
        trashed = trashed_objects(self.store, (BLOBS_PREFIX, CHUNKS_PREFIX), TRASHED_BLOB)
        while batch := await run_on(self.store.executor, list, itertools.islice(trashed, 1000)):
            for obj in batch:
                yield obj

    async def gc_expand(self, live: set[B3Digest]) -> Iterable[B3Digest]:
        """The chunks of live chunked blobs (their indexes are read)."""
        return await run_on(self.store.executor, self._live_chunks, live)

    def _live_chunks(self, live: set[B3Digest]) -> set[B3Digest]:
        """The chunks of live blobs' indexes, those in the trash too (a blob a writer relied
        on while it was moved there is restored on its next read)."""
        chunks: set[B3Digest] = set()
        for prefix in (BLOBS_PREFIX, trash_key(BLOBS_PREFIX)):
            for meta in self.store.list(prefix):
                digest = digest_from_key(meta.key, prefix)
                if digest is not None and digest in live:
                    index = self.store.get(meta.key)
                    if index is not None:
                        chunks.update(c.digest for c in decode_index(digest, index))
        return chunks

    async def gc_delete(
        self, objects: Sequence[StoredObject], written_before: float
    ) -> list[StoredObject]:
        return await run_on(
            self.store.executor, delete_unwritten, self.store, objects, written_before
        )

    def commit_indexes(self, blobs: Sequence[IndexEntry]) -> None:
        """Write blob indexes after their chunks are stored (blocking; worker threads). With
        `fsync`, the chunks are on disk before any index points at them, and the indexes
        before this returns: two barriers per call, however many blobs it commits."""
        missing = [
            (digest, chunks, pairs)
            for digest, chunks, pairs in blobs
            if digest != EMPTY_BLOB_DIGEST and _stale(self.store.modified(blob_key(digest)))
        ]
        if not missing:
            return
        if self.fsync:
            self.store.sync()
        for digest, chunks, pairs in missing:
            chunked = len(chunks) > 1
            index = encode_index(chunks if chunked else [], pairs if chunked else b"")
            self.store.replace(blob_key(digest), index)
        if self.fsync:
            self.store.sync()


IndexEntry = tuple[B3Digest, list[ChunkMeta], bytes]
"""A blob to index: digest, chunks, outboard (indexes keep it for chunked blobs)."""


def _stale(modified: float | None) -> bool:
    """Whether an object must be written (again): absent, or written before GC's refresh
    interval (castore.gc.WRITE_REFRESH)."""
    return modified is None or modified < time.time() - write_refresh()


class DedupRate:
    """A moving estimate of how often a stored chunk was already present (the last ~32
    stores weigh most). Updates from several threads may race; it is only a hint."""

    WEIGHT = 1 / 32
    THRESHOLD = 0.2  # below this rate, chunks are expected to be new

    def __init__(self) -> None:
        self.rate = 1.0  # start by checking: re-writing known data is the costly mistake

    def expect_present(self) -> bool:
        return self.rate >= self.THRESHOLD

    def record(self, *, present: bool) -> None:
        self.rate += self.WEIGHT * (float(present) - self.rate)


@dataclass(frozen=True)
class ObjectStoreBlobServiceConfig(ServiceConfig[BlobService]):
    """`objectstore+<object store URL>`, e.g. `objectstore+file:///srv/blobs`,
    `objectstore+memory:///`, `objectstore+s3://bucket/prefix?aws_endpoint_url=...`.
    Query pairs become object store options; `fsync=1` (local stores) makes every blob
    durable on disk before close() returns."""

    object_store_url: str
    object_store_options: dict[str, str]
    avg_chunk_size: int = DEFAULT_AVG_CHUNK_SIZE
    fsync: bool = False

    @classmethod
    def from_url(cls, url: ServiceUrl) -> ObjectStoreBlobServiceConfig:
        store_url, options = object_store_url(url)
        avg = options.pop("avg_chunk_size", str(DEFAULT_AVG_CHUNK_SIZE))
        fsync = options.pop("fsync", "false")
        try:
            avg_size = int(avg)
        except ValueError:
            raise ConfigError(f"{url.raw}: avg_chunk_size must be an integer") from None
        return cls(store_url, options, avg_size, parse_bool(url, "fsync", fsync))

    def durable(self, composition: Composition) -> bool:
        return not self.object_store_url.startswith("memory:")

    async def build(self, instance: str, composition: Composition) -> BlobService:
        try:
            return ObjectStoreBlobService(
                open_object_store(self.object_store_url, self.object_store_options),
                self.avg_chunk_size,
                self.fsync,
            )
        except ValueError as e:
            raise ConfigError(f"blob service {instance!r}: {e}") from e
