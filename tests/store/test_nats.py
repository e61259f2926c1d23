"""NATS JetStream backends: layout, verification of everything read, large values, and a
server that goes away mid-write (clear errors, nothing half-visible, the write succeeds
again after the restart)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import nats
import pytest
import zstandard

from pytvix.castore.blobservice import put_blob, read_blob
from pytvix.castore.blobservice.chunk_index import decode_index
from pytvix.castore.blobservice.nats import NatsBlobService, NatsBlobServiceConfig
from pytvix.castore.composition import (
    BLOB_SERVICES,
    DIRECTORY_SERVICES,
    ConfigError,
    ServiceUrl,
    from_addr,
)
from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.directoryservice import put_closure
from pytvix.castore.directoryservice.nats import NatsDirectoryService
from pytvix.castore.drivers.nats_kv import KvBucket, KvLease, LeaseHeld
from pytvix.castore.errors import StorageError
from pytvix.castore.nodes import DirectoryNode, FileNode
from pytvix.castore.progress import no_progress
from pytvix.castore.scrub import ScrubReport
from pytvix.nixcompat.store_path import StorePath
from pytvix.store.composition import (
    PATHINFO_SERVICES,
    StoreServices,
    open_store_from_toml,
    open_store_from_urls,
)
from pytvix.store.path_info import PathInfo
from pytvix.store.pathinfoservice.nats import NatsPathInfoService
from pytvix.testing.fixtures import DIRECTORY_A, DIRECTORY_C, PATH_INFO
from pytvix.testing.synthetic import write_synthetic_path
from tests.chunked_reads import read_in_middle_chunk
from tests.servers.nats import NatsServer, delete_buckets, nats_server, unique_prefix

pytestmark = pytest.mark.servers


@pytest.fixture
def server() -> Iterator[NatsServer]:
    server = nats_server()
    yield server
    server.start()  # a test that stopped it leaves it running for the next


@pytest.fixture
async def prefix(server: NatsServer) -> AsyncIterator[str]:
    name = unique_prefix()
    yield name
    await delete_buckets(server.url, name)


@pytest.fixture
async def raw_js(server: NatsServer) -> AsyncIterator[Any]:
    """A plain client of the test server, to look at and tamper with what is stored."""
    nc = await nats.connect(server.url)
    yield nc.jetstream()
    await nc.close()


async def raw_put(js: Any, bucket: str, key: str, value: bytes) -> None:
    await js.publish(f"$KV.{bucket}.{key}", value)


async def raw_get(js: Any, bucket: str, key: str) -> bytes | None:
    try:
        msg = await js.get_msg(f"KV_{bucket}", subject=f"$KV.{bucket}.{key}", direct=True)
    except nats.js.errors.NotFoundError:
        return None
    return bytes(msg.data or b"")


async def last_seq(js: Any, bucket: str) -> int:
    return int((await js.stream_info(f"KV_{bucket}")).state.last_seq)


@pytest.fixture
def data() -> bytes:
    return os.urandom(3 << 20)


# --- configuration (no server needed) -----------------------------------------------------


def test_url_and_table_forms() -> None:
    url = ServiceUrl.parse(
        "nats+tls://user:secret@nats.example:4333?bucket_prefix=p1&replicas=3&timeout=2.5"
        "&avg_chunk_size=65536"
    )
    config = NatsBlobServiceConfig.from_url(url)
    assert config == NatsBlobServiceConfig(
        url="nats+tls://user:secret@nats.example:4333",
        bucket_prefix="p1",
        replicas=3,
        timeout=2.5,
        avg_chunk_size=65536,
    )
    endpoint = config.endpoint()
    assert endpoint.server == "tls://user:secret@nats.example:4333"
    assert endpoint.display == "nats+tls://nats.example:4333"  # no credentials in messages
    assert NatsBlobServiceConfig.from_table({"url": "nats://h"}).endpoint().server == (
        "nats://h:4222"
    )
    for bad in (
        "nats://h?unknown=1",
        "nats://h/path",
        "nats://h?replicas=x",
        "nats://h?bucket_prefix=a.b",
        "nats://h?timeout=0",
        "nats://h?bucket_prefix=a&bucket_prefix=b",
    ):
        with pytest.raises(ConfigError):
            BLOB_SERVICES.config_from_url(bad)
    with pytest.raises(ConfigError, match="avg_chunk_size"):
        DIRECTORY_SERVICES.config_from_url("nats://h?avg_chunk_size=4096")


async def test_too_small_chunks_rejected() -> None:
    with pytest.raises(ConfigError, match="avg_chunk_size 256"):
        await from_addr(BLOB_SERVICES, "nats://127.0.0.1:1?avg_chunk_size=256")


async def test_unreachable_server_is_a_storage_error_naming_it() -> None:
    service = await from_addr(PATHINFO_SERVICES, "nats://127.0.0.1:1?timeout=1")
    try:
        with pytest.raises(StorageError, match=r"NATS nats://127\.0\.0\.1:1: .*cannot connect"):
            await service.get(bytes(20))
    finally:
        await service.close()


async def test_toml_composition(tmp_path: Path, server: NatsServer, prefix: str) -> None:
    toml = tmp_path / "store.toml"
    table = f'type = "nats"\nurl = "{server.url}"\nbucket_prefix = "{prefix}"\ntimeout = 3\n'
    toml.write_text(
        f"[blobservices.default]\n{table}avg_chunk_size = 65536\n"
        f"[directoryservices.default]\n{table}[pathinfoservices.default]\n{table}"
    )
    services = await open_store_from_toml(toml)
    try:
        info = await write_synthetic_path(services, 1)
        assert await services.path_info.get(info.store_path.digest) == info
        assert isinstance(services.blob, NatsBlobService)
        assert services.blob.avg_chunk_size == 65536
        # the three services share one connection
        assert isinstance(services.path_info, NatsPathInfoService)
        assert services.path_info.conn is services.blob.conn
    finally:
        await services.close()


# --- blobs ----------------------------------------------------------------------------------


async def blob_service(server: NatsServer, prefix: str, query: str = "") -> NatsBlobService:
    service = await from_addr(BLOB_SERVICES, f"{server.url}?bucket_prefix={prefix}{query}")
    assert isinstance(service, NatsBlobService)
    return service


async def test_layout_and_no_rewrite(
    server: NatsServer, prefix: str, raw_js: Any, data: bytes
) -> None:
    service = await blob_service(server, prefix)
    try:
        writer = await service.open_write()
        await writer.write(data)
        digest = await writer.close()
        assert writer.new_bytes == len(data)
        index = await raw_get(raw_js, f"{prefix}-blobs", digest.hex())
        assert index is not None
        chunks = decode_index(digest, index)
        assert len(chunks) > 1
        assert await service.chunks(digest) == chunks
        offset = 0
        for chunk in chunks:
            frame = await raw_get(raw_js, f"{prefix}-chunks", chunk.digest.hex())
            assert frame is not None
            assert (
                zstandard.ZstdDecompressor().decompress(frame)
                == (data[offset : offset + chunk.size])
            )
            offset += chunk.size
        # a single-chunk blob: chunk under its own digest, empty index
        small = await put_blob(service, b"small blob")
        assert await service.chunks(small) == []
        assert await raw_get(raw_js, f"{prefix}-blobs", small.hex()) == b""
        # writing the same data again stores nothing
        before = {b: await last_seq(raw_js, f"{prefix}-{b}") for b in ("chunks", "blobs")}
        writer = await service.open_write()
        await writer.write(data)
        assert await writer.close() == digest
        assert writer.new_bytes == 0
        assert await service.put_many([b"small blob", data]) == [(small, 0), (digest, 0)]
        after = {b: await last_seq(raw_js, f"{prefix}-{b}") for b in ("chunks", "blobs")}
        assert after == before
        # a blob sharing a chunk with another one stores only its new chunks
        other = data[: chunks[0].size + chunks[1].size] + os.urandom(1 << 20)
        writer = await service.open_write()
        await writer.write(other)
        await writer.close()
        assert writer.new_bytes is not None
        assert writer.new_bytes <= len(other) - chunks[0].size
        report = ScrubReport()
        await service.scrub(report, no_progress)
        assert not report.problems
        assert report.checked["blobs"] == 3
        description = await service.describe()
        assert description["blobs"] == 3
        assert description["url"] == server.url
    finally:
        await service.close()


async def test_corrupt_chunk_is_an_error_never_data(
    server: NatsServer, prefix: str, raw_js: Any, data: bytes
) -> None:
    service = await blob_service(server, prefix)
    try:
        digest = await put_blob(service, data)
        chunks = await service.chunks(digest)
        assert chunks
        bucket = f"{prefix}-chunks"
        # same length, different contents: a valid zstd frame of other bytes
        other = bytearray(data[chunks[0].size : chunks[0].size + chunks[1].size])
        other[100] ^= 0xFF
        await raw_put(raw_js, bucket, chunks[1].digest.hex(), zstandard.compress(bytes(other)))
        reader = await service.open_read(digest)
        assert reader is not None
        assert await reader.read(chunks[0].size) == data[: chunks[0].size]
        with pytest.raises(StorageError, match=f"{server.url} .*corrupt"):
            await reader.read(10)
        await reader.close()
        # garbage that is not even zstd
        await raw_put(raw_js, bucket, chunks[1].digest.hex(), b"not zstd at all")
        with pytest.raises(StorageError, match="corrupt"):
            await read_blob(service, digest)
        # a single-chunk blob is verified too
        small = await put_blob(service, b"x" * 1000)
        await raw_put(raw_js, bucket, small.hex(), zstandard.compress(b"y" * 1000))
        with pytest.raises(StorageError, match="corrupt"):
            await service.open_read(small)
        report = ScrubReport()
        await service.scrub(report, no_progress)
        assert len(report.problems) == 2, report.problems
    finally:
        await service.close()


async def test_seek_fetches_only_needed_chunks(
    server: NatsServer, prefix: str, data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = await blob_service(server, prefix)
    try:
        digest = await put_blob(service, data)
        fetched: list[str] = []
        original = service.chunk_kv.get

        async def counting_get(key: str) -> bytes | None:
            fetched.append(key)
            return await original(key)

        monkeypatch.setattr(service.chunk_kv, "get", counting_get)
        chunks, target = await read_in_middle_chunk(service, digest, data)
        assert chunks[target].digest.hex() in fetched
        assert not {c.digest.hex() for c in chunks[:target]} & set(fetched)
    finally:
        await service.close()


async def test_large_blob_index(server: NatsServer, prefix: str, raw_js: Any) -> None:
    """An index of more chunks than fit one message goes to the object store."""
    service = await blob_service(server, prefix, "&avg_chunk_size=512")
    try:
        data = os.urandom(18 << 20)  # ~29k chunks of ~650 bytes: a ~1.2 MB index
        digest = await put_blob(service, data)
        chunks = await service.chunks(digest)
        assert chunks is not None
        assert len(chunks) > 25_000
        index = await raw_get(raw_js, f"{prefix}-blobs", digest.hex())
        assert index is not None
        assert index.startswith(b"\x00")  # the marker
        assert await read_blob(service, digest) == data
    finally:
        await service.close()


# --- directories and path infos ------------------------------------------------------------


async def test_corrupt_directory_and_path_info_detected(
    server: NatsServer, prefix: str, raw_js: Any
) -> None:
    query = f"?bucket_prefix={prefix}"
    directories = await from_addr(DIRECTORY_SERVICES, server.url + query)
    path_infos = await from_addr(PATHINFO_SERVICES, server.url + query)
    try:
        await put_closure(directories, [DIRECTORY_A, DIRECTORY_C])
        bucket = f"{prefix}-directories"
        key = DIRECTORY_C.digest().hex()
        # valid Directory bytes, but not those of this digest
        other = Directory([(b"x", FileNode(B3Digest(bytes(32)), 1, False))])
        await raw_put(raw_js, bucket, key, other.encode())
        with pytest.raises(StorageError, match="corrupt"):
            await directories.get(DIRECTORY_C.digest())
        with pytest.raises(StorageError, match="corrupt"):
            _ = [d async for d in directories.get_recursive(DIRECTORY_C.digest())]
        report = ScrubReport()
        assert isinstance(directories, NatsDirectoryService)
        await directories.scrub(report, no_progress)
        assert len(report.problems) == 1

        await path_infos.put(PATH_INFO)
        pkey = PATH_INFO.store_path.digest.hex()
        await raw_put(raw_js, f"{prefix}-pathinfo", pkey, b"\x0a\x03garbage")
        with pytest.raises(StorageError, match="invalid"):
            await path_infos.get(PATH_INFO.store_path.digest)
        # a valid PathInfo stored under another digest
        moved = replace(PATH_INFO, store_path=StorePath(bytes([7]) * 20, "moved"))
        await path_infos.put(moved)
        value = await raw_get(raw_js, f"{prefix}-pathinfo", moved.store_path.digest.hex())
        assert value is not None
        await raw_put(raw_js, f"{prefix}-pathinfo", pkey, value)
        with pytest.raises(StorageError, match="is for"):
            await path_infos.get(PATH_INFO.store_path.digest)
    finally:
        await directories.close()
        await path_infos.close()


async def test_large_directory_and_path_info(server: NatsServer, prefix: str) -> None:
    """Values above max_payload (1 MiB) round-trip through the object store."""
    query = f"?bucket_prefix={prefix}"
    directories = await from_addr(DIRECTORY_SERVICES, server.url + query)
    path_infos = await from_addr(PATHINFO_SERVICES, server.url + query)
    try:
        digest = B3Digest(bytes(32))
        big = Directory([(f"f{i:06}".encode(), FileNode(digest, i, False)) for i in range(30_000)])
        assert len(big.encode()) > 1 << 20
        parent = Directory([(b"big", big.as_node())])
        root = await put_closure(directories, [big, parent])
        assert await directories.get(big.digest()) == big
        assert [d async for d in directories.get_recursive(root)] == [parent, big]
        refs = tuple(StorePath(i.to_bytes(20, "big"), f"ref-{i:05}") for i in range(20_000))
        info = replace(PATH_INFO, references=refs)
        await path_infos.put(info)
        assert await path_infos.get(info.store_path.digest) == info
        assert [i async for i in path_infos.list()] == [info]
        # overwritten by a small one, then large again
        await path_infos.put(PATH_INFO)
        assert await path_infos.get(PATH_INFO.store_path.digest) == PATH_INFO
        await path_infos.put(info)
        assert await path_infos.get(info.store_path.digest) == info
    finally:
        await directories.close()
        await path_infos.close()


async def test_list_many(server: NatsServer, prefix: str) -> None:
    path_infos = await from_addr(PATHINFO_SERVICES, f"{server.url}?bucket_prefix={prefix}")
    try:
        assert [i async for i in path_infos.list()] == []
        infos = [
            replace(PATH_INFO, store_path=StorePath(i.to_bytes(20, "big"), f"p{i}"))
            for i in range(600)
        ]
        await asyncio.gather(*(path_infos.put(i) for i in infos))
        await path_infos.put(infos[0])  # overwritten: still listed once
        listed = [i async for i in path_infos.list()]

        def by_path(infos: list[PathInfo]) -> list[PathInfo]:
            return sorted(infos, key=lambda i: i.store_path)

        assert by_path(listed) == by_path(infos)
        # stopping early ends the scan
        async for _ in path_infos.list():
            break
    finally:
        await path_infos.close()


# --- the server going away ------------------------------------------------------------------


async def open_nats_store(server: NatsServer, prefix: str) -> StoreServices:
    url = f"{server.url}?bucket_prefix={prefix}&timeout=1"
    return await open_store_from_urls(url + "&avg_chunk_size=65536", url, url)


def synthetic_digest(seed: int) -> bytes:
    """The store path digest `write_synthetic_path(seed)` uses."""
    return hashlib.sha256(f"synthetic-{seed}".encode()).digest()[:20]


async def path_visible(services: StoreServices, seed: int) -> bool:
    """Whether path `seed` is visible; if it is, it is complete: its whole closure and every
    file's blob are there."""
    info = await services.path_info.get(synthetic_digest(seed))
    if info is None:
        return False
    assert isinstance(info.node, DirectoryNode)
    closure = [d async for d in services.directory.get_recursive(info.node.digest)]
    assert closure[0].digest() == info.node.digest
    for directory in closure:
        for _, node in directory.files():
            assert await services.blob.has(node.digest)
    return True


async def assert_directories_complete(services: StoreServices) -> None:
    """Every stored directory has all its children (a scrub finds no problem)."""
    assert isinstance(services.directory, NatsDirectoryService)
    report = ScrubReport()
    await services.directory.scrub(report, no_progress)
    assert not report.problems, report.problems


@pytest.mark.parametrize("crash_at", ["blob", "closure-root", "path-info"])
async def test_server_stopped_mid_write(
    server: NatsServer, prefix: str, crash_at: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = await open_nats_store(server, prefix)
    try:
        await write_synthetic_path(services, 1)  # connected, buckets exist
        counts = {"blob": 0, "closure-root": 0, "path-info": 0}
        create, put = KvBucket.create, KvBucket.put

        def maybe_stop(kind: str, nth: int) -> None:
            if kind == crash_at:
                counts[kind] += 1
                if counts[kind] == nth:
                    server.stop()

        async def create_hook(
            self: KvBucket, key: str, value: bytes, refresh_after: float | None = None
        ) -> bool:
            if self.name.endswith("-chunks"):
                maybe_stop("blob", 2)
            elif self.name.endswith("-directories"):
                maybe_stop("closure-root", 2)  # after the leaf, before the root
            return await create(self, key, value, refresh_after)

        async def put_hook(self: KvBucket, key: str, value: bytes) -> None:
            if self.name.endswith("-pathinfo"):
                maybe_stop("path-info", 1)
            await put(self, key, value)

        monkeypatch.setattr(KvBucket, "create", create_hook)
        monkeypatch.setattr(KvBucket, "put", put_hook)
        with pytest.raises(StorageError, match=rf"^NATS {server.url}: "):
            await write_synthetic_path(services, 2)
        assert not server.running
        monkeypatch.undo()
        # while it is away, reads fail clearly too
        with pytest.raises(StorageError, match="cannot connect"):
            await services.path_info.get(bytes(20))
        server.start()
        # the same services reconnect; nothing is half-visible
        assert await path_visible(services, 1)
        assert not await path_visible(services, 2)
        await assert_directories_complete(services)
        # and the same write succeeds now
        info = await write_synthetic_path(services, 2)
        assert await path_visible(services, 2)
        assert await services.path_info.get(info.store_path.digest) == info
        assert len([i async for i in services.path_info.list()]) == 2
    finally:
        await services.close()


async def test_server_killed_during_large_blob_write(server: NatsServer, prefix: str) -> None:
    services = await open_nats_store(server, prefix)
    try:
        data = os.urandom(128 << 20)
        digest = B3Digest.of(data)
        await put_blob(services.blob, b"warm up")

        async def kill_soon() -> None:
            await asyncio.sleep(0.15)
            await asyncio.to_thread(server.stop, kill=True)

        killer = asyncio.ensure_future(kill_soon())
        with pytest.raises(StorageError, match=rf"^NATS {server.url}: "):
            await put_blob(services.blob, data)
        await killer
        server.start()
        assert not await services.blob.has(digest)
        assert await services.blob.chunks(digest) is None
        assert await put_blob(services.blob, data) == digest
        assert await read_blob(services.blob, digest) == data
    finally:
        await services.close()


# --- garbage collection ---------------------------------------------------------------------


async def stream_state(js: Any, stream: str) -> tuple[int, int]:
    info = await js.stream_info(stream)
    return info.state.messages, info.state.bytes


async def test_gc_deletes_large_values_with_their_objects(
    server: NatsServer, prefix: str, raw_js: Any
) -> None:
    """A large directory's object goes with its message; an overwritten large path info's
    object goes at once."""
    directories = await from_addr(DIRECTORY_SERVICES, f"{server.url}?bucket_prefix={prefix}")
    path_infos = await from_addr(PATHINFO_SERVICES, f"{server.url}?bucket_prefix={prefix}")
    assert isinstance(directories, NatsDirectoryService)
    try:
        digest = B3Digest(bytes(32))
        big = Directory([(f"f{i:06}".encode(), FileNode(digest, i, False)) for i in range(30_000)])
        await put_closure(directories, [big])
        large_stream = f"OBJ_{prefix}-large"
        _, stored = await stream_state(raw_js, large_stream)
        assert stored > 1 << 20
        objects = [o async for o in directories.gc_objects()]
        assert [o.digest for o in objects] == [big.digest()]
        assert objects[0].size < 100  # the marker message; the value is in the object store
        assert await directories.gc_delete(objects, time.time() + 1) == objects
        assert await directories.get(big.digest()) is None
        _, stored = await stream_state(raw_js, large_stream)
        assert stored < 4096  # only the object store's delete marker is left

        refs = tuple(StorePath(i.to_bytes(20, "big"), f"ref-{i:05}") for i in range(20_000))
        await path_infos.put(replace(PATH_INFO, references=refs))
        assert (await stream_state(raw_js, large_stream))[1] > 1 << 20
        await path_infos.put(PATH_INFO)  # small now: the large value's object is removed
        assert (await stream_state(raw_js, large_stream))[1] < 8192
        assert await path_infos.get(PATH_INFO.store_path.digest) == PATH_INFO
    finally:
        await directories.close()
        await path_infos.close()


async def test_present_values_are_rewritten_only_when_stale(
    server: NatsServer, prefix: str
) -> None:
    """A create finding its value present stores it again (a new message for GC to see) only
    when the present one is older than the refresh interval."""
    directories = await from_addr(DIRECTORY_SERVICES, f"{server.url}?bucket_prefix={prefix}")
    assert isinstance(directories, NatsDirectoryService)
    kv = directories.kv
    try:
        key, value = DIRECTORY_A.digest().hex(), DIRECTORY_A.encode()
        assert await kv.create(key, value, refresh_after=3600)
        [first] = [e async for e in kv.entries()]
        assert not await kv.create(key, value, refresh_after=3600)
        assert [e async for e in kv.entries()] == [first]
        assert not await kv.create(key, value, refresh_after=0)
        [second] = [e async for e in kv.entries()]
        assert second.seq > first.seq
        assert second.written >= first.written
        assert await kv.get(key) == value
        # a collector that listed the first message deletes nothing: it was replaced
        assert await kv.delete_entries([first]) == []
        assert await kv.get(key) == value
        assert await kv.delete_entries([second]) == [second]
        assert await kv.get(key) is None
        assert await kv.create(key, value, refresh_after=3600)  # written again: back whole
        assert await directories.get(DIRECTORY_A.digest()) == DIRECTORY_A
    finally:
        await directories.close()


async def test_gc_lock_is_a_lease_a_dead_holder_loses(server: NatsServer, prefix: str) -> None:
    path_infos = await from_addr(PATHINFO_SERVICES, f"{server.url}?bucket_prefix={prefix}")
    assert isinstance(path_infos, NatsPathInfoService)
    lease = KvLease(path_infos.lock.bucket, "gc", ttl=1.0)
    try:
        async with lease.hold("first"):
            await asyncio.sleep(1.6)  # renewed meanwhile: still held
            with pytest.raises(LeaseHeld, match="first"):
                async with lease.hold("second"):
                    pass
        async with lease.hold("after release"):
            pass
        # a holder that dies without releasing: taken once it was not renewed for ttl
        await path_infos.conn.call("take", lambda js: lease._take(js, b"dead"))
        with pytest.raises(LeaseHeld, match="dead"):
            async with lease.hold("waiting"):
                pass
        await asyncio.sleep(1.2)
        async with lease.hold("taker"):
            pass
    finally:
        await path_infos.close()
