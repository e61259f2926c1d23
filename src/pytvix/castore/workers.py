"""The shared worker thread pool for blocking I/O and GIL-releasing CPU work (hashing,
compression, object store calls), so the event loop never blocks on them."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

WORKERS = int(os.environ.get("PYTVIX_WORKER_THREADS", "0")) or max(8, 4 * (os.cpu_count() or 2))
# Threads for calls that mostly wait on the network (remote object stores): one S3 request
# takes milliseconds of server time, so throughput needs many in flight, more than CPU work
# should get. `bench s3` against radosgw here: 1 GiB download 0.72 of boto3 with 8 requests
# in flight, 0.86 with 32 (and 32 chunks of read-ahead).
IO_WORKERS = int(os.environ.get("PYTVIX_IO_THREADS", "0")) or 32
# Threads for batch jobs of many short steps that each release the GIL only briefly (a
# batch of small blobs: open, read, hash, compress, write, rename ...). More such threads
# than cores mostly hand the GIL back and forth: importing the Python stdlib (7.7k files)
# with 8 of them took 3.3 s and 130k context switches, with 2 (on 2 cores) 2.1 s and 24k.
CPU_WORKERS = int(os.environ.get("PYTVIX_CPU_THREADS", "0")) or max(2, os.cpu_count() or 2)
_pool: ThreadPoolExecutor | None = None
_io_pool: ThreadPoolExecutor | None = None
_cpu_pool: ThreadPoolExecutor | None = None


def pool() -> ThreadPoolExecutor:
    """The shared pool for blocking local I/O and CPU work."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="pytvix-worker")
    return _pool


def io_pool() -> ThreadPoolExecutor:
    """The pool for blocking network calls (see IO_WORKERS)."""
    global _io_pool
    if _io_pool is None:
        _io_pool = ThreadPoolExecutor(IO_WORKERS, thread_name_prefix="pytvix-io")
    return _io_pool


def cpu_pool() -> ThreadPoolExecutor:
    """The pool for batch jobs of short GIL-releasing steps (see CPU_WORKERS). Its jobs may
    wait on pool() jobs, never the other way round."""
    global _cpu_pool
    if _cpu_pool is None:
        _cpu_pool = ThreadPoolExecutor(CPU_WORKERS, thread_name_prefix="pytvix-cpu")
    return _cpu_pool


def submit(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> Future[R]:
    """Start `fn` on the pool; returns a concurrent Future (await via `asyncio.wrap_future`)."""
    return pool().submit(fn, *args, **kwargs)


async def run(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run `fn` on the pool and await its result."""
    return await run_on(pool(), fn, *args, **kwargs)


async def run_on(
    executor: ThreadPoolExecutor, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs
) -> R:
    """Run `fn` on `executor` (pool(), io_pool() or cpu_pool()) and await its result."""
    return await asyncio.wrap_future(executor.submit(fn, *args, **kwargs))
