"""The postgresql:// backends for the contract suites, each test on a fresh database of the
test process's PostgreSQL server (tests/servers/postgres.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from pytvix.castore.composition import DIRECTORY_SERVICES, from_addr
from pytvix.store.composition import PATHINFO_SERVICES
from tests.servers.postgres import fresh_database

Factory = Callable[[Path], AbstractAsyncContextManager[Any]]


def on_fresh_database(kind: Any) -> Factory:
    @asynccontextmanager
    async def factory(tmp: Path) -> AsyncIterator[Any]:
        async with fresh_database() as url:
            service = await from_addr(kind, url)
            try:
                yield service
            finally:
                await service.close()

    return factory


DIRECTORY_BACKENDS: dict[str, Factory] = {"postgresql": on_fresh_database(DIRECTORY_SERVICES)}
PATHINFO_BACKENDS: dict[str, Factory] = {"postgresql": on_fresh_database(PATHINFO_SERVICES)}
