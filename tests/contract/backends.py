"""Every backend the contract suites run against: id -> async context manager factory.

Adding a backend adds one line here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from pytvix.castore.composition import BLOB_SERVICES, DIRECTORY_SERVICES, from_addr
from pytvix.store.composition import PATHINFO_SERVICES

Factory = Callable[[Path], AbstractAsyncContextManager[Any]]


def by_url(kind: Any, url_template: str) -> Factory:
    """A backend built with from_addr; `{tmp}` in the template is a fresh temp directory."""

    @asynccontextmanager
    async def factory(tmp: Path) -> AsyncIterator[Any]:
        service = await from_addr(kind, url_template.format(tmp=tmp))
        try:
            yield service
        finally:
            await service.close()

    return factory


BLOB_BACKENDS: dict[str, Factory] = {
    "memory": by_url(BLOB_SERVICES, "memory://"),
    "objectstore-memory": by_url(BLOB_SERVICES, "objectstore+memory:///"),
    "objectstore-file": by_url(BLOB_SERVICES, "objectstore+file://{tmp}/blobs"),
    "objectstore-file-smallchunks": by_url(
        BLOB_SERVICES, "objectstore+file://{tmp}/blobs?avg_chunk_size=4096&fsync=true"
    ),
}

DIRECTORY_BACKENDS: dict[str, Factory] = {
    "memory": by_url(DIRECTORY_SERVICES, "memory://"),
    "lmdb-temporary": by_url(DIRECTORY_SERVICES, "lmdb://"),
    "lmdb": by_url(DIRECTORY_SERVICES, "lmdb://{tmp}/store.lmdb"),
    "objectstore-memory": by_url(DIRECTORY_SERVICES, "objectstore+memory:///"),
    "objectstore-file": by_url(DIRECTORY_SERVICES, "objectstore+file://{tmp}/dirs"),
}

PATHINFO_BACKENDS: dict[str, Factory] = {
    "memory": by_url(PATHINFO_SERVICES, "memory://"),
    "lmdb-temporary": by_url(PATHINFO_SERVICES, "lmdb://"),
    "lmdb": by_url(PATHINFO_SERVICES, "lmdb://{tmp}/store.lmdb"),
}
