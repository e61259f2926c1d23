"""What one client may hold of nar-bridge: a cap on requests in flight, and a deadline on every
transfer that makes no progress.

Memory a response holds is bounded elsewhere (read-ahead comes from the process-wide budget,
castore.readahead; aiohttp waits for the socket to drain before taking more): what remains
per client is a request slot and the piece being sent. A client that stops reading (or an
uploader that stops sending) for `stall_timeout` seconds loses its connection, so stalled
clients cannot hold those slots for long.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web

log = logging.getLogger(__name__)

R = TypeVar("R")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RequestLimiter:
    """Answers 503 (Retry-After: 1) while `limit` requests are in flight."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.active >= self.limit:
            raise web.HTTPServiceUnavailable(
                text=f"busy: {self.limit} requests in flight", headers={"Retry-After": "1"}
            )
        self.active += 1
        try:
            return await handler(request)
        finally:
            self.active -= 1


class StallWatchdog:
    """Closes the connection of a transfer step (a socket write or read) that has waited for
    the client longer than `timeout` seconds. One timer task checks all of them."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._waiting: dict[int, tuple[float, web.Request]] = {}
        self._task: asyncio.Task[None] | None = None
        self._next = 0

    async def guard(self, request: web.Request, step: Awaitable[R]) -> R:
        """Await `step` (one write or read for `request`) under the stall deadline."""
        if self._task is None:
            self._task = asyncio.create_task(self._watch())
        key = self._next
        self._next += 1
        self._waiting[key] = (asyncio.get_running_loop().time(), request)
        try:
            return await step
        finally:
            del self._waiting[key]

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(self.timeout / 4, 0.05))
            deadline = loop.time() - self.timeout
            for started, request in list(self._waiting.values()):
                if started < deadline and request.transport is not None:
                    log.info(
                        "%s %s: client stalled for %.0fs, closing",
                        request.method,
                        request.path,
                        self.timeout,
                    )
                    request.transport.abort()  # close() would wait for the unsent bytes

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
