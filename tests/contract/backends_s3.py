"""S3 backends for the contract suites: `objectstore+s3://` on this process's Ceph radosgw
(tests/servers/ceph.py, started on first use), a fresh bucket per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pytvix.castore.composition import BLOB_SERVICES, DIRECTORY_SERVICES
from tests.contract.opening import Factory, opened
from tests.servers.ceph import ceph


def on_radosgw(kind: Any, **options: str) -> Factory:
    """A service built by from_addr on `objectstore+s3://<fresh bucket>/prefix?...`."""

    @asynccontextmanager
    async def factory(tmp: Path) -> AsyncIterator[Any]:
        server = ceph()
        url = server.url(server.new_bucket(), "prefix", scheme="objectstore+s3", **options)
        async with opened(kind, url) as service:
            yield service

    return factory


BLOB_BACKENDS: dict[str, Factory] = {
    "s3": on_radosgw(BLOB_SERVICES),
    # many chunks per blob: chunked reads and partial fetches over HTTP
    "s3-smallchunks": on_radosgw(BLOB_SERVICES, avg_chunk_size="4096"),
}
DIRECTORY_BACKENDS: dict[str, Factory] = {"s3": on_radosgw(DIRECTORY_SERVICES)}
