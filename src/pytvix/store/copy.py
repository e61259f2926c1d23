"""`tvix-store copy`: import a closure described by a Nix structured-attrs JSON file (the
`closure` of `exportReferencesGraph`), as upstream (PROTOCOL.md §3.1).

Paths already known are skipped; the others are ingested from the local /nix/store, up to
COPY_PARALLELISM at a time. Unlike upstream, the NAR hash and size given in the JSON are not
taken on trust: they are computed during ingestion and a mismatch is an error. A `ca` (content
address) in the JSON is kept, after checking it against the content and the store path.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytvix.castore.ingest.fs import ingest_path
from pytvix.castore.progress import Progress, no_progress
from pytvix.nixcompat.nixhash import CAHash, HashAlgo, NixHash, NixHashError, parse_ca
from pytvix.nixcompat.store_path import StorePath, StorePathError
from pytvix.observability import traced
from pytvix.store.composition import StoreServices
from pytvix.store.content_address import ContentAddressError, verify_content_address
from pytvix.store.import_ import StoreImportError
from pytvix.store.nar.hashing import NarHasher
from pytvix.store.path_info import PathInfo

COPY_PARALLELISM = 10


@dataclass(frozen=True)
class ClosureEntry:
    store_path: StorePath
    nar_sha256: bytes
    nar_size: int
    references: tuple[StorePath, ...]
    ca: CAHash | None = None


def parse_closure(text: str, source: str) -> list[ClosureEntry]:
    """The `closure` list of a structured-attrs JSON document."""
    try:
        doc = json.loads(text)
        raw = doc["closure"]
        if not isinstance(raw, list):
            raise TypeError("`closure` is not a list")
        return [_entry(item) for item in raw]
    except (ValueError, KeyError, TypeError, StorePathError, NixHashError) as e:
        raise StoreImportError(f"{source}: not a valid structured-attrs closure: {e}") from e


def _entry(item: dict[str, Any]) -> ClosureEntry:
    nar_hash = NixHash.parse(item["narHash"])
    if nar_hash.algo is not HashAlgo.SHA256:
        raise ValueError(f"narHash of {item['path']} is not sha256")
    size = item["narSize"]
    if not isinstance(size, int) or size < 0:
        raise ValueError(f"narSize of {item['path']} is not a size")
    return ClosureEntry(
        StorePath.from_absolute_path(item["path"]),
        nar_hash.digest,
        size,
        tuple(StorePath.from_absolute_path(r) for r in item.get("references", [])),
        parse_ca(item["ca"]) if item.get("ca") else None,
    )


@traced("store.copy")
async def copy_closure(
    entries: Sequence[ClosureEntry],
    services: StoreServices,
    *,
    store_dir: Path = Path("/nix/store"),
    progress: Progress = no_progress,
) -> list[PathInfo]:
    """Import every entry not yet in the store; returns the PathInfos written."""
    semaphore = asyncio.Semaphore(COPY_PARALLELISM)

    async def copy_one(entry: ClosureEntry) -> PathInfo | None:
        async with semaphore:
            if await services.path_info.get(entry.store_path.digest) is not None:
                return None
            hasher = NarHasher()
            node, _ = await ingest_path(
                store_dir / str(entry.store_path),
                services.blob,
                services.directory,
                observer=hasher,
                progress=progress,
            )
            size, sha = hasher.finish()
            if (size, sha) != (entry.nar_size, entry.nar_sha256):
                raise StoreImportError(
                    f"{entry.store_path.to_absolute_path()}: NAR hash/size on disk "
                    f"({_show(sha, size)}) differ from the closure file's "
                    f"({_show(entry.nar_sha256, entry.nar_size)})"
                )
            info = PathInfo(
                store_path=entry.store_path,
                node=node,
                references=entry.references,
                nar_size=size,
                nar_sha256=sha,
                ca=entry.ca,
            )
            try:
                await verify_content_address(info, services.blob, services.directory)
            except ContentAddressError as e:
                raise StoreImportError(str(e)) from e
            return await services.path_info.put(info)

    results = await asyncio.gather(*(copy_one(e) for e in entries))
    return [r for r in results if r is not None]


def _show(sha256: bytes, size: int) -> str:
    return f"{NixHash(HashAlgo.SHA256, sha256).to_nix_base32_str()}, {size} bytes"
