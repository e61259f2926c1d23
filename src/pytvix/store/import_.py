"""Importing file trees and NARs as Nix store paths (`tvix-store import`, `import-nar`,
`copy`). The NAR hash is computed while the tree is ingested (one read of every file), the
store path is the content-addressed `source` path Nix computes for `nix-store --add`, and the
PathInfo is written last, after the blobs and directories it refers to."""

from __future__ import annotations

import os
from dataclasses import dataclass

from pytvix.castore.ingest.fs import IngestStats, ingest_path
from pytvix.castore.nodes import Node
from pytvix.castore.progress import Progress, no_progress
from pytvix.nixcompat.nixhash import CANar, HashAlgo, NixHash
from pytvix.nixcompat.store_path import StorePath, StorePathError, build_source_path
from pytvix.observability import traced
from pytvix.store.composition import StoreServices
from pytvix.store.nar.hashing import NarHasher
from pytvix.store.nar.ingest import ingest_nar
from pytvix.store.nar.io import ByteSource
from pytvix.store.path_info import PathInfo


class StoreImportError(Exception):
    """A path or NAR cannot be imported as a store path (bad name, hash mismatch)."""


@dataclass(frozen=True)
class Imported:
    info: PathInfo
    stats: IngestStats | None


def name_for(path: str | os.PathLike[str]) -> str:
    """The store path name for an imported path: its final component (must be UTF-8 and a
    valid store path name, as `nix-store --add` requires)."""
    base = os.path.basename(os.path.normpath(os.path.abspath(os.fspath(path))))
    if base in ("", "..", "."):
        raise StoreImportError(f"{os.fspath(path)!r} has no usable name for a store path")
    return base


def source_path_info(name: str, node: Node, nar_size: int, nar_sha256: bytes) -> PathInfo:
    """The PathInfo `nix-store --add` would register: a `source` CA path, no references."""
    try:
        store_path = build_source_path(name, nar_sha256)
    except StorePathError as e:
        raise StoreImportError(f"cannot name a store path {name!r}: {e}") from e
    return PathInfo(
        store_path=store_path,
        node=node,
        nar_size=nar_size,
        nar_sha256=nar_sha256,
        ca=CANar(NixHash(HashAlgo.SHA256, nar_sha256)),
    )


@traced("store.import")
async def import_path(
    path: str | os.PathLike[str],
    services: StoreServices,
    *,
    name: str | None = None,
    progress: Progress = no_progress,
) -> Imported:
    """Import the tree at `path`; returns the stored PathInfo and ingest statistics."""
    name = name or name_for(path)
    try:
        StorePath(bytes(20), name)  # reject bad names before doing any work
    except StorePathError as e:
        raise StoreImportError(f"cannot import {os.fspath(path)!r}: {e}") from e
    hasher = NarHasher()
    node, stats = await ingest_path(
        path, services.blob, services.directory, observer=hasher, progress=progress
    )
    nar_size, nar_sha256 = hasher.finish()
    info = source_path_info(name, node, nar_size, nar_sha256)
    return Imported(await services.path_info.put(info), stats)


@traced("store.import_nar")
async def import_nar(source: ByteSource, services: StoreServices, name: str) -> Imported:
    """Import a NAR stream as the `source` CA path named `name`."""
    try:
        StorePath(bytes(20), name)
    except StorePathError as e:
        raise StoreImportError(f"cannot import the NAR as {name!r}: {e}") from e
    node, nar_size, nar_sha256 = await ingest_nar(source, services.blob, services.directory)
    info = source_path_info(name, node, nar_size, nar_sha256)
    return Imported(await services.path_info.put(info), None)
