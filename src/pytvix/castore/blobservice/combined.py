"""`combined` BlobService (composition only): reads the local store first; on a miss asks the
remote for the blob's chunks and reads each one through the local store, filling it. Writes
go to the local store only; the remote is never written. Concurrent misses for the same blob
or chunk fetch it from the remote once.

`cache` (pytvix only, near/far like the directory and path info caches) reads the same way but
writes to the far store only: the layout for several daemons sharing one far store, where
a blob written through one node must be readable through every other. The near store fills
on read."""

from __future__ import annotations

from dataclasses import dataclass

from pytvix.castore.bao import BlobOutboard
from pytvix.castore.blobservice import (
    BlobReader,
    BlobService,
    BlobWriter,
    ChunkMeta,
    read_blob,
)
from pytvix.castore.blobservice.chunked_reader import ChunkedBlobReader
from pytvix.castore.composition import BLOB_SERVICES, Composition, ServiceConfig
from pytvix.castore.digests import B3Digest
from pytvix.castore.errors import StorageError
from pytvix.castore.singleflight import SingleFlight
from pytvix.observability import NOOP_CACHE, CacheCounters, cache_counters


class CombinedBlobService(BlobService):
    def __init__(
        self, local: BlobService, remote: BlobService, counters: CacheCounters = NOOP_CACHE
    ) -> None:
        self.local = local
        self.remote = remote
        self.counters = counters  # reads of blobs and chunks answered locally or not
        self._fills: SingleFlight[B3Digest, bool] = SingleFlight()

    async def has(self, digest: B3Digest) -> bool:
        return await self.local.has(digest) or await self.remote.has(digest)

    async def chunks(self, digest: B3Digest) -> list[ChunkMeta] | None:
        chunks = await self.local.chunks(digest)
        return chunks if chunks is not None else await self.remote.chunks(digest)

    async def open_read(self, digest: B3Digest) -> BlobReader | None:
        reader = await self.local.open_read(digest)
        if reader is not None:
            self.counters.hit()
            return reader
        self.counters.miss()
        chunks = await self.remote.chunks(digest)
        if chunks is None:
            return None
        if len(chunks) > 1:
            return ChunkedBlobReader(chunks, self._chunk)
        if not await self._fills.run(digest, lambda: self._fill(digest)):
            return None
        return await self.local.open_read(digest)

    async def outboard(self, digest: B3Digest) -> BlobOutboard | None:
        found = await self.local.outboard(digest)
        return found if found is not None else await self.remote.outboard(digest)

    async def _chunk(self, chunk: ChunkMeta) -> bytes:
        data = await read_blob(self.local, chunk.digest)
        if data is not None:
            self.counters.hit()
        else:
            self.counters.miss()
            if not await self._fills.run(chunk.digest, lambda: self._fill(chunk.digest)):
                raise StorageError(f"chunk {chunk.digest} is missing from the remote store")
            data = await read_blob(self.local, chunk.digest)
        if data is None or len(data) != chunk.size:
            raise StorageError(f"chunk {chunk.digest} could not be read back locally")
        return data

    async def _fill(self, digest: B3Digest) -> bool:
        """Copy one blob (or chunk) from the remote into the local store."""
        reader = await self.remote.open_read(digest)
        if reader is None:
            return False
        writer = await self.local.open_write()
        try:
            async with reader:
                while piece := await reader.read(1 << 20):
                    await writer.write(piece)
        except BaseException:
            await writer.abort()
            raise
        stored = await writer.close()
        if stored != digest:
            raise StorageError(f"remote returned data hashing to {stored} for {digest}")
        return True

    async def open_write(self) -> BlobWriter:
        return await self.local.open_write()


@dataclass(frozen=True)
class CombinedBlobServiceConfig(ServiceConfig[BlobService]):
    """TOML only: `local` and `remote` name other blob services."""

    local: str
    remote: str

    async def build(self, instance: str, composition: Composition) -> BlobService:
        return CombinedBlobService(
            await composition.build(BLOB_SERVICES, self.local),
            await composition.build(BLOB_SERVICES, self.remote),
            cache_counters("blob", instance),
        )

    def durable(self, composition: Composition) -> bool:
        return composition.durable(BLOB_SERVICES, self.local)  # writes go to local only


class CacheBlobService(CombinedBlobService):
    """Reads near first (filling it from far chunk by chunk); writes go to far only."""

    async def open_write(self) -> BlobWriter:
        return await self.remote.open_write()


@dataclass(frozen=True)
class CacheBlobServiceConfig(ServiceConfig[BlobService]):
    """TOML only: `near` and `far` name other blob services."""

    near: str
    far: str

    async def build(self, instance: str, composition: Composition) -> BlobService:
        return CacheBlobService(
            await composition.build(BLOB_SERVICES, self.near),
            await composition.build(BLOB_SERVICES, self.far),
            cache_counters("blob", instance),
        )

    def durable(self, composition: Composition) -> bool:
        return composition.durable(BLOB_SERVICES, self.far)  # writes go to far
