"""Object store blob layout specifics: keys, verification, partial fetches, no rewrites."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

import blake3
import pytest
import zstandard

from pytvix.castore.blobservice import ChunkMeta, put_blob, read_blob
from pytvix.castore.blobservice.chunk_index import decode_index
from pytvix.castore.blobservice.objectstore import DedupRate, ObjectStoreBlobService
from pytvix.castore.composition import BLOB_SERVICES, ConfigError, from_addr
from pytvix.castore.digests import B3Digest
from pytvix.castore.errors import StorageError
from pytvix.castore.object_layout import blob_key, chunk_key, digest_from_key
from pytvix.castore.progress import no_progress
from pytvix.castore.scrub import ScrubReport
from tests.castore.test_objectstore_local import cached_pages, evict
from tests.chunked_reads import read_in_middle_chunk
from tests.counting_store import CountingStore


@pytest.fixture
def data() -> bytes:
    return os.urandom(3 << 20)


async def test_layout_matches_upstream(tmp_path: Path, data: bytes) -> None:
    service = await from_addr(BLOB_SERVICES, f"objectstore+file://{tmp_path}")
    digest = await put_blob(service, data)
    index_file = tmp_path / "blobs" / "b3" / digest[:2].hex() / digest.hex()
    assert index_file.is_file()
    chunks = decode_index(digest, index_file.read_bytes())
    assert len(chunks) > 1
    assert sum(c.size for c in chunks) == len(data)
    # every chunk is a zstd frame of exactly its bytes
    offset = 0
    for chunk in chunks:
        path = tmp_path / "chunks" / "b3" / chunk.digest[:2].hex() / chunk.digest.hex()
        raw = zstandard.ZstdDecompressor().decompress(path.read_bytes())
        assert raw == data[offset : offset + chunk.size]
        assert blake3.blake3(raw).digest() == chunk.digest
        offset += chunk.size
    # chunk sizes follow min = avg/2, max = 2*avg (the last one may be shorter)
    assert all(128 << 10 <= c.size <= 512 << 10 for c in chunks[:-1])
    assert await service.chunks(digest) == chunks


async def test_single_chunk_blob_has_empty_chunk_list(tmp_path: Path) -> None:
    service = await from_addr(BLOB_SERVICES, f"objectstore+file://{tmp_path}")
    digest = await put_blob(service, b"small blob")
    assert await service.chunks(digest) == []
    assert (tmp_path / chunk_key(digest)).is_file()
    assert decode_index(digest, (tmp_path / blob_key(digest)).read_bytes()) == []


async def test_corrupt_chunk_is_an_error_never_data(tmp_path: Path, data: bytes) -> None:
    service = await from_addr(BLOB_SERVICES, f"objectstore+file://{tmp_path}")
    digest = await put_blob(service, data)
    chunks = await service.chunks(digest)
    assert chunks
    victim = tmp_path / chunk_key(chunks[1].digest)
    # same length, different contents: a valid zstd frame of other bytes
    other = bytearray(data[chunks[0].size : chunks[0].size + chunks[1].size])
    other[100] ^= 0xFF
    victim.write_bytes(zstandard.ZstdCompressor().compress(bytes(other)))
    reader = await service.open_read(digest)
    assert reader is not None
    assert await reader.read(chunks[0].size) == data[: chunks[0].size]
    with pytest.raises(StorageError, match="corrupt"):
        await reader.read(10)
    # garbage that is not even zstd
    victim.write_bytes(b"not zstd at all")
    with pytest.raises(StorageError, match="corrupt"):
        await read_blob(service, digest)
    # a single-chunk blob is verified too
    small = await put_blob(service, b"x" * 1000)
    (tmp_path / chunk_key(small)).write_bytes(zstandard.ZstdCompressor().compress(b"y" * 1000))
    with pytest.raises(StorageError, match="corrupt"):
        await service.open_read(small)


@pytest.mark.parametrize("size", [30_000, 3 << 20])
async def test_blobs_read_the_same_cached_or_from_disk(tmp_path: Path, size: int) -> None:
    """Cached chunks are read on the event loop, others in a worker thread."""
    service = await from_addr(BLOB_SERVICES, f"objectstore+file://{tmp_path}")
    data = os.urandom(size)
    digest = await put_blob(service, data)
    files = sorted((tmp_path / "chunks").rglob("*"))
    files = [f for f in files if f.is_file()]
    assert len(files) == (1 if size < 1 << 20 else len(await service.chunks(digest) or []))
    for f in files:
        evict(f)
    assert sum(cached_pages(f) for f in files) == 0
    assert await read_blob(service, digest) == data  # from disk, in workers
    assert all(cached_pages(f) > 0 for f in files)
    assert await read_blob(service, digest) == data  # from the page cache, inline


async def test_seek_fetches_only_needed_chunks(tmp_path: Path, data: bytes) -> None:
    store = CountingStore(f"file://{tmp_path}")
    service = ObjectStoreBlobService(store)
    digest = await put_blob(service, data)
    store.gets.clear()
    chunks, target = await read_in_middle_chunk(service, digest, data)
    fetched = [k for k in store.gets if k.startswith("chunks/")]
    assert chunk_key(chunks[target].digest) in fetched
    # the chunks before the target are never fetched
    assert not {chunk_key(c.digest) for c in chunks[:target]} & set(fetched)


async def test_read_parts_are_the_data_in_pieces(tmp_path: Path, data: bytes) -> None:
    service = await from_addr(BLOB_SERVICES, f"objectstore+file://{tmp_path}")
    digest = await put_blob(service, data)
    reader = await service.open_read(digest)
    assert reader is not None
    await reader.seek(1000)
    pieces: list[bytes] = []
    while parts := await reader.read_parts(700_000):  # spans chunk boundaries
        pieces.append(b"".join(parts))
        assert sum(len(p) for p in parts) <= 700_000
    assert b"".join(pieces) == data[1000:]
    assert reader.tell() == len(data)
    assert await reader.read_parts(10) == []


async def test_rewriting_existing_blob_writes_nothing(tmp_path: Path, data: bytes) -> None:
    store = CountingStore(f"file://{tmp_path}")
    service = ObjectStoreBlobService(store)
    digest = await put_blob(service, data)
    assert store.puts
    store.puts.clear()
    assert await put_blob(service, data) == digest
    assert store.puts == []


async def test_fresh_data_costs_one_request_per_chunk_after_a_while() -> None:
    """On a store with conditional creates, chunks that keep turning out new stop being
    checked first; known data is still never rewritten."""
    store = CountingStore("memory:///")
    service = ObjectStoreBlobService(store, avg_chunk_size=64 << 10)
    data = os.urandom(16 << 20)  # ~256 chunks, all new
    writer = await service.open_write()
    await writer.write(data)
    await writer.close()
    chunks = await service.chunks(B3Digest(blake3.blake3(data).digest()))
    assert chunks is not None
    assert len(chunks) > 150
    chunk_keys = {chunk_key(c.digest) for c in chunks}
    checked = [k for k in store.exists_checks if k in chunk_keys]
    assert 30 < len(checked) < 80  # the first ~50 stores, then conditional creates only
    assert {k for k in store.creates if k in chunk_keys} == chunk_keys - set(checked)
    # the same data again: nothing new, whichever way each chunk was tried
    writer = await service.open_write()
    await writer.write(data)
    await writer.close()
    assert writer.new_bytes == 0


def test_dedup_rate_follows_recent_stores() -> None:
    rate = DedupRate()
    assert rate.expect_present()
    for _ in range(100):
        rate.record(present=False)
    assert not rate.expect_present()
    for _ in range(20):
        rate.record(present=True)
    assert rate.expect_present()


async def test_missing_chunk_after_index_is_storage_error(tmp_path: Path, data: bytes) -> None:
    service = await from_addr(BLOB_SERVICES, f"objectstore+file://{tmp_path}")
    digest = await put_blob(service, data)
    chunks = await service.chunks(digest)
    assert chunks
    (tmp_path / chunk_key(chunks[-1].digest)).unlink()
    with pytest.raises(StorageError, match="missing"):
        await read_blob(service, digest)
    # rewriting the blob repairs it: missing chunks are stored again
    assert await put_blob(service, data) == digest
    assert await read_blob(service, digest) == data


async def test_reads_streaming_zstd_frames_without_content_size(tmp_path: Path) -> None:
    """Upstream writes chunks with a streaming encoder (no content size in the header)."""
    service = await from_addr(BLOB_SERVICES, f"objectstore+file://{tmp_path}")
    payload = b"written by tvix " * 1000
    digest = B3Digest.of(payload)
    buf = io.BytesIO()
    with zstandard.ZstdCompressor().stream_writer(buf, closefd=False) as w:
        w.write(payload)
    path = tmp_path / chunk_key(digest)
    path.parent.mkdir(parents=True)
    path.write_bytes(buf.getvalue())
    assert zstandard.frame_content_size(buf.getvalue()) == -1
    assert await read_blob(service, digest) == payload
    assert await service.has(digest)


async def test_concurrent_readers_of_one_blob(tmp_path: Path, data: bytes) -> None:
    service = await from_addr(BLOB_SERVICES, f"objectstore+file://{tmp_path}")
    digest = await put_blob(service, data)
    results = await asyncio.gather(*[read_blob(service, digest) for _ in range(8)])
    assert all(r == data for r in results)


async def test_scrub_finds_corruption_and_missing_chunks(tmp_path: Path, data: bytes) -> None:
    service = await from_addr(BLOB_SERVICES, f"objectstore+file://{tmp_path}")
    assert isinstance(service, ObjectStoreBlobService)
    digest = await put_blob(service, data)
    small = await put_blob(service, b"tiny")
    report = ScrubReport()
    await service.scrub(report, no_progress)
    assert report.problems == []
    chunks = await service.chunks(digest)
    assert report.checked["blobs"] == 2
    assert chunks is not None
    assert report.checked["chunks"] == len(chunks) + 1
    # a stray staging file of an interrupted write is not a problem
    (tmp_path / "chunks" / "b3" / "stray#1").write_bytes(b"partial")
    (tmp_path / chunk_key(chunks[0].digest)).unlink()
    (tmp_path / chunk_key(small)).write_bytes(zstandard.ZstdCompressor().compress(b"evil"))
    report = ScrubReport()
    await service.scrub(report, no_progress)
    text = "\n".join(report.problems)
    assert f"chunk {chunks[0].digest} is missing" in text
    assert f"chunk {small} in" in text
    # one problem each, named once: the chunked blob's missing chunk, the corrupt small blob
    assert len(report.problems) == 2, report.problems
    assert report.damaged_blobs == {digest, small}


def test_digest_from_key() -> None:
    d = B3Digest.of(b"x")
    assert digest_from_key(chunk_key(d), "chunks/b3/") == d
    assert digest_from_key(chunk_key(d) + "#1", "chunks/b3/") is None
    assert digest_from_key(f"chunks/b3/0000/{d.hex()}", "chunks/b3/") is None


@pytest.mark.parametrize(
    "url",
    [
        "objectstore+file://{tmp}?avg_chunk_size=abc",
        "objectstore+file://{tmp}?avg_chunk_size=10",
        "objectstore+file://{tmp}?fsync=maybe",
        "objectstore://nothing",
    ],
)
async def test_bad_urls(url: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        await from_addr(BLOB_SERVICES, url.format(tmp=tmp_path))


def test_chunk_meta_equality() -> None:
    d = B3Digest.of(b"a")
    assert ChunkMeta(d, 1) == ChunkMeta(d, 1)
