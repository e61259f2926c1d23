"""Metrics' cost (issue 21): the same servers with metrics on ("ours") and off ("peer"), in
the same run, taking turns in an order that rotates every run (common.alternating).

- narinfo GET latency through nar-bridge (2000 sequential requests per sample): p50, p99
- NAR GET of a 1 GiB store path through nar-bridge, one curl stream (served once before, so
  both read from the page cache)
- blob put and read of 512 MiB through the daemon's gRPC API (a new blob each sample)

Both bridges serve the same embedded store; each daemon has its own. The servers with metrics
on are scraped every SCRAPE_SECONDS meanwhile, as Prometheus would. Target: every ratio
within 3% (>= 0.97).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

from bench.bench_fuse import big_file_dir
from bench.bench_grpc import put_and_read, start_daemon
from bench.bench_narbridge import Server, curl_seconds, find_nars, latencies, wait_port
from bench.common import (
    ROOT,
    RUNS,
    Report,
    Row,
    alternating,
    pytvix,
    pytvix_env,
    remove_at_exit,
    scratch_dir,
)
from pytvix.castore.composition import BLOB_SERVICES, from_addr

SCRAPE_SECONDS = 2.0
BRIDGE_PORTS = {"ours": 19511, "peer": 19512}
DAEMON_METRICS_PORT = 19513
BLOB_SIZE = 512 << 20
TARGET = ">= 0.97"


class Scraper:
    """GETs each URL's /metrics every SCRAPE_SECONDS until stopped."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.wait(SCRAPE_SECONDS):
            for url in self.urls:
                with urllib.request.urlopen(url, timeout=10) as response:
                    assert b"pytvix_" in response.read()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


def bridge(home: Path, port: int, *flags: str) -> Server:
    name = "ours" if flags else "peer"
    argv = [sys.executable, "-c", "from pytvix.cli.narbridge import main; main()"]
    proc = subprocess.Popen(
        [*argv, "-l", f"127.0.0.1:{port}", *flags],
        cwd=ROOT,
        env=pytvix_env(home),
        stderr=subprocess.DEVNULL,
    )
    return Server(name, port, proc)


def bench_bridges(report: Report, home: Path, hash_part: str) -> None:
    p50 = report.add(Row("narinfo GET p50 latency", unit="us", target=TARGET))
    p99 = report.add(Row("narinfo GET p99 latency", unit="us"))
    nar = report.add(Row("NAR GET 1 GiB, one stream", unit="MiB/s", higher_is_better=True))
    nar.target = TARGET
    ours_port, peer_port = BRIDGE_PORTS["ours"], BRIDGE_PORTS["peer"]
    servers = [
        bridge(home, ours_port, "--metrics-listen", f"127.0.0.1:{ours_port}"),
        bridge(home, peer_port),
    ]
    scraper = None
    try:
        for server in servers:
            wait_port(server.port, server.proc)
            asyncio.run(find_nars(server, {"big": hash_part}))
            curl_seconds(server.nar_urls["big"], 1, 1)  # page cache
        scraper = Scraper([f"http://127.0.0.1:{ours_port}/metrics"])
        size = servers[0].nar_sizes["big"]
        for run in range(RUNS):
            for server in alternating(run, servers):
                url = f"{server.base}/{hash_part}.narinfo"
                lat = sorted(asyncio.run(latencies(url, 2000)))
                getattr(p50, server.name).append(statistics.median(lat) * 1e6)
                getattr(p99, server.name).append(lat[int(len(lat) * 0.99)] * 1e6)
            for server in alternating(run, servers):
                seconds = curl_seconds(server.nar_urls["big"], 1, 1)
                getattr(nar, server.name).append(size / (1 << 20) / seconds)
    finally:
        if scraper is not None:
            scraper.stop()
        for server in servers:
            server.stop()


async def blob_samples(report: Report, sockets: dict[str, Path]) -> None:
    put = report.add(Row("gRPC blob put 512 MiB", unit="MiB/s", higher_is_better=True))
    read = report.add(Row("gRPC blob read 512 MiB", unit="MiB/s", higher_is_better=True))
    put.target = read.target = TARGET
    mib = BLOB_SIZE / (1 << 20)
    for run in range(RUNS):
        for side in alternating(run, ["ours", "peer"]):
            data = os.urandom(BLOB_SIZE)
            blobs = await from_addr(BLOB_SERVICES, f"grpc+unix://{sockets[side]}")
            try:
                put_seconds, read_seconds = await put_and_read(blobs, data)
            finally:
                await blobs.close()
            getattr(put, side).append(mib / put_seconds)
            getattr(read, side).append(mib / read_seconds)


def bench_daemons(report: Report, scratch: Path) -> None:
    port = DAEMON_METRICS_PORT
    sockets = {"ours": scratch / "ours.sock", "peer": scratch / "peer.sock"}
    daemons = [
        start_daemon(scratch / "ours", sockets["ours"], "--metrics-listen", f"127.0.0.1:{port}"),
        start_daemon(scratch / "peer", sockets["peer"]),
    ]
    scraper = Scraper([f"http://127.0.0.1:{port}/metrics"])
    try:
        asyncio.run(blob_samples(report, sockets))
    finally:
        scraper.stop()
        for proc in daemons:
            proc.terminate()
            proc.wait()


def main() -> None:
    scratch = scratch_dir("metrics")
    remove_at_exit(scratch)
    home = scratch / "home"
    store_path = pytvix(home, "import", str(big_file_dir()))
    hash_part = store_path.removeprefix("/nix/store/")[:32]
    report = Report("metrics on vs off", "the same server with metrics off")
    try:
        bench_bridges(report, home, hash_part)
        bench_daemons(report, scratch)
    finally:
        report.print()


if __name__ == "__main__":
    main()
