"""What garbage collection asks of a path info service: path infos are its roots, so it must
be able to delete them, keep named pins, say when each path was added and last read, and hold
the store's collection lock.

Reads are recorded without a write per read: `ReadTimes` collects the digests read and the
service writes them at most every FLUSH_SECONDS (and when it closes), so "last read" is
accurate to about that.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pytvix.castore.errors import StorageError

FLUSH_SECONDS = 60.0
FLUSH_COUNT = 10_000


class GcBusy(StorageError):
    """Another garbage collection holds the store's lock."""


@dataclass(frozen=True, slots=True)
class PathTimes:
    digest: bytes
    added: float
    last_read: float  # 0.0 if never read since it was added


@runtime_checkable
class RootStore(Protocol):
    async def delete(self, digest: bytes) -> bool:
        """Remove a path info (not its data); whether there was one."""
        ...

    async def pins(self) -> dict[str, tuple[bytes, ...]]:
        """Pin name -> the store path digests it holds."""
        ...

    async def set_pin(self, name: str, digests: Sequence[bytes]) -> None: ...

    async def unpin(self, name: str) -> bool: ...

    def times(self) -> AsyncIterator[PathTimes]:
        """When each path info was added and last read."""
        ...

    def gc_lock(self) -> AbstractAsyncContextManager[None]:
        """Held for a whole collection; raises GcBusy if another one holds it. A collector
        that dies releases it."""
        ...


class ReadTimes:
    """Digests read, written in batches by `flush` (the service's write function)."""

    def __init__(self, flush: Callable[[dict[bytes, float]], Awaitable[None]]) -> None:
        self._flush = flush
        self._pending: dict[bytes, float] = {}
        self._last_flush = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def read(self, digest: bytes) -> None:
        self._pending[digest] = time.time()
        due = time.monotonic() - self._last_flush >= FLUSH_SECONDS
        if (due or len(self._pending) >= FLUSH_COUNT) and self._task is None:
            self._task = asyncio.ensure_future(self.flush())

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        self._last_flush = time.monotonic()
        try:
            if pending:
                await self._flush(pending)
        finally:
            self._task = None


def split_digests(value: bytes) -> tuple[bytes, ...]:
    """A pin's stored value (concatenated 20-byte store path digests) split."""
    return tuple(value[i : i + 20] for i in range(0, len(value), 20))
