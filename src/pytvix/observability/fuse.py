"""Spans for FUSE requests, in batches: a span per request would be one per 128 KiB read or
directory entry, so requests are grouped into one span per BATCH_SECONDS of activity, current
while each of its requests runs (their backend calls nest under it) and carrying a count per
operation (`fuse.lookup`, `fuse.read` ...) and the number of failed requests."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from pytvix.observability import tracing

BATCH_SECONDS = 1.0
OPERATIONS = (
    "lookup",
    "getattr",
    "readlink",
    "opendir",
    "readdir",
    "releasedir",
    "open",
    "read",
    "release",
    "getxattr",
    "listxattr",
    "statfs",
)


class _Batches:
    def __init__(self) -> None:
        self.span: Any = None
        self.started = 0.0
        self.counts: Counter[str] = Counter()
        self.failed = 0
        self.active = 0
        tracing.before_shutdown(self.end)

    def current(self) -> Any:
        now = time.monotonic()
        if self.span is not None and now - self.started > BATCH_SECONDS and not self.active:
            self.end()
        if self.span is None:
            self.span = tracing.start_span("FUSE request batch", {})
            self.started = now
            asyncio.get_running_loop().call_later(BATCH_SECONDS * 2, self._end_if_idle)
        return self.span

    def _end_if_idle(self) -> None:
        if self.span is not None and not self.active:
            self.end()
        elif self.span is not None:
            asyncio.get_running_loop().call_later(BATCH_SECONDS, self._end_if_idle)

    def end(self) -> None:
        span, self.span = self.span, None
        if span is None:
            return
        for op, count in self.counts.items():
            span.set_attribute(f"fuse.{op}", count)
        span.set_attribute("fuse.failed", self.failed)
        self.counts.clear()
        self.failed = 0
        span.end()


def trace_batches(fs: Any) -> None:
    """Wrap the request handlers of the file system object `fs` in place."""
    batches = _Batches()
    for op in OPERATIONS:
        handler = getattr(fs, op, None)
        if handler is not None:
            setattr(fs, op, _batched(op, handler, batches))


def _batched(
    op: str, handler: Callable[..., Awaitable[Any]], batches: _Batches
) -> Callable[..., Awaitable[Any]]:
    async def request(*args: Any, **kwargs: Any) -> Any:
        span = batches.current()
        batches.counts[op] += 1
        batches.active += 1
        try:
            with tracing.attached(span):
                return await handler(*args, **kwargs)
        except Exception:
            batches.failed += 1
            raise
        finally:
            batches.active -= 1

    return request
