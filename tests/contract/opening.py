"""What every contract backend factory shares: the factory type and opening a service by URL
for the duration of one test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from pytvix.castore.composition import from_addr

Factory = Callable[[Path], AbstractAsyncContextManager[Any]]


@asynccontextmanager
async def opened(kind: Any, url: str) -> AsyncIterator[Any]:
    """The service of `kind` at `url`, closed when the block ends."""
    service = await from_addr(kind, url)
    try:
        yield service
    finally:
        await service.close()
