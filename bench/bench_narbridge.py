"""nar-bridge benchmarks (issue: nar-bridge; issue 22: realistic serving). The peer is nginx
serving the binary cache that `nix copy --to file://DIR?compression=none` wrote for the same
store paths (uncompressed NAR files). If $TVIX_STORE_UPSTREAM and $TVIX_NAR_BRIDGE_UPSTREAM
name upstream binaries, upstream's nar-bridge, on the same paths imported with upstream's
`tvix-store import` into objectstore+file/redb services, is a second peer.

- narinfo GET latency (sequential requests from one client): p50 ratio, p99 reported
- NAR GET with curl, one stream and 8 in parallel, of two paths: a 1 GiB file, and the Python
  standard library (~7.7k files, mostly small: a NAR assembled from many blobs). Each stream
  fetches the NAR as many times as make about 1 GiB, one after another on one connection.
  Every side serves each NAR once before the timed runs, so all read from the page cache.
Both serve from one process per core (nginx's worker_processes, nar-bridge --workers).
The sides take turns in an order that rotates every run (common.alternating).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

import aiohttp

from bench.bench_fuse import big_file_dir
from bench.bench_nar import stdlib_tree
from bench.common import (
    DATA,
    GIB,
    ROOT,
    RUNS,
    Report,
    Row,
    UpstreamStore,
    alternating,
    nix_store_add,
    pytvix,
    pytvix_env,
    remove_at_exit,
    scaled,
    scratch_dir,
    size_label,
    upstream_binary,
)
from tests.servers.nginx import nginx_command, nginx_conf

WORKERS = os.cpu_count() or 1  # processes on each side: ours --workers, nginx worker_processes
STATIC_SERVER = """
    access_log off;
    sendfile on;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
"""


def wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(400):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited {proc.returncode} before listening")
        time.sleep(0.05)
    raise TimeoutError(port)


async def latencies(url: str, count: int) -> list[float]:
    out = []
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            start = time.perf_counter()
            async with session.get(url) as response:
                await response.read()
                assert response.status == 200
            out.append(time.perf_counter() - start)
    return out


def curl_seconds(url: str, streams: int, repeat: int) -> float:
    """Seconds `streams` curl processes take to each GET `url` `repeat` times in turn."""
    args = ["curl", "-sf"]
    for _ in range(repeat):
        args += ["-o", "/dev/null", url]
    start = time.perf_counter()
    procs = [subprocess.Popen(args) for _ in range(streams)]
    for p in procs:
        assert p.wait() == 0
    return time.perf_counter() - start


@dataclass
class Server:
    """One side: an HTTP server on 127.0.0.1:`port`, and per case its NAR URL and size."""

    name: str  # "ours", "peer" (nginx) or "upstream"
    port: int
    proc: subprocess.Popen[bytes]
    nar_urls: dict[str, str] = field(default_factory=dict)
    nar_sizes: dict[str, int] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait()


async def find_nars(server: Server, hash_parts: dict[str, str]) -> None:
    """Each case's NAR URL and size, from the server's narinfo."""
    async with aiohttp.ClientSession() as session:
        for case, hash_part in hash_parts.items():
            async with session.get(f"{server.base}/{hash_part}.narinfo") as response:
                text = await response.text()
            fields = dict(x.split(": ", 1) for x in text.splitlines() if ": " in x)
            assert "URL" in fields, f"{server.name} narinfo {response.status}: {text[:200]!r}"
            server.nar_urls[case] = f"{server.base}/{fields['URL']}"
            server.nar_sizes[case] = int(fields["NarSize"])


def main() -> None:
    os.environ.setdefault("NIX_CONFIG", "experimental-features = nix-command")
    DATA.mkdir(parents=True, exist_ok=True)
    scratch = scratch_dir("narbridge")
    remove_at_exit(scratch)
    big_dir = big_file_dir()
    big_case = size_label(big_dir.joinpath("random-1g.bin").stat().st_size)
    stdlib = stdlib_tree()
    files = sum(len(names) for _, _, names in os.walk(stdlib))
    cases = {big_case: big_dir, f"Python stdlib ({files} files)": stdlib}
    store_paths = {case: nix_store_add(tree) for case, tree in cases.items()}
    cache = scratch / "cache"
    subprocess.run(
        ["nix", "copy", "--to", f"file://{cache}?compression=none", *store_paths.values()],
        check=True,
    )
    home = scratch / "home"
    for case, tree in cases.items():
        assert pytvix(home, "import", str(tree)) == store_paths[case]
    hash_parts = {case: p.removeprefix("/nix/store/")[:32] for case, p in store_paths.items()}

    upstream = None
    upstream_store = upstream_binary("TVIX_STORE_UPSTREAM", "upstream nar-bridge rows")
    upstream_bridge = upstream_store and upstream_binary(
        "TVIX_NAR_BRIDGE_UPSTREAM", "upstream nar-bridge rows"
    )
    if upstream_store and upstream_bridge:
        upstream = UpstreamStore(upstream_store, scratch / "upstream")
        for case, tree in cases.items():
            assert upstream.import_path(tree) == store_paths[case]

    nginx_port, bridge_port, upstream_port = 19501, 19502, 19503
    static = STATIC_SERVER.format(port=nginx_port, root=cache)
    (scratch / "nginx.conf").write_text(nginx_conf(scratch, static, workers=WORKERS))
    servers = [
        Server(
            "ours",
            bridge_port,
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from pytvix.cli.narbridge import main; main()",
                    "-l",
                    f"127.0.0.1:{bridge_port}",
                    "--workers",
                    str(WORKERS),
                ],
                cwd=ROOT,
                env=pytvix_env(home),
                stderr=subprocess.DEVNULL,
            ),
        ),
        Server(
            "peer",
            nginx_port,
            subprocess.Popen(nginx_command(scratch / "nginx.conf")),
        ),
    ]
    if upstream is not None and upstream_bridge:
        argv = upstream.command("", "-l", f"127.0.0.1:{upstream_port}", binary=upstream_bridge)
        servers.append(
            Server("upstream", upstream_port, subprocess.Popen(argv, stderr=subprocess.DEVNULL))
        )

    report = Report("nar-bridge", "nginx serving a file:// binary cache")
    up_report = Report("nar-bridge against upstream nar-bridge", "upstream nar-bridge")
    p50 = report.add(Row("narinfo GET p50 latency", unit="us", target="<= 2x peer"))
    p99 = report.add(Row("narinfo GET p99 latency", unit="us"))
    nar_rows: dict[tuple[str, int], Row] = {}
    for case in cases:
        for streams in (1, 8):
            name = f"NAR GET {case}, " + ("one stream" if streams == 1 else "8 streams (total)")
            target = ">= 0.5"
            if case == big_case:
                target = ">= 500 MiB/s, >= 0.5" if streams == 1 else ""
            row = Row(name, unit="MiB/s", higher_is_better=True, target=target)
            nar_rows[case, streams] = report.add(row)
    # upstream rows share our measurements; its NAR GET rows are filled below
    up_rows = {
        row.name: up_report.add(
            Row(row.name, ours=row.ours, unit=row.unit, higher_is_better=row.higher_is_better)
        )
        for row in report.rows
    }
    try:
        for server in servers:
            wait_port(server.port, server.proc)
            asyncio.run(find_nars(server, hash_parts))
            for url in server.nar_urls.values():
                curl_seconds(url, 1, 1)  # served once: every side reads from the page cache
        sizes = {server.nar_sizes[case] for server in servers for case in cases}
        assert len(sizes) == len(cases), f"the servers' NAR sizes differ: {sizes}"

        def record(row: Row, server: Server, value: float) -> None:
            if server.name == "upstream":
                up_rows[row.name].peer.append(value)
            else:
                getattr(row, server.name).append(value)

        narinfo = {
            server.name: f"{server.base}/{hash_parts[big_case]}.narinfo" for server in servers
        }
        for run in range(RUNS):
            for server in alternating(run, servers):
                lat = sorted(asyncio.run(latencies(narinfo[server.name], 2000)))
                record(p50, server, statistics.median(lat) * 1e6)
                record(p99, server, lat[int(len(lat) * 0.99)] * 1e6)
            for (case, streams), row in nar_rows.items():
                size = servers[0].nar_sizes[case]
                repeat = max(1, round(scaled(GIB) / size))
                mib = streams * repeat * size / (1 << 20)
                for server in alternating(run, servers):
                    url = server.nar_urls[case]
                    record(row, server, mib / curl_seconds(url, streams, repeat))
    finally:
        report.print()
        if upstream is not None:
            up_report.print()
        for server in servers:
            server.stop()


if __name__ == "__main__":
    main()
