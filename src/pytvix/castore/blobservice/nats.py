"""BlobService on NATS JetStream (`nats://host:port?bucket_prefix=pytvix`).

Layout (two KV buckets; see `pytvix.castore.drivers.nats_kv` for buckets and large values):
- `<prefix>-chunks`: key hex(chunk digest) -> zstd frame of the chunk. Content-addressed, so
  chunks are shared by all blobs containing them.
- `<prefix>-blobs`: key hex(blob digest) -> serialized StatBlobResponse listing the chunks
  (empty for a blob that is a single chunk, stored under the blob's own digest), as in the
  object store layout, with a chunked blob's Bao outboard in its `bao` field (computed in
  the same pass as the digest; derived from the chunks, and cached in memory, for indexes
  written without one).

Chunks are cut with the same FastCDC chunker as the object store backend, hashed and
compressed on the worker pool and created only if absent (a create of a present chunk is
rejected by the server: nothing is rewritten, unless its message is older than
castore.gc.WRITE_REFRESH, and `new_bytes` counts what was stored). The
blob index is created last, after every chunk was acknowledged, so no index points at missing
chunks; a failed write leaves at most unreferenced chunks. Every chunk read is decompressed
and verified against its digest (and the size the index records) before use; corrupt data is
a StorageError. Seekable reads fetch only the chunks they touch (ChunkedBlobReader).

Chunks are one message each (a JetStream object store object would be 128 KiB messages behind
a per-read consumer, several times slower); a value above the server's max_payload (only with
avg_chunk_size near 512 KiB or above, or an index of more than ~25k chunks) goes to the
`<prefix>-large` object store.

Garbage collection lists both buckets' messages (headers only) and deletes the unreachable
ones by stream sequence, indexes before chunks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial

import blake3
from pytvix_bao import outboard, outboard_size

from pytvix.castore.bao import BlobOutboard
from pytvix.castore.blobservice import (
    BlobReader,
    BlobService,
    BlobWriter,
    BytesBlobReader,
    ChunkMeta,
)
from pytvix.castore.blobservice.chunk_codec import compress_chunk, decode_chunk
from pytvix.castore.blobservice.chunk_index import decode_index, encode_index, read_index
from pytvix.castore.blobservice.chunked_reader import ChunkedBlobReader
from pytvix.castore.blobservice.chunked_writer import MAX_INFLIGHT_CHUNKS, ChunkedBlobWriter
from pytvix.castore.blobservice.chunking import DEFAULT_AVG_CHUNK_SIZE, StreamChunker
from pytvix.castore.blobservice.outboards import OutboardCache
from pytvix.castore.composition import Composition, ConfigError, ServiceConfig
from pytvix.castore.digests import EMPTY_BLOB_DIGEST, B3Digest
from pytvix.castore.drivers.nats import NatsConnection, NatsSettings, gather_limited
from pytvix.castore.drivers.nats_kv import KvBucket, LargeValues
from pytvix.castore.errors import StorageError
from pytvix.castore.gc import StoredObject, write_refresh
from pytvix.castore.progress import Progress
from pytvix.castore.scrub import ScrubReport
from pytvix.castore.workers import run

# Blobs (or chunks) handled at once by put_many, read_many and scrub.
BATCH_CONCURRENCY = 16
# Chunks this small are verified on the event loop (a worker hop costs more).
INLINE_VERIFY = 16 << 10


def _compress(chunk: bytes | memoryview) -> tuple[B3Digest, bytes]:
    """(digest, zstd frame) of a chunk (blocking; worker threads)."""
    return B3Digest(blake3.blake3(chunk).digest()), compress_chunk(chunk)


class NatsBlobService(BlobService):
    def __init__(self, settings: NatsSettings, avg_chunk_size: int = DEFAULT_AVG_CHUNK_SIZE):
        StreamChunker(avg_chunk_size)  # validates the size
        self.avg_chunk_size = avg_chunk_size
        self.conn = NatsConnection.acquire(settings.endpoint())
        large = LargeValues(self.conn, settings.bucket("large"), settings.replicas)
        self.chunk_kv = KvBucket(self.conn, settings.bucket("chunks"), settings.replicas, large)
        self.blob_kv = KvBucket(self.conn, settings.bucket("blobs"), settings.replicas, large)
        self._derived = OutboardCache()
        self._closed = False

    def _where(self, digest: B3Digest) -> str:
        return f"{self.conn.endpoint.display} bucket {self.chunk_kv.name}, chunk {digest}"

    # --- reading ---------------------------------------------------------------------------

    async def has(self, digest: B3Digest) -> bool:
        if digest == EMPTY_BLOB_DIGEST:
            return True
        return await self.blob_kv.exists(digest.hex()) or await self.chunk_kv.exists(digest.hex())

    async def chunks(self, digest: B3Digest) -> list[ChunkMeta] | None:
        if digest == EMPTY_BLOB_DIGEST:
            return []
        index = await self.blob_kv.get(digest.hex())
        if index is not None:
            return decode_index(digest, index)
        return [] if await self.chunk_kv.exists(digest.hex()) else None

    async def open_read(self, digest: B3Digest) -> BlobReader | None:
        if digest == EMPTY_BLOB_DIGEST:
            return BytesBlobReader(b"")
        # A chunk under the blob's own digest is the whole blob; only otherwise is the index
        # needed (one round trip for small blobs).
        data = await self.read_chunk(digest, None)
        if data is not None:
            return BytesBlobReader(data)
        index = await self.blob_kv.get(digest.hex())
        if index is None:
            return None
        chunks = decode_index(digest, index)
        if not chunks:
            raise StorageError(f"blob {digest} is indexed as one chunk, but the chunk is missing")
        return ChunkedBlobReader(chunks, self._fetch_chunk)

    async def outboard(self, digest: B3Digest) -> BlobOutboard | None:
        """A chunked blob's outboard from its index; a single chunk's, or one its index lacks,
        derived from its bytes (the latter kept in memory)."""
        if digest == EMPTY_BLOB_DIGEST:
            return BlobOutboard(0, b"")
        index = await self.blob_kv.get(digest.hex())
        chunks, pairs = read_index(digest, index) if index is not None else ([], b"")
        size = sum(c.size for c in chunks)
        if len(chunks) > 1 and len(pairs) == outboard_size(size):
            return BlobOutboard(size, pairs)
        found = self._derived.get(digest) or await super().outboard(digest)
        if found is not None and len(chunks) > 1:
            self._derived.put(digest, found)
        return found

    async def read_many(self, digests: Sequence[B3Digest], limit: int) -> list[bytes | None]:
        jobs = [partial(self._read_whole, d, limit) for d in digests]
        return await gather_limited(jobs, BATCH_CONCURRENCY)

    async def _read_whole(self, digest: B3Digest, limit: int) -> bytes | None:
        """A blob's bytes, verified (at most limit + 1 of them)."""
        reader = await self.open_read(digest)
        if reader is None:
            return None
        async with reader:
            return await reader.read(limit + 1)

    async def _fetch_chunk(self, chunk: ChunkMeta) -> bytes:
        data = await self.read_chunk(chunk.digest, chunk.size)
        if data is None:
            raise StorageError(f"{self._where(chunk.digest)} is missing")
        return data

    async def read_chunk(self, digest: B3Digest, expected_size: int | None) -> bytes | None:
        """Fetch, decompress and verify one chunk; None if it is not stored."""
        frame = await self.chunk_kv.get(digest.hex())
        if frame is None:
            return None
        if len(frame) <= INLINE_VERIFY:
            return self._verify(digest, frame, expected_size)
        return await run(self._verify, digest, frame, expected_size)

    def _verify(self, digest: B3Digest, frame: bytes, expected_size: int | None) -> bytes:
        return decode_chunk(frame, digest, expected_size, self._where(digest))

    # --- writing ---------------------------------------------------------------------------

    async def open_write(self) -> BlobWriter:
        return ChunkedBlobWriter(self)

    chunks_per_job = 1

    def start_chunks(self, chunks: list[memoryview]) -> Awaitable[list[tuple[ChunkMeta, bool]]]:
        """(ChunkStore)"""
        return asyncio.gather(*map(self.store_chunk, chunks))

    async def store_chunk(self, chunk: bytes | memoryview) -> tuple[ChunkMeta, bool]:
        """Hash and compress one chunk (worker pool), create it unless present; returns it
        and whether it was new."""
        digest, frame = await run(_compress, chunk)
        new = await self.chunk_kv.create(digest.hex(), frame, write_refresh())
        return ChunkMeta(digest, len(chunk)), new

    async def commit_index(self, digest: B3Digest, chunks: list[ChunkMeta], pairs: bytes) -> None:
        """Create the blob index (with its outboard), after all its chunks are stored."""
        chunked = len(chunks) > 1
        index = encode_index(chunks if chunked else [], pairs if chunked else b"")
        await self.blob_kv.create(digest.hex(), index, write_refresh())

    async def store_whole_blob(self, data: bytes) -> tuple[B3Digest, int]:
        """Store a blob held in memory; returns its digest and how many bytes were new."""
        if not data:
            return EMPTY_BLOB_DIGEST, 0
        chunker = StreamChunker(self.avg_chunk_size)
        if chunker.is_single_chunk(len(data)):
            meta, new = await self.store_chunk(data)
            digest, chunks, new_bytes = meta.digest, [meta], len(data) if new else 0
            pairs = b""
        else:
            pieces = await run(lambda: [*chunker.feed(data), *chunker.finish()])
            jobs = [partial(self.store_chunk, p) for p in pieces]
            stored = await gather_limited(jobs, MAX_INFLIGHT_CHUNKS)
            chunks = [meta for meta, _ in stored]
            new_bytes = sum(meta.size for meta, new in stored if new)
            root, pairs = await run(outboard, data)
            digest = B3Digest(root)
        await self.commit_index(digest, chunks, pairs)
        return digest, new_bytes

    async def put_many(self, blobs: Sequence[bytes]) -> list[tuple[B3Digest, int | None]]:
        jobs = [partial(self.store_whole_blob, b) for b in blobs]
        return list(await gather_limited(jobs, BATCH_CONCURRENCY))

    # --- maintenance -----------------------------------------------------------------------

    async def scrub(self, report: ScrubReport, progress: Progress) -> None:
        """Re-hash every blob through its chunks, then every chunk no blob refers to; each
        problem is reported once (Scrubbable)."""
        checked: set[B3Digest] = set()
        async for key, index in self.blob_kv.items():
            try:
                digest = B3Digest.from_hex(key)
                await self._scrub_blob(digest, decode_index(digest, index), checked, progress)
            except (StorageError, ValueError) as e:
                report.problem(f"blob {key} in {self.conn.endpoint.display}: {e}")
                continue
            report.ok("blobs")
        async for key in self.chunk_kv.keys():
            try:
                digest = B3Digest.from_hex(key)
                if digest in checked or await self.read_chunk(digest, None) is None:
                    continue  # checked with a blob, or removed meanwhile
            except (StorageError, ValueError) as e:
                report.problem(f"chunk {key}: {e}")
                continue
            report.ok("chunks")
            progress("chunks", 1)

    async def _scrub_blob(
        self, digest: B3Digest, chunks: list[ChunkMeta], checked: set[B3Digest], progress: Progress
    ) -> None:
        """Verify one blob (StorageError on the first problem); its chunks count as checked."""
        if not chunks:
            checked.add(digest)
            if await self.read_chunk(digest, None) is None:
                raise StorageError("indexed as one chunk, but the chunk is missing")
            return
        checked.update(c.digest for c in chunks)
        hasher = blake3.blake3()
        for start in range(0, len(chunks), BATCH_CONCURRENCY):
            batch = chunks[start : start + BATCH_CONCURRENCY]
            jobs = [partial(self._fetch_chunk, c) for c in batch]
            for data in await gather_limited(jobs, BATCH_CONCURRENCY):
                hasher.update(data)
                progress("bytes", len(data))
        if hasher.digest() != digest:
            raise StorageError("its chunks do not hash to the blob digest")

    # --- garbage collection (castore.gc.Collectable) -------------------------------------

    async def gc_objects(self) -> AsyncIterator[StoredObject]:
        async for obj in self.blob_kv.gc_objects("blob"):
            yield obj
        async for obj in self.chunk_kv.gc_objects("chunk"):
            yield obj

    async def gc_expand(self, live: set[B3Digest]) -> Iterable[B3Digest]:
        """The chunks of live chunked blobs (every index is read once)."""
        chunks: set[B3Digest] = set()
        async for key, index in self.blob_kv.items():
            digest = B3Digest.from_hex(key)
            if digest in live:
                chunks.update(c.digest for c in decode_index(digest, index))
        return chunks

    async def gc_delete(
        self, objects: Sequence[StoredObject], written_before: float
    ) -> list[StoredObject]:
        # indexes first: a blob never points at chunks deleted before it
        deleted = await self.blob_kv.gc_delete(objects, written_before)
        return deleted + await self.chunk_kv.gc_delete(objects, written_before)

    async def describe(self) -> dict[str, str | int]:
        blobs, index_bytes = await self.blob_kv.stats()
        chunks, chunk_bytes = await self.chunk_kv.stats()
        return {
            "url": self.conn.endpoint.display,
            "buckets": f"{self.blob_kv.name}, {self.chunk_kv.name}",
            "blobs": blobs,
            "chunks": chunks,
            "stored bytes": index_bytes + chunk_bytes,
        }

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self.conn.release()


@dataclass(frozen=True)
class NatsBlobServiceConfig(NatsSettings, ServiceConfig[BlobService]):
    """`nats://host:port?bucket_prefix=pytvix&avg_chunk_size=262144` (fields of
    NatsSettings, plus the average chunk size)."""

    avg_chunk_size: int = DEFAULT_AVG_CHUNK_SIZE

    async def build(self, instance: str, composition: Composition) -> BlobService:
        try:
            return NatsBlobService(self, self.avg_chunk_size)
        except ValueError as e:
            raise ConfigError(f"blob service {instance!r}: {e}") from e
