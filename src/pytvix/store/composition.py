"""The PathInfoService kind and compositions of all three service kinds."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytvix.castore.blobservice import BlobService
from pytvix.castore.composition import (
    BLOB_SERVICES,
    DEFAULT_INSTANCE,
    DIRECTORY_SERVICES,
    NO_REDB,
    Composition,
    ServiceKind,
)
from pytvix.castore.directoryservice import DirectoryService
from pytvix.store.pathinfoservice import PathInfoService

log = logging.getLogger(__name__)

PATHINFO_SERVICES: ServiceKind[Any] = ServiceKind(
    "pathinfoservices",
    "path info service",
    {
        "memory": "pytvix.store.pathinfoservice.memory:MemoryPathInfoServiceConfig",
        "lmdb": "pytvix.store.pathinfoservice.lmdb:LmdbPathInfoServiceConfig",
        "grpc": "pytvix.store.pathinfoservice.grpc:GrpcPathInfoServiceConfig",
        "cache": "pytvix.store.pathinfoservice.cache:CachePathInfoServiceConfig",
        "lru": "pytvix.store.pathinfoservice.lru:LruPathInfoServiceConfig",
        "keyfile-signing": "pytvix.store.pathinfoservice.signing:SigningPathInfoServiceConfig",
        "nix": "pytvix.store.pathinfoservice.nix_http:NixHttpPathInfoServiceConfig",
        "postgresql": "pytvix.store.pathinfoservice.postgres:PostgresPathInfoServiceConfig",
        "nats": "pytvix.store.pathinfoservice.nats:NatsPathInfoServiceConfig",
    },
    unsupported={"redb": NO_REDB},
)

STORE_KINDS = (BLOB_SERVICES, DIRECTORY_SERVICES, PATHINFO_SERVICES)


@dataclass(frozen=True)
class StoreServices:
    """The three services a store command works with, and the composition owning them."""

    blob: BlobService
    directory: DirectoryService
    path_info: PathInfoService
    composition: Composition

    async def close(self) -> None:
        await self.composition.close()


def store_composition(config: Mapping[str, Any]) -> Composition:
    return Composition(config, STORE_KINDS)


def composition_from_urls(blob: str, directory: str, path_info: str) -> Composition:
    """Each URL becomes the `default` instance of its kind."""
    comp = Composition({}, STORE_KINDS)
    comp.add(BLOB_SERVICES, DEFAULT_INSTANCE, BLOB_SERVICES.config_from_url(blob))
    comp.add(DIRECTORY_SERVICES, DEFAULT_INSTANCE, DIRECTORY_SERVICES.config_from_url(directory))
    comp.add(PATHINFO_SERVICES, DEFAULT_INSTANCE, PATHINFO_SERVICES.config_from_url(path_info))
    return comp


async def build_store(composition: Composition, name: str = DEFAULT_INSTANCE) -> StoreServices:
    """Build the three `name` instances of a composition (warning if it would lose data)."""
    warn_if_records_outlive_data(composition, name)
    blob = await composition.build(BLOB_SERVICES, name)
    directory = await composition.build(DIRECTORY_SERVICES, name)
    path_info = await composition.build(PATHINFO_SERVICES, name)
    return StoreServices(blob, directory, path_info, composition)


def warn_if_records_outlive_data(composition: Composition, name: str = DEFAULT_INSTANCE) -> None:
    """A durable path info service over a blob or directory service that forgets everything
    when the process ends would keep records of data that is gone: say so."""
    if not composition.durable(PATHINFO_SERVICES, name):
        return
    lost = [
        kind.label
        for kind in (BLOB_SERVICES, DIRECTORY_SERVICES)
        if not composition.durable(kind, name)
    ]
    if lost:
        log.warning(
            "the path info service keeps its records, but the %s keep%s data in memory only: "
            "path infos written now will point at data that is gone when this process ends "
            "(use durable blob and directory services, or a memory:// path info service)",
            " and ".join(lost),
            "s" if len(lost) == 1 else "",
        )


async def open_store_from_urls(blob: str, directory: str, path_info: str) -> StoreServices:
    return await build_store(composition_from_urls(blob, directory, path_info))


async def open_store_from_toml(path: str | Path) -> StoreServices:
    return await build_store(Composition.from_toml(path, STORE_KINDS))
