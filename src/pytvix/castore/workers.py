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
_pool: ThreadPoolExecutor | None = None


def pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="pytvix-worker")
    return _pool


def submit(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> Future[R]:
    """Start `fn` on the pool; returns a concurrent Future (await via `asyncio.wrap_future`)."""
    return pool().submit(fn, *args, **kwargs)


async def run(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run `fn` on the pool and await its result."""
    return await asyncio.wrap_future(pool().submit(fn, *args, **kwargs))
