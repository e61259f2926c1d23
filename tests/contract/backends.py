"""Every backend the contract suites run against: id -> async context manager factory.

Adding a backend adds one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from pytvix.castore.composition import BLOB_SERVICES, DIRECTORY_SERVICES, Composition
from pytvix.nixcompat.signing import SigningKey
from pytvix.store.composition import PATHINFO_SERVICES, STORE_KINDS, open_store_from_urls
from pytvix.store.grpc_daemon import StoreServer
from tests.contract.opening import Factory, opened


def by_url(kind: Any, url_template: str) -> Factory:
    """A backend built with from_addr; `{tmp}` in the template is a fresh temp directory."""

    @asynccontextmanager
    async def factory(tmp: Path) -> AsyncIterator[Any]:
        async with opened(kind, url_template.format(tmp=tmp)) as service:
            yield service

    return factory


BLOB_BACKENDS: dict[str, Factory] = {
    "memory": by_url(BLOB_SERVICES, "memory://"),
    "objectstore-memory": by_url(BLOB_SERVICES, "objectstore+memory:///"),
    "objectstore-file": by_url(BLOB_SERVICES, "objectstore+file://{tmp}/blobs"),
    "objectstore-file-smallchunks": by_url(
        BLOB_SERVICES, "objectstore+file://{tmp}/blobs?avg_chunk_size=4096&fsync=true"
    ),
    "local": by_url(BLOB_SERVICES, "local://{tmp}/local"),
    "local-all-files": by_url(BLOB_SERVICES, "local://{tmp}/local?inline_max=0&fsync=false"),
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


@asynccontextmanager
async def grpc_server(tmp: Path, blob: str = "memory://") -> AsyncIterator[str]:
    """An in-process gRPC server on a unix socket over memory services (the blob service
    given by URL); yields its URL."""

    services = await open_store_from_urls(blob, "memory://", "memory://")
    socket = tmp / "grpc.sock"
    # the path info contract puts path infos whose roots were never uploaded
    server = await StoreServer.start(services, str(socket), check_roots=False)
    try:
        yield f"grpc+unix://{socket}"
    finally:
        await server.stop(grace=1)
        await services.close()


def via_grpc(kind: Any, blob: str = "memory://") -> Factory:
    """The gRPC client backend of `kind`, against an in-process server."""

    @asynccontextmanager
    async def factory(tmp: Path) -> AsyncIterator[Any]:
        async with grpc_server(tmp, blob) as url, opened(kind, url) as service:
            yield service

    return factory


BLOB_BACKENDS["grpc"] = via_grpc(BLOB_SERVICES)
# a chunking backend behind the server: the client reads chunk by chunk
BLOB_BACKENDS["grpc-chunked"] = via_grpc(
    BLOB_SERVICES, "objectstore+memory:///?avg_chunk_size=65536"
)
DIRECTORY_BACKENDS["grpc"] = via_grpc(DIRECTORY_SERVICES)
PATHINFO_BACKENDS["grpc"] = via_grpc(PATHINFO_SERVICES)


def composed(kind: Any, config: dict[str, Any]) -> Factory:
    """The `default` instance of a composition (`{tmp}` in string values is a temp dir)."""

    def fill(value: Any, tmp: Path) -> Any:
        if isinstance(value, str):
            return value.format(tmp=tmp)
        if isinstance(value, dict):
            return {k: fill(v, tmp) for k, v in value.items()}
        return value

    @asynccontextmanager
    async def factory(tmp: Path) -> AsyncIterator[Any]:
        composition = Composition(fill(config, tmp), STORE_KINDS)
        try:
            yield await composition.build(kind)
        finally:
            await composition.close()

    return factory


def two_tier_blobs(tag: str, near_field: str, far_field: str) -> Any:
    """A memory near store over a chunking object store far, as blob service `tag`."""
    return composed(
        BLOB_SERVICES,
        {
            "blobservices": {
                "default": {"type": tag, near_field: "near", far_field: "far"},
                "near": {"type": "memory"},
                "far": {
                    "type": "objectstore",
                    "object_store_url": "memory:///",
                    "object_store_options": {},
                    "avg_chunk_size": 65536,
                },
            }
        },
    )


BLOB_BACKENDS["combined"] = two_tier_blobs("combined", "local", "remote")
BLOB_BACKENDS["cache"] = two_tier_blobs("cache", "near", "far")
DIRECTORY_BACKENDS["cache"] = composed(
    DIRECTORY_SERVICES,
    {
        "directoryservices": {
            "default": {"type": "cache", "near": "near", "far": "far"},
            "near": {"type": "memory"},
            "far": {"type": "lmdb", "path": "{tmp}/far.lmdb"},
        }
    },
)
DIRECTORY_BACKENDS["cache-url"] = by_url(
    DIRECTORY_SERVICES, "cache://?near=memory://&far=objectstore%2Bmemory:///"
)
PATHINFO_BACKENDS["cache-lru"] = composed(
    PATHINFO_SERVICES,
    {
        "pathinfoservices": {
            "default": {"type": "cache", "near": "near", "far": "far"},
            "near": {"type": "lru", "capacity": 2},
            "far": {"type": "memory"},
        }
    },
)
PATHINFO_BACKENDS["lru"] = composed(
    PATHINFO_SERVICES, {"pathinfoservices": {"default": {"type": "lru", "capacity": 1000}}}
)


def _signing(tmp: Path) -> AbstractAsyncContextManager[Any]:

    (tmp / "secret.key").write_text(str(SigningKey.generate("contract-test-1")))
    return composed(
        PATHINFO_SERVICES,
        {
            "pathinfoservices": {
                "default": {
                    "type": "keyfile-signing",
                    "inner": "inner",
                    "keyfile": "{tmp}/secret.key",
                },
                "inner": {"type": "memory"},
            }
        },
    )(tmp)


PATHINFO_BACKENDS["keyfile-signing"] = _signing


# Backends on servers started by the tests (S3 on Ceph radosgw, PostgreSQL, NATS) live in
# their own modules, each adding its entries to the tables above.
for _module in ("backends_s3", "backends_postgres", "backends_nats"):
    try:
        _extra = importlib.import_module(f"tests.contract.{_module}")
    except ModuleNotFoundError as _e:
        if _e.name != f"tests.contract.{_module}":
            raise
        continue
    BLOB_BACKENDS.update(getattr(_extra, "BLOB_BACKENDS", {}))
    DIRECTORY_BACKENDS.update(getattr(_extra, "DIRECTORY_BACKENDS", {}))
    PATHINFO_BACKENDS.update(getattr(_extra, "PATHINFO_BACKENDS", {}))
