"""The postgresql:// backends for the contract suites, each test on a fresh database of the
test process's PostgreSQL server (tests/servers/postgres.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pytvix.castore.composition import DIRECTORY_SERVICES
from pytvix.store.composition import PATHINFO_SERVICES
from tests.contract.opening import Factory, opened
from tests.servers.postgres import fresh_database


def on_fresh_database(kind: Any) -> Factory:
    @asynccontextmanager
    async def factory(tmp: Path) -> AsyncIterator[Any]:
        async with fresh_database() as url, opened(kind, url) as service:
            yield service

    return factory


DIRECTORY_BACKENDS: dict[str, Factory] = {"postgresql": on_fresh_database(DIRECTORY_SERVICES)}
PATHINFO_BACKENDS: dict[str, Factory] = {"postgresql": on_fresh_database(PATHINFO_SERVICES)}
