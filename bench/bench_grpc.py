"""gRPC benchmarks (issue: gRPC API and daemon). A `tvix-store daemon` subprocess serves an
embedded store on a unix socket; the peer is the same backend used in process.

- blob put and read of 512 MiB through gRPC vs the in-process object store blob service
- recursive get of a 10k-directory closure (dirs/s) vs the same messages streamed by a bare
  grpc.aio server to a bare client (bench/grpc_stream_floor.py): the transport's own rate;
  and vs grpc's thread-pool server, the fastest grpcio stack here; plus the client's own
  cost of decoding and verifying a received directory (µs, in process)
- PathInfo get from one client process: requests/s, p50 and p99 latency
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import grpc_stream_floor
from bench.common import ROOT, RUNS, Report, Row, remove_at_exit, scratch_dir
from pytvix.castore.blobservice import BlobService
from pytvix.castore.composition import BLOB_SERVICES, from_addr
from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.directoryservice import put_closure
from pytvix.castore.directoryservice.graph import RootToLeavesValidator
from pytvix.castore.nodes import FileNode
from pytvix.castore.proto import decode_expected_directory
from pytvix.nixcompat.store_path import StorePath
from pytvix.store.composition import open_store_from_urls
from pytvix.store.path_info import PathInfo

BLOB_SIZE = 512 << 20
PIECE = 4 << 20


def start_daemon(home: Path, sock: Path, *flags: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytvix", "daemon", "-l", str(sock), *flags],
        cwd=ROOT,
        env={**os.environ, "TVIX_STORE_HOME": str(home)},
        stderr=subprocess.DEVNULL,
    )
    while not sock.exists():
        time.sleep(0.05)
    return proc


async def put_and_read(service: BlobService, data: bytes) -> tuple[float, float]:
    view = memoryview(data)
    start = time.perf_counter()
    writer = await service.open_write()
    for i in range(0, len(data), PIECE):
        await writer.write(view[i : i + PIECE])
    digest = await writer.close()
    put = time.perf_counter() - start
    start = time.perf_counter()
    reader = await service.open_read(digest)
    assert reader is not None
    total = 0
    while piece := await reader.read(PIECE):
        total += len(piece)
    assert total == len(data)
    return put, time.perf_counter() - start


async def bench_blobs(report: Report, scratch: Path, sock: Path) -> None:
    mib = BLOB_SIZE / (1 << 20)
    put_row = report.add(
        Row(
            "blob put 512 MiB",
            unit="MiB/s",
            higher_is_better=True,
            target=">= 500 MiB/s, >= 0.5",
        )
    )
    read_row = report.add(
        Row(
            "blob read 512 MiB",
            unit="MiB/s",
            higher_is_better=True,
            target=">= 500 MiB/s, >= 0.5",
        )
    )
    # A new blob every run, so each put really stores it; nothing is deleted between runs
    # (ext4 makes creates right after deleting thousands of files slow; see bench_store).
    for run in range(RUNS):
        data = os.urandom(BLOB_SIZE)
        grpc_blobs = await from_addr(BLOB_SERVICES, f"grpc+unix://{sock}")
        put, read = await put_and_read(grpc_blobs, data)
        await grpc_blobs.close()
        put_row.ours.append(mib / put)
        read_row.ours.append(mib / read)
        local = scratch / f"local{run}"
        in_process = await from_addr(BLOB_SERVICES, f"objectstore+file://{local}")
        put, read = await put_and_read(in_process, data)
        put_row.peer.append(mib / put)
        read_row.peer.append(mib / read)


def closure_10k() -> list[Directory]:
    """A 10k-directory closure, leaves first: 100 subtrees of 99 leaf directories with one file
    each, under one root (the last)."""
    leaves = [Directory([(b"f", FileNode(B3Digest.of(str(i).encode()), i))]) for i in range(9900)]
    mids = [
        Directory([(f"d{j}".encode(), leaves[i * 99 + j].as_node()) for j in range(99)])
        for i in range(100)
    ]
    root = Directory([(f"m{i}".encode(), m.as_node()) for i, m in enumerate(mids)])
    return [*leaves, *mids, root]


def start_floor(
    scratch: Path, closure: list[Directory], mode: str = "serve"
) -> tuple[Path, subprocess.Popen[bytes]]:
    """The bare streaming server of grpc_stream_floor (`mode` serve or serve-sync), serving
    the closure's messages."""
    messages, sock = scratch / f"floor-{mode}.msgs", scratch / f"floor-{mode}.sock"
    grpc_stream_floor.write_messages(messages, [d.encode() for d in closure])
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.grpc_stream_floor", mode, str(sock), str(messages)],
        cwd=ROOT,
    )
    while not sock.exists():
        time.sleep(0.05)
    return sock, proc


def verify_cost(closure: list[Directory]) -> float:
    """µs per directory that the gRPC client spends decoding and verifying a recursive get
    (digest, expected by an earlier directory, graph checks), root first as servers send."""
    messages = [d.encode() for d in reversed(closure)]
    start = time.perf_counter()
    validator = RootToLeavesValidator(closure[-1].digest())
    for message in messages:
        _, directory = decode_expected_directory(message, validator.expects)
        assert directory is not None
        validator.add(directory)
    validator.finalize()
    return (time.perf_counter() - start) / len(messages) * 1e6


async def bench_metadata(
    report: Report, stacks: Report, sock: Path, closure: list[Directory], floors: list[Path]
) -> None:
    url = f"grpc+unix://{sock}"
    services = await open_store_from_urls(url, url, url)
    root = closure[-1]
    await put_closure(services.directory, closure)
    rec = report.add(
        Row(
            f"recursive get, {len(closure)} directories (dirs/s)",
            unit="/s",
            higher_is_better=True,
            target=">= 20k/s",
        )
    )
    rec_sync = stacks.add(
        Row(rec.name, ours=rec.ours, unit="/s", higher_is_better=True, target=rec.target)
    )
    verify = stacks.add(Row("client decode + verify per directory, in process", unit="us"))
    infos = []
    for i in range(1000):
        sp = StorePath(hashlib.sha256(str(i).encode()).digest()[:20], f"p{i}")
        infos.append(await services.path_info.put(PathInfo(sp, root.as_node(), nar_size=i)))
    gets = report.add(
        Row("PathInfo get, one client (req/s)", unit="/s", higher_is_better=True, target=">= 3k/s")
    )
    latencies: list[float] = []
    for _ in range(RUNS):
        start = time.perf_counter()
        count = sum([1 async for _ in services.directory.get_recursive(root.digest())])
        rec.ours.append(count / (time.perf_counter() - start))
        for row, floor in zip((rec, rec_sync), floors, strict=True):
            received, seconds = await grpc_stream_floor.count(str(floor))
            assert received == len(closure)
            row.peer.append(received / seconds)
        verify.ours.append(verify_cost(closure))
        # sequential gets measure latency; 8 in flight measure one client's throughput
        for info in infos[:500]:
            t = time.perf_counter()
            await services.path_info.get(info.store_path.digest)
            latencies.append(time.perf_counter() - t)

        async def worker(part: list[PathInfo]) -> None:
            for info in part:
                assert await services.path_info.get(info.store_path.digest) is not None

        start = time.perf_counter()
        await asyncio.gather(*(worker(infos[i::8]) for i in range(8)))
        gets.ours.append(len(infos) / (time.perf_counter() - start))
    await services.close()
    latencies.sort()
    p50 = statistics.median(latencies) * 1e6
    p99 = latencies[int(len(latencies) * 0.99)] * 1e6
    print(f"PathInfo get latency (sequential): p50 {p50:.0f} µs, p99 {p99:.0f} µs")


async def bench_transport(report: Report, sock: Path) -> None:
    """Blobs through gRPC to a daemon keeping them in memory: the transport's own rate."""
    mib = BLOB_SIZE / (1 << 20)
    put_row = report.add(
        Row(
            "blob put 512 MiB, memory backend",
            unit="MiB/s",
            higher_is_better=True,
            target=">= 500 MiB/s",
        )
    )
    read_row = report.add(
        Row(
            "blob read 512 MiB, memory backend",
            unit="MiB/s",
            higher_is_better=True,
            target=">= 500 MiB/s",
        )
    )
    for _ in range(RUNS):
        data = os.urandom(BLOB_SIZE)  # new, so that the daemon stores it
        blobs = await from_addr(BLOB_SERVICES, f"grpc+unix://{sock}")
        put, read = await put_and_read(blobs, data)
        await blobs.close()
        put_row.ours.append(mib / put)
        read_row.ours.append(mib / read)


def main() -> None:
    scratch = scratch_dir("grpc")
    sock = scratch / "d.sock"
    memory_sock = scratch / "m.sock"
    proc = start_daemon(scratch / "home", sock)
    memory = start_daemon(scratch / "home-memory", memory_sock, "--blob-service-addr", "memory://")
    closure = closure_10k()
    floor, floor_server = start_floor(scratch, closure)
    sync_floor, sync_floor_server = start_floor(scratch, closure, "serve-sync")
    try:
        report = Report("gRPC over a unix socket", "in-process object store")
        asyncio.run(bench_blobs(report, scratch, sock))
        asyncio.run(bench_transport(report, memory_sock))
        metadata = Report(
            "gRPC metadata over a unix socket", "bare grpc.aio stream of the same messages"
        )
        stacks = Report(
            "gRPC recursive get against grpc's thread-pool server",
            "bare grpc sync-server stream of the same messages",
        )
        asyncio.run(bench_metadata(metadata, stacks, sock, closure, [floor, sync_floor]))
        report.print()
        metadata.print()
        stacks.print()
    finally:
        for p in (proc, memory, floor_server, sync_floor_server):
            p.terminate()
            p.wait()
        remove_at_exit(scratch)


if __name__ == "__main__":
    main()
