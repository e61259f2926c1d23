"""Where the two-tier blob services write and how they fill: `combined` (upstream) writes
near only; `cache` (for several daemons over one far store) writes far only; both fill near
on read, chunk by chunk for chunked blobs."""

from __future__ import annotations

import os

import pytest

from pytvix.castore.blobservice import BlobService, put_blob, read_blob
from pytvix.castore.blobservice.combined import CacheBlobService, CombinedBlobService
from pytvix.castore.blobservice.memory import MemoryBlobService
from pytvix.castore.blobservice.objectstore import ObjectStoreBlobService
from pytvix.castore.drivers.objectstore import open_object_store


def far_store() -> ObjectStoreBlobService:
    return ObjectStoreBlobService(open_object_store("memory:///"), avg_chunk_size=65536)


@pytest.mark.parametrize(
    ("kind", "written_to"), [(CombinedBlobService, "near"), (CacheBlobService, "far")]
)
async def test_writes_go_to_one_tier(kind: type[CombinedBlobService], written_to: str) -> None:
    near, far = MemoryBlobService(), far_store()
    tiers: dict[str, BlobService] = {"near": near, "far": far}
    service = kind(near, far)
    digest = await put_blob(service, b"hello tiers")
    for name, tier in tiers.items():
        assert await tier.has(digest) == (name == written_to), name
    assert await read_blob(service, digest) == b"hello tiers"


async def test_cache_fills_near_only_with_the_chunks_read() -> None:
    near, far = MemoryBlobService(), far_store()
    data = os.urandom(2 << 20)
    digest = await put_blob(far, data)
    chunks = await far.chunks(digest)
    assert chunks is not None
    assert len(chunks) > 4
    service = CacheBlobService(near, far)
    reader = await service.open_read(digest)
    assert reader is not None
    async with reader:
        offset = chunks[0].size + chunks[1].size + 10  # inside the third chunk
        assert await reader.read_at(offset, 100) == data[offset : offset + 100]
    filled = [await near.has(c.digest) for c in chunks]
    assert filled[2]
    assert not filled[0]
    assert not any(filled[4:])
    # a second node reading the whole blob gets the same bytes
    assert await read_blob(CacheBlobService(MemoryBlobService(), far), digest) == data
