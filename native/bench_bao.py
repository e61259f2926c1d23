"""Throughput of pytvix_bao's outboard hashing against plain BLAKE3 and SHA-256.

    .venv/bin/python native/bench_bao.py [--mib 1024]

Hashes the same random buffer in every variant, fed in 1 MiB updates where the variant
streams; prints the median MB/s (10^6 bytes per second) of 3 runs each.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import time
from collections.abc import Callable

import blake3
import pytvix_bao

MIB = 1 << 20


def outboard_stream(view: memoryview, max_threads: int) -> None:
    h = pytvix_bao.OutboardHasher(max_threads=max_threads)
    for pos in range(0, len(view), MIB):
        h.update(view[pos : pos + MIB])
    h.finalize()


def blake3_stream(view: memoryview) -> None:
    h = blake3.blake3()
    for pos in range(0, len(view), MIB):
        h.update(view[pos : pos + MIB])
    h.digest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="buffer size in MiB")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    data = os.urandom(args.mib * MIB)
    view = memoryview(data)
    auto = blake3.blake3.AUTO
    cases: list[tuple[str, Callable[[], object]]] = [
        ("OutboardHasher, 1 MiB updates, 1 thread", lambda: outboard_stream(view, 1)),
        (
            "OutboardHasher, 1 MiB updates, AUTO threads",
            lambda: outboard_stream(view, pytvix_bao.AUTO),
        ),
        ("blake3.blake3(data).digest(), 1 thread", lambda: blake3.blake3(data).digest()),
        (
            "blake3.blake3(data, max_threads=AUTO).digest()",
            lambda: blake3.blake3(data, max_threads=auto).digest(),
        ),
        ("blake3 1 MiB updates, 1 thread", lambda: blake3_stream(view)),
        ("hashlib.sha256(data).digest()", lambda: hashlib.sha256(data).digest()),
    ]
    print(f"{args.mib} MiB, median of {args.runs} runs, {os.cpu_count()} CPUs")
    for name, run in cases:
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        print(f"{name:48} {len(data) / statistics.median(times) / 1e6:8.0f} MB/s")


if __name__ == "__main__":
    main()
