"""nar-bridge benchmarks (issue: nar-bridge). The peer is nginx serving the binary cache that
`nix copy --to file://DIR?compression=none` wrote for the same store paths.

- narinfo GET latency (sequential requests from one client): p50 ratio, p99 reported
- NAR GET of a 1 GiB path with curl: one stream, and 8 in parallel
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

import aiohttp

from bench.bench_fuse import DATA, tvix
from bench.common import ROOT, RUNS, Report, Row, remove_at_exit, scratch_dir

NGINX_CONF = """
user root;
worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
}}
"""


def wait_port(port: int) -> None:
    for _ in range(200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
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


def curl_seconds(urls: list[str]) -> float:
    start = time.perf_counter()
    procs = [subprocess.Popen(["curl", "-sf", "-o", "/dev/null", u]) for u in urls]
    for p in procs:
        assert p.wait() == 0
    return time.perf_counter() - start


def main() -> None:
    os.environ.setdefault("NIX_CONFIG", "experimental-features = nix-command")
    scratch = scratch_dir("narbridge")
    big_dir = DATA / "bigfile"
    store_path = subprocess.run(
        ["nix-store", "--add", str(big_dir)], check=True, capture_output=True, text=True
    ).stdout.strip()
    cache = scratch / "cache"
    subprocess.run(
        ["nix", "copy", "--to", f"file://{cache}?compression=none", store_path], check=True
    )
    home = scratch / "home"
    assert tvix(home, "import", str(big_dir)) == store_path
    hash_part = store_path.removeprefix("/nix/store/")[:32]
    nginx_port, bridge_port = 19501, 19502
    (scratch / "nginx.conf").write_text(NGINX_CONF.format(dir=scratch, port=nginx_port, root=cache))
    nginx = subprocess.Popen(["nginx", "-c", str(scratch / "nginx.conf"), "-g", "daemon off;"])
    bridge = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from pytvix.cli.narbridge import main; main()",
            "-l",
            f"127.0.0.1:{bridge_port}",
        ],
        cwd=ROOT,
        env={**os.environ, "TVIX_STORE_HOME": str(home)},
        stderr=subprocess.DEVNULL,
    )
    report = Report("nar-bridge", "nginx serving a file:// binary cache")
    try:
        wait_port(nginx_port)
        wait_port(bridge_port)
        ours_base, peer_base = f"http://127.0.0.1:{bridge_port}", f"http://127.0.0.1:{nginx_port}"
        narinfo = f"/{hash_part}.narinfo"
        p50 = report.add(Row("narinfo GET p50 latency", unit="us", target="<= 2x peer"))
        p99 = report.add(Row("narinfo GET p99 latency", unit="us"))
        single = report.add(
            Row(
                "NAR GET 1 GiB, one stream",
                unit="MiB/s",
                higher_is_better=True,
                target=">= 500 MiB/s, >= 0.5",
            )
        )
        parallel = report.add(
            Row("NAR GET 1 GiB, 8 streams (total)", unit="MiB/s", higher_is_better=True)
        )

        async def nar_urls() -> tuple[str, str]:
            async with aiohttp.ClientSession() as session:
                urls = []
                for base in (ours_base, peer_base):
                    async with session.get(base + narinfo) as response:
                        text = await response.text()
                    lines = [x for x in text.splitlines() if x.startswith("URL: ")]
                    assert lines, f"{base}{narinfo} answered {response.status}: {text[:200]!r}"
                    url = lines[0].split(": ", 1)[1]
                    urls.append(f"{base}/{url}")
                return urls[0], urls[1]

        ours_nar, peer_nar = asyncio.run(nar_urls())
        mib = (1 << 30) / (1 << 20)
        for _ in range(RUNS):
            for row_p50, row_p99, base, target in (
                (p50, p99, ours_base, "ours"),
                (p50, p99, peer_base, "peer"),
            ):
                lat = sorted(asyncio.run(latencies(base + narinfo, 2000)))
                getattr(row_p50, target).append(statistics.median(lat) * 1e6)
                getattr(row_p99, target).append(lat[int(len(lat) * 0.99)] * 1e6)
            single.ours.append(mib / curl_seconds([ours_nar]))
            single.peer.append(mib / curl_seconds([peer_nar]))
            parallel.ours.append(8 * mib / curl_seconds([ours_nar] * 8))
            parallel.peer.append(8 * mib / curl_seconds([peer_nar] * 8))
    finally:
        report.print()
        for proc in (bridge, nginx):
            proc.send_signal(signal.SIGTERM)
            proc.wait()
        remove_at_exit(scratch)


if __name__ == "__main__":
    main()
