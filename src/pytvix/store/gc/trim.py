"""Trimming near blob caches to a byte budget, without touching their far stores.

A `cache` blob service's near store only ever holds copies of what its far store has, so any
of its objects may go; upstream's `combined` also writes to its local store only, so there
only blobs the remote has may go. Objects are evicted oldest written (filled) first, a chunk
only once no blob left in the near store refers to it, and nothing written after the trim
started. Reads that miss fill the near store again from the far one.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pytvix.castore.blobservice import BlobService
from pytvix.castore.blobservice.combined import CacheBlobService, CombinedBlobService
from pytvix.castore.digests import B3Digest
from pytvix.castore.gc import Collectable, StoredObject
from pytvix.castore.progress import Progress, no_progress

TRASHED_KINDS = ("trashed blob",)  # object stores' trash: evicted first, like strays


class NotACache(ValueError):
    """The blob service has no near cache to trim."""


@dataclass
class NearCache:
    """One near store and the far store behind it; `far_has_all`: a `cache` (whose writes go
    to far), not a `combined` (whose writes stay local)."""

    near: BlobService
    far: BlobService
    far_has_all: bool


@dataclass
class TrimReport:
    dry_run: bool
    max_size: int
    found: int = 0
    found_bytes: int = 0
    evicted: int = 0
    evicted_bytes: int = 0
    kept_local_only: int = 0  # blobs only a combined local store holds
    seconds: float = 0.0
    caches: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def near_caches(service: BlobService) -> list[NearCache]:
    """The near caches in a blob service's composition (NotACache if there are none)."""
    found: list[NearCache] = []
    _find(service, found)
    if not found:
        raise NotACache(f"{type(service).__name__} is not a cache: there is nothing to trim")
    return found


def _find(service: BlobService, found: list[NearCache]) -> None:
    if isinstance(service, CombinedBlobService):
        found.append(
            NearCache(service.local, service.remote, isinstance(service, CacheBlobService))
        )
        _find(service.remote, found)


async def trim(
    caches: list[NearCache], max_size: int, *, dry_run: bool, progress: Progress = no_progress
) -> TrimReport:
    """Evict from the near stores until each holds at most `max_size` bytes."""
    report = TrimReport(dry_run, max_size)
    started = time.time()
    for cache in caches:
        near = cache.near
        if not isinstance(near, Collectable):
            raise NotACache(f"the near store {type(near).__name__} cannot list its objects")
        report.caches.append(type(near).__name__)
        objects = [obj async for obj in near.gc_objects()]
        report.found += len(objects)
        report.found_bytes += sum(obj.size for obj in objects)
        victims = await _choose(cache, objects, max_size, report, progress)
        if not dry_run:
            victims = await near.gc_delete(victims, started)
            trashed = [o async for o in near.gc_objects() if o.kind in TRASHED_KINDS]
            await near.gc_delete([o for o in trashed if o.written >= started], time.time() + 1)
        report.evicted += len(victims)
        report.evicted_bytes += sum(obj.size for obj in victims)
    report.seconds = time.time() - started
    return report


async def _choose(
    cache: NearCache,
    objects: list[StoredObject],
    max_size: int,
    report: TrimReport,
    progress: Progress,
) -> list[StoredObject]:
    """The objects to evict, oldest first: strays and trash, then blobs with the chunks only
    they use, until what is left fits."""
    blobs = sorted((o for o in objects if o.kind == "blob"), key=lambda o: o.written)
    chunks = {o.digest: o for o in objects if o.kind == "chunk"}
    uses = {blob.digest: await _chunks_of(cache.near, blob, chunks) for blob in blobs}
    users = Counter(digest for used in uses.values() for digest in used)
    loose = [o for o in objects if o.kind not in ("blob", "chunk")]
    loose += [o for digest, o in chunks.items() if digest is None or not users[digest]]
    victims = sorted(loose, key=lambda o: o.written)
    left = sum(o.size for o in objects) - sum(o.size for o in victims)
    for blob in blobs:
        if left <= max_size:
            break
        assert blob.digest is not None
        if not cache.far_has_all and not await cache.far.has(blob.digest):
            report.kept_local_only += 1
            continue
        victims.append(blob)
        left -= blob.size
        for digest in uses[blob.digest]:
            users[digest] -= 1
            if not users[digest]:
                victims.append(chunks[digest])
                left -= chunks[digest].size
        progress("blobs", 1)
    return victims


async def _chunks_of(
    near: BlobService, blob: StoredObject, chunks: dict[B3Digest | None, StoredObject]
) -> list[B3Digest]:
    """The chunk objects a blob of the near store reads (its own digest's, if single)."""
    assert blob.digest is not None
    listed = await near.chunks(blob.digest) or []
    digests = [c.digest for c in listed] if len(listed) > 1 else [blob.digest]
    return [d for d in dict.fromkeys(digests) if d in chunks]
