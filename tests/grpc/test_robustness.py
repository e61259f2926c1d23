"""The server under bad input and load: malformed and oversized messages get the right status
and the server stays up; clients vanishing mid-stream leave nothing behind; 32 concurrent
clients putting and reading for 30 s lose nothing."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc import aio

from pytvix._proto.tvix.castore.protos import castore_pb2 as pb
from pytvix.castore.blobservice import read_blob
from pytvix.castore.composition import BLOB_SERVICES, from_addr
from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.directoryservice import put_closure
from pytvix.castore.nodes import FileNode
from pytvix.nixcompat.store_path import StorePath
from pytvix.store.composition import StoreServices, open_store_from_urls
from pytvix.store.path_info import PathInfo
from tests.grpc.daemon import daemon, service_flags
from tests.memory import MIB, peak_rss, rss

DURATION = float(os.environ.get("PYTVIX_STRESS_SECONDS", "30"))


@pytest.fixture
def daemon_socket(tmp_path: Path):  # type: ignore[no-untyped-def]
    sock = tmp_path / "d.sock"
    with daemon(tmp_path / "home", str(sock)) as proc:
        (tmp_path / "home" / "daemon.pid").write_text(str(proc.pid))
        yield sock
        assert proc.poll() is None, "the daemon must survive everything the test did"


async def alive(sock: Path) -> None:
    channel = aio.insecure_channel(f"unix:{sock}")
    stat = channel.unary_unary("/tvix.castore.v1.BlobService/Stat")
    with pytest.raises(aio.AioRpcError) as e:
        await stat(b"\x0a\x20" + bytes(32))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    await channel.close()


async def test_malformed_messages(daemon_socket: Path) -> None:
    channel = aio.insecure_channel(f"unix:{daemon_socket}")
    put_dirs = channel.stream_unary("/tvix.castore.v1.DirectoryService/Put")

    async def stream(*messages: bytes) -> AsyncIterator[bytes]:
        for m in messages:
            yield m

    unsorted = pb.Directory(
        symlinks=[pb.SymlinkNode(name=b"b", target=b"x"), pb.SymlinkNode(name=b"a", target=b"x")]
    ).SerializeToString()
    with pytest.raises(aio.AioRpcError) as e:
        await put_dirs(stream(unsorted))
    assert e.value.code() == grpc.StatusCode.INTERNAL
    assert "is not sorted" in (e.value.details() or "")
    short_digest = pb.Directory(
        files=[pb.FileNode(name=b"f", digest=b"\x01\xff")]
    ).SerializeToString()
    with pytest.raises(aio.AioRpcError) as e:
        await put_dirs(stream(short_digest))
    assert "invalid digest length" in (e.value.details() or "")
    with pytest.raises(aio.AioRpcError) as e:
        await put_dirs(stream(b"\xff\xff\xff"))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(aio.AioRpcError) as e:
        await put_dirs(stream())
    assert e.value.code() == grpc.StatusCode.INTERNAL
    read = channel.unary_stream("/tvix.castore.v1.BlobService/Read")
    with pytest.raises(aio.AioRpcError) as e:
        _ = [m async for m in read(b"\x0a\x05hello")]
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await channel.close()
    await alive(daemon_socket)


async def test_oversized_message(daemon_socket: Path) -> None:
    channel = aio.insecure_channel(
        f"unix:{daemon_socket}", options=[("grpc.max_send_message_length", 512 << 20)]
    )
    put = channel.stream_unary("/tvix.castore.v1.BlobService/Put")
    huge = b"\x0a\x81\x80\x80\x81\x01" + bytes((256 << 20) + 1)  # one 257 MiB BlobChunk

    async def stream() -> AsyncIterator[bytes]:
        yield huge

    with pytest.raises(aio.AioRpcError) as e:
        await put(stream())
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    await channel.close()
    await alive(daemon_socket)


async def test_clients_vanishing_mid_stream(daemon_socket: Path, tmp_path: Path) -> None:
    blobs = await from_addr(BLOB_SERVICES, f"grpc+unix://{daemon_socket}")
    payload = os.urandom(5 << 20)
    writer = await blobs.open_write()
    await writer.write(payload[: 2 << 20])
    await writer.abort()  # cancels the call mid-stream
    assert not await blobs.has(B3Digest.of(payload))
    # a reader giving up after the first message
    digest = B3Digest.of(payload)
    w2 = await blobs.open_write()
    await w2.write(payload)
    assert await w2.close() == digest
    channel = aio.insecure_channel(f"unix:{daemon_socket}")
    read = channel.unary_stream("/tvix.castore.v1.BlobService/Read")
    call = read(b"\x0a\x20" + digest)
    async for _ in call:
        call.cancel()
        break
    await channel.close()
    assert await read_blob(blobs, digest) == payload
    await blobs.close()
    await alive(daemon_socket)


async def client(url: str, seed: int, deadline: float) -> list[tuple[bytes, B3Digest, bytes]]:
    """Puts blobs, closures and path infos and reads them back until the deadline."""
    rng = random.Random(seed)
    services = await open_store_from_urls(url, url, url)
    written: list[tuple[bytes, B3Digest, bytes]] = []
    try:
        while time.monotonic() < deadline:
            data = rng.randbytes(rng.choice([0, 10, 5000, 300_000, 1_500_000]))
            writer = await services.blob.open_write()
            await writer.write(data)
            digest = await writer.close()
            directory = Directory([(b"f", FileNode(digest, len(data)))])
            await put_closure(services.directory, [directory])
            store_path = StorePath(
                hashlib.sha256(f"{seed}-{len(written)}".encode()).digest()[:20], "s"
            )
            await services.path_info.put(
                PathInfo(store_path, directory.as_node(), nar_size=len(data), nar_sha256=bytes(32))
            )
            written.append((store_path.digest, digest, hashlib.sha256(data).digest()))
            old_path, old_blob, old_sha = rng.choice(written)
            got = await read_blob(services.blob, old_blob)
            assert got is not None
            assert hashlib.sha256(got).digest() == old_sha
            assert await services.path_info.get(old_path) is not None
    finally:
        await services.close()
    return written


@pytest.mark.slow
async def test_32_concurrent_clients_lose_nothing(daemon_socket: Path, tmp_path: Path) -> None:
    url = f"grpc+unix://{daemon_socket}"
    pid = int((tmp_path / "home" / "daemon.pid").read_text())
    before = rss(pid)
    deadline = time.monotonic() + DURATION
    results = await asyncio.gather(*(client(url, seed, deadline) for seed in range(32)))
    assert all(results), "every client got work done"
    grown = peak_rss(pid) - before
    assert grown < 400 * MIB, f"the daemon grew by {grown / MIB:.0f} MiB"
    services: StoreServices = await open_store_from_urls(url, url, url)
    try:
        for written in results:
            for path_digest, blob_digest, sha in written:
                info = await services.path_info.get(path_digest)
                assert info is not None
                data = await read_blob(services.blob, blob_digest)
                assert data is not None
                assert hashlib.sha256(data).digest() == sha
    finally:
        await services.close()
    print(f"{sum(map(len, results))} paths written by 32 clients in {DURATION:.0f}s")


def test_flags_helper() -> None:
    assert service_flags("x")[1] == "x"


STALLED_CLIENT = """
import asyncio, sys
from grpc import aio

async def main(sock, digest, n):
    # small windows and no BDP probing: the client takes little and then stops reading
    options = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 64 << 10)]
    channel = aio.insecure_channel(f"unix:{sock}", options=options)
    read = channel.unary_stream("/tvix.castore.v1.BlobService/Read")
    calls = [read(b"\\x0a\\x20" + bytes.fromhex(digest)) for _ in range(n)]
    for call in calls:
        await call.read()  # the first message, then nothing more
    print("stalled", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def test_200_stalled_blob_readers_hold_bounded_memory(tmp_path: Path) -> None:
    """Each stalled stream holds about two messages in grpc plus a chunk or two; read-ahead
    for all of them together stays within --max-readahead."""
    sock = tmp_path / "d.sock"
    with daemon(tmp_path / "home", str(sock), "--max-readahead", "32M") as server:
        (tmp_path / "home" / "daemon.pid").write_text(str(server.pid))
        await stall_readers(sock, tmp_path, limit=200 * 2 * MIB + 32 * MIB)


async def stall_readers(daemon_socket: Path, tmp_path: Path, limit: int) -> None:
    url = f"grpc+unix://{daemon_socket}"
    blobs = await from_addr(BLOB_SERVICES, url)
    data = random.Random(1).randbytes(64 << 20)
    writer = await blobs.open_write()
    await writer.write(data)
    digest = await writer.close()
    await blobs.close()
    pid = int((tmp_path / "home" / "daemon.pid").read_text())
    before = rss(pid)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        STALLED_CLIENT,
        str(daemon_socket),
        digest.hex(),
        "200",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 120)
        assert line == b"stalled\n"
        await asyncio.sleep(3)  # let whatever the server would buffer pile up
        grown = rss(pid) - before
        print(f"200 stalled readers: the daemon grew by {grown / MIB:.0f} MiB")
        assert grown < limit, f"200 stalled readers grew the daemon by {grown / MIB:.0f} MiB"
        await alive(daemon_socket)  # and it still serves others
    finally:
        proc.kill()
        await proc.wait()
