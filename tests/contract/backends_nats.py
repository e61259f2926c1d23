"""The NATS JetStream backends for the contract suites, on the process's test server
(`tests.servers.nats`), each instance under its own bucket prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pytvix.castore.composition import BLOB_SERVICES, DIRECTORY_SERVICES
from pytvix.store.composition import PATHINFO_SERVICES
from tests.contract.opening import Factory, opened
from tests.servers.nats import delete_buckets, nats_server, unique_prefix


def nats_backend(kind: Any, query: str = "") -> Factory:
    """A backend of `kind` on the test server under a fresh bucket prefix (its buckets are
    deleted afterwards); `query` adds URL options."""

    @asynccontextmanager
    async def factory(tmp: Path) -> AsyncIterator[Any]:
        server = nats_server()
        prefix = unique_prefix()
        async with opened(kind, f"{server.url}?bucket_prefix={prefix}{query}") as service:
            yield service
            await delete_buckets(server.url, prefix)

    return factory


BLOB_BACKENDS: dict[str, Factory] = {
    "nats": nats_backend(BLOB_SERVICES),
    # many small chunks: every read spans chunk borders
    "nats-smallchunks": nats_backend(BLOB_SERVICES, "&avg_chunk_size=4096"),
}
DIRECTORY_BACKENDS: dict[str, Factory] = {"nats": nats_backend(DIRECTORY_SERVICES)}
PATHINFO_BACKENDS: dict[str, Factory] = {"nats": nats_backend(PATHINFO_SERVICES)}
