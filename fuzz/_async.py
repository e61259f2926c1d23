"""Driving the async parsers from a synchronous fuzz callback."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion on one event loop kept for the whole process (creating a loop
    per input would dominate the cost of small inputs)."""
    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
    return _loop.run_until_complete(coro)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Drive a coroutine that never waits (in-memory sources) without an event loop; raises
    AssertionError if it suspends, which in-memory parsing never may."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("coroutine suspended on an in-memory source")
