"""PostgreSQL backend benchmarks (issue: scale-out backends), against the LMDB backend in the
same run (peer), on a PostgreSQL started for the run on 127.0.0.1 (tests/servers/postgres.py):

- PathInfo get: p50 / p99 latency of sequential gets, throughput with one client and with
  CONCURRENCY concurrent gets (PostgreSQL: the pool's 10 connections)
- get_recursive of a closure 6 levels deep (one query per level on PostgreSQL), median of
  50 walks
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import statistics
import time
from collections.abc import Awaitable, Callable

from bench.common import RUNS, Report, Row, remove_at_exit, scratch_dir
from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.directoryservice import DirectoryService, put_closure
from pytvix.castore.nodes import FileNode
from pytvix.nixcompat.store_path import StorePath
from pytvix.store.composition import StoreServices, open_store_from_urls
from pytvix.store.path_info import PathInfo
from tests.servers.postgres import create_database, drop_database

PATHS = 2000
GETS = 4000
CONCURRENCY = 16
DEPTH = 5  # levels of directories above the leaf level


def _path_info(i: int) -> PathInfo:
    files = Directory(
        [(f"f{j}".encode(), FileNode(B3Digest.of(f"{i}-{j}".encode()), 100 + j)) for j in range(4)]
    )
    return PathInfo(
        store_path=StorePath(hashlib.sha256(str(i).encode()).digest()[:20], f"pkg-{i}"),
        node=files.as_node(),
        nar_size=1000 + i,
        nar_sha256=hashlib.sha256(str(i).encode()).digest(),
    )


def _closure(depth: int = DEPTH, fanout: int = 4) -> list[Directory]:
    """Leaves first: a level of `fanout` file-only directories, then `depth` levels each
    referencing every directory of the level below (`fanout` wide, the last one the root)."""
    level = [
        Directory([(f"file-{i}".encode(), FileNode(B3Digest.of(b"%d" % i), i))])
        for i in range(fanout)
    ]
    closure = list(level)
    for d in range(depth):
        width = fanout if d < depth - 1 else 1
        level = [
            Directory([(f"d{d}-{i}-{j}".encode(), c.as_node()) for j, c in enumerate(level)])
            for i in range(width)
        ]
        closure.extend(level)
    return closure


async def _latencies(get: Callable[[bytes], Awaitable[object]], keys: list[bytes]) -> list[float]:
    out = []
    for key in keys:
        start = time.perf_counter()
        assert await get(key) is not None
        out.append(time.perf_counter() - start)
    return out


async def _concurrent(get: Callable[[bytes], Awaitable[object]], keys: list[bytes]) -> float:
    """Gets per second with CONCURRENCY workers sharing the key list."""
    queue = list(keys)

    async def worker() -> None:
        while queue:
            assert await get(queue.pop()) is not None

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return len(keys) / (time.perf_counter() - start)


async def _walk(directories: DirectoryService, root: B3Digest, times: int = 50) -> float:
    """Median seconds of `times` walks of the closure of `root`."""
    seconds = []
    for _ in range(times):
        start = time.perf_counter()
        count = sum([1 async for _ in directories.get_recursive(root)])
        seconds.append(time.perf_counter() - start)
        assert count > 1
    return statistics.median(seconds)


async def _fill(services: StoreServices, infos: list[PathInfo], closure: list[Directory]) -> None:
    for info in infos:
        await services.path_info.put(info)
    await put_closure(services.directory, closure)


async def bench_postgres() -> None:
    infos = [_path_info(i) for i in range(PATHS)]
    closure = _closure()
    root = closure[-1].digest()
    rng = random.Random(11)
    keys = [infos[rng.randrange(PATHS)].store_path.digest for _ in range(GETS)]

    url = await create_database("bench")
    scratch = scratch_dir("pg-lmdb")
    lmdb_url = f"lmdb://{scratch}/store.lmdb"
    pg_store = await open_store_from_urls("memory://", url, url)
    lmdb_store = await open_store_from_urls("memory://", lmdb_url, lmdb_url)
    try:
        await _fill(pg_store, infos, closure)
        await _fill(lmdb_store, infos, closure)
        report = Report("PostgreSQL metadata gets", "LMDB (same run)")
        p50 = report.add(Row("path info get, p50 latency", unit="us"))
        p99 = report.add(Row("path info get, p99 latency", unit="us"))
        one = report.add(Row("path info get, 1 client", unit="/s", higher_is_better=True))
        many = report.add(
            Row(f"path info get, {CONCURRENCY} concurrent", unit="/s", higher_is_better=True)
        )
        walk = report.add(
            Row(f"get_recursive, {DEPTH + 1} levels, {len(closure)} directories", unit="us")
        )
        for _ in range(RUNS):
            for store, side in ((pg_store, "ours"), (lmdb_store, "peer")):
                get = store.path_info.get
                # warm up: every pooled connection prepares its statements once
                await _concurrent(get, keys[:500])
                await _walk(store.directory, root, CONCURRENCY)
                lat = sorted(await _latencies(get, keys))
                getattr(p50, side).append(statistics.median(lat) * 1e6)
                getattr(p99, side).append(lat[int(len(lat) * 0.99)] * 1e6)
                getattr(one, side).append(len(lat) / sum(lat))
                getattr(many, side).append(await _concurrent(get, keys))
                getattr(walk, side).append(await _walk(store.directory, root) * 1e6)
        report.print()
    finally:
        await pg_store.close()
        await lmdb_store.close()
        await drop_database(url)
        remove_at_exit(scratch)


def main() -> None:
    asyncio.run(bench_postgres())
