"""The shared worker thread pools for blocking I/O and GIL-releasing CPU work (hashing,
compression, object store calls), so the event loop never blocks on them.

Three pools, sized by `configure()` (the CLI passes PYTVIX_WORKER_THREADS, PYTVIX_IO_THREADS
and PYTVIX_CPU_THREADS from the environment) before first use:
- pool(): local blocking I/O and CPU work;
- io_pool(): calls that mostly wait on the network (remote object stores), where throughput
  needs many requests in flight;
- cpu_pool(): batch jobs of many short steps that each release the GIL only briefly (a batch
  of small blobs); more such threads than cores only pass the GIL back and forth.
The README's benchmark section has the measurements behind the default sizes.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class PoolSizes:
    worker: int = max(8, 4 * (os.cpu_count() or 2))
    io: int = 32
    cpu: int = max(2, os.cpu_count() or 2)


SIZES = PoolSizes()
_pool: ThreadPoolExecutor | None = None
_io_pool: ThreadPoolExecutor | None = None
_cpu_pool: ThreadPoolExecutor | None = None


def configure(*, worker: int | None = None, io: int | None = None, cpu: int | None = None) -> None:
    """Set pool sizes (None or 0: keep the default); only pools not started yet change."""
    SIZES.worker = worker or SIZES.worker
    SIZES.io = io or SIZES.io
    SIZES.cpu = cpu or SIZES.cpu


def pool() -> ThreadPoolExecutor:
    """The shared pool for blocking local I/O and CPU work."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(SIZES.worker, thread_name_prefix="pytvix-worker")
    return _pool


def io_pool() -> ThreadPoolExecutor:
    """The pool for blocking network calls."""
    global _io_pool
    if _io_pool is None:
        _io_pool = ThreadPoolExecutor(SIZES.io, thread_name_prefix="pytvix-io")
    return _io_pool


def cpu_pool() -> ThreadPoolExecutor:
    """The pool for batch jobs of short GIL-releasing steps. Its jobs may wait on pool()
    jobs, never the other way round."""
    global _cpu_pool
    if _cpu_pool is None:
        _cpu_pool = ThreadPoolExecutor(SIZES.cpu, thread_name_prefix="pytvix-cpu")
    return _cpu_pool


async def run(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run `fn` on the pool and await its result."""
    return await run_on(pool(), fn, *args, **kwargs)


async def run_on(
    executor: ThreadPoolExecutor, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs
) -> R:
    """Run `fn` on `executor` (pool(), io_pool() or cpu_pool()) and await its result."""
    return await asyncio.wrap_future(executor.submit(fn, *args, **kwargs))
