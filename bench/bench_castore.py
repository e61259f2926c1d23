"""Bao verified streaming (issue 20): what outboards cost on ingest, and what verification
costs over HTTP, each against a peer measured in the same run.

- Ingest: `tvix-store import` of (b) two 1 GiB random files into a fresh embedded store
  (+ sync), against the same command with the outboard computation swapped for plain BLAKE3
  (bench/import_plain_hash.py: the same digests, zero outboards). Target: at most 5% slower.
- HTTP: one `tvix-store serve-castore` over an embedded store holding a 1 GiB random blob
  (read once, so both sides are served from the page cache). A verified 1 MiB read at a
  random offset through the castore+http client (one request for a group-aligned Bao-encoded
  range, decoded and checked) against an unverified `Range:` GET of the same bytes from the
  same server, alternating per sample, same offsets: target at most 1.5x the latency. And
  the whole blob read through the client (a verified stream) against a plain GET of it:
  target at least 0.8 of the speed.
The sides take turns in an order that rotates every run (common.alternating).
"""

from __future__ import annotations

import asyncio
import functools
import random
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import aiohttp

from bench.bench_fuse import big_file_dir
from bench.bench_nar import big_files_tree, read_and_warm, tree_stats
from bench.common import (
    GIB,
    ROOT,
    RUNS,
    Report,
    Row,
    alternating,
    pytvix,
    pytvix_cmd,
    pytvix_env,
    remove_at_exit,
    run_cmd_synced,
    same_start,
    scaled,
    scratch_dir,
    settle_after_deletes,
    size_label,
)
from pytvix.castore.blobservice.http import HttpBlobService
from pytvix.castore.composition import BLOB_SERVICES, from_addr
from pytvix.castore.digests import B3Digest
from tests.servers import free_port, wait_for_port

MIB = 1 << 20
SAMPLES = 40  # random reads per side and run
PIECE = 1 << 20


def plain_import_cmd() -> list[str]:
    """`tvix-store import` hashing with plain BLAKE3 instead of computing outboards."""
    return [sys.executable, str(ROOT / "bench" / "import_plain_hash.py"), "import"]


def bench_ingest(report: Report) -> None:
    tree = big_files_tree(scaled(GIB))
    files, size = tree_stats(tree)
    row = report.add(
        Row(
            f"import (b) {files} x {size_label(size // files)} + sync, outboards vs plain "
            "BLAKE3 (MB/s)",
            unit="MB/s",
            higher_is_better=True,
            target=">= 0.95",
        )
    )
    scratch = scratch_dir("castore-ingest")
    remove_at_exit(scratch)
    tiny = scratch / "tiny"
    tiny.mkdir()
    (tiny / "file").write_text("warm-up\n")
    commands = {"ours": pytvix_cmd("import"), "peer": plain_import_cmd()}
    for run in range(RUNS):
        for side in alternating(run, ["ours", "peer"]):
            # the tree and the program's code in the page cache, nothing dirty
            warm = (
                [*commands[side], str(tiny)],
                {"env": pytvix_env(scratch / "warm"), "cwd": ROOT},
            )
            same_start(functools.partial(read_and_warm, tree, warm))
            seconds, sync_seconds, _ = run_cmd_synced(
                [*commands[side], str(tree)],
                env=pytvix_env(scratch / f"{side}{run}"),
                cwd=ROOT,
                stderr=subprocess.DEVNULL,
            )
            getattr(row, side).append(size / 1e6 / (seconds + sync_seconds))


@dataclass
class Served:
    """The blob on the server, and the two ways of reading it."""

    client: HttpBlobService
    session: aiohttp.ClientSession
    url: str  # its plain GET URL
    digest: B3Digest
    size: int


def bench_http(random_rows: tuple[Row, Row], stream_row: Row) -> None:
    big_dir = big_file_dir()
    blob = big_dir / "random-1g.bin"
    scratch = scratch_dir("castore-http")
    remove_at_exit(scratch)
    home = scratch / "home"
    pytvix(home, "import", str(big_dir))
    digest = B3Digest.of(blob.read_bytes())
    port = free_port()
    server = subprocess.Popen(
        pytvix_cmd("serve-castore", "-l", f"127.0.0.1:{port}"),
        env=pytvix_env(home),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, server, lambda: "serve-castore did not start")
        base = f"http://127.0.0.1:{port}"
        asyncio.run(measure_http(base, digest, blob.stat().st_size, random_rows, stream_row))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


async def measure_http(
    base: str, digest: B3Digest, size: int, random_rows: tuple[Row, Row], stream_row: Row
) -> None:
    client = await from_addr(BLOB_SERVICES, f"castore+{base}")
    assert isinstance(client, HttpBlobService)
    async with aiohttp.ClientSession() as session:
        served = Served(client, session, f"{base}/castore/blob/{digest.hex()}", digest, size)
        await unverified_stream(served)  # the store's file into the page cache
        rng = random.Random(20)
        for run in range(RUNS):
            await random_reads(served, rng, random_rows, run)
            for side in alternating(run, ["ours", "peer"]):
                if side == "ours":
                    stream_row.ours.append(size / MIB / await verified_stream(served))
                else:
                    stream_row.peer.append(size / MIB / await unverified_stream(served))
    await client.close()


async def random_reads(served: Served, rng: random.Random, rows: tuple[Row, Row], run: int) -> None:
    """SAMPLES 1 MiB reads at random offsets each way, alternating; medians of the run into
    rows[0] (latency) and rows[1] (as reads per second)."""
    reader = await served.client.open_read(served.digest)
    assert reader is not None
    ours: list[float] = []
    peer: list[float] = []
    for i in range(SAMPLES):
        offset = rng.randrange(served.size - MIB)
        for side in alternating(run + i, ["ours", "peer"]):
            start = time.perf_counter()
            if side == "ours":
                data = await reader.read_at(offset, MIB)
            else:
                headers = {"Range": f"bytes={offset}-{offset + MIB - 1}"}
                async with served.session.get(served.url, headers=headers) as response:
                    assert response.status == 206
                    data = await response.read()
            (ours if side == "ours" else peer).append(time.perf_counter() - start)
            assert len(data) == MIB
    await reader.close()
    latency, rate = rows
    latency.ours.append(statistics.median(ours) * 1e6)
    latency.peer.append(statistics.median(peer) * 1e6)
    rate.ours.append(1 / statistics.median(ours))
    rate.peer.append(1 / statistics.median(peer))


async def verified_stream(served: Served) -> float:
    """Seconds to read the whole blob through the client (opening included)."""
    start = time.perf_counter()
    reader = await served.client.open_read(served.digest)
    assert reader is not None
    total = 0
    while piece := await reader.read(PIECE):
        total += len(piece)
    await reader.close()
    assert total == reader.size
    return time.perf_counter() - start


async def unverified_stream(served: Served) -> float:
    """Seconds to GET the whole blob."""
    start = time.perf_counter()
    async with served.session.get(served.url) as response:
        assert response.status == 200
        async for _ in response.content.iter_chunked(PIECE):
            pass
    return time.perf_counter() - start


def main() -> None:
    settle_after_deletes()
    ingest = Report("Bao outboards on ingest", "the same import hashing with plain BLAKE3")
    bench_ingest(ingest)
    ingest.print()
    label = size_label(big_file_dir().joinpath("random-1g.bin").stat().st_size)
    http = Report("castore over HTTP, verified", "unverified GET from the same server")
    random_rows = (
        http.add(
            Row(
                f"1 MiB read at a random offset of {label}, p50 latency",
                unit="us",
                target=">= 0.67 (<= 1.5x the latency)",
            )
        ),
        http.add(
            Row(f"1 MiB random reads of {label}, one at a time", unit="/s", higher_is_better=True)
        ),
    )
    stream_row = http.add(
        Row(f"whole {label} blob, one stream", unit="MiB/s", higher_is_better=True, target=">= 0.8")
    )
    bench_http(random_rows, stream_row)
    http.print()


if __name__ == "__main__":
    main()
