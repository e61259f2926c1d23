"""One garbage collection: retention, mark, sweep, under the store's collection lock."""

from __future__ import annotations

import time
from collections import Counter

from pytvix.castore.blobservice import BlobService
from pytvix.castore.directoryservice import DirectoryService
from pytvix.castore.gc import Collectable, StoredObject
from pytvix.castore.progress import Progress, no_progress
from pytvix.store.composition import StoreServices
from pytvix.store.gc.mark import LiveSet, closure_sizes, mark
from pytvix.store.gc.report import GcOptions, GcReport
from pytvix.store.gc.roots import (
    GcUnsupported,
    PathGraph,
    expired,
    least_recently_used,
    load_graph,
    pinned_closure,
    root_store,
)
from pytvix.store.pathinfoservice.roots import RootStore

SWEEP_BATCH = 10_000


def collectables(service: BlobService | DirectoryService) -> list[Collectable]:
    """The services holding objects behind `service` (both sides of caches)."""
    if isinstance(service, Collectable):
        return [service]
    parts = [getattr(service, name, None) for name in ("local", "remote", "near", "far")]
    found = [c for part in parts if part is not None for c in collectables(part)]
    if not found:
        raise GcUnsupported(
            f"{type(service).__name__} cannot be garbage collected from here (for a daemon's "
            "store: run gc on its host, over its own services)"
        )
    return found


async def collect(
    services: StoreServices, options: GcOptions, progress: Progress = no_progress
) -> GcReport:
    store = root_store(services.path_info)
    blob_stores = collectables(services.blob)
    directory_stores = collectables(services.directory)
    report = GcReport(options.dry_run, time.time())
    async with store.gc_lock():
        cutoff = report.started - options.grace
        graph = await load_graph(services.path_info)
        await _apply_retention(store, graph, services.directory, options, report)
        started_mark = time.monotonic()
        live = await mark(graph.infos.values(), services.directory, progress)
        for blobs in blob_stores:
            live.blobs.update(await blobs.gc_expand(live.blobs))
        report.roots, report.marked = len(graph.infos), len(live)
        report.mark_seconds = time.monotonic() - started_mark
        started_sweep = time.monotonic()
        for target in (*blob_stores, *directory_stores):
            await _sweep(target, live, cutoff, report, progress=progress)
        report.sweep_seconds = time.monotonic() - started_sweep
    report.seconds = time.time() - report.started
    return report


async def _apply_retention(
    store: RootStore,
    graph: PathGraph,
    directories: DirectoryService,
    options: GcOptions,
    report: GcReport,
) -> None:
    drop: set[bytes] = set()
    if options.keep_since is not None:
        drop |= await expired(store, graph, options.keep_since)
    if options.max_size is not None:
        drop |= await _over_size(store, graph, directories, options.max_size, drop)
    report.dropped_paths = sorted(graph.name(d) for d in drop)
    for digest in drop:
        if not options.dry_run:
            await store.delete(digest)
        del graph.infos[digest]


async def _over_size(
    store: RootStore, graph: PathGraph, directories: DirectoryService, limit: int, drop: set[bytes]
) -> set[bytes]:
    """Least recently used path infos to drop until the kept ones' data fits in `limit`
    bytes (never a pinned closure, nor a path a kept path refers to)."""
    kept = [info for digest, info in graph.infos.items() if digest not in drop]
    sizes = await closure_sizes(kept, directories)
    holders = Counter(obj for held in sizes.objects.values() for obj in held)
    total = sum(sizes.sizes[obj] for obj in holders)
    protected = await pinned_closure(store, graph)
    dropped: set[bytes] = set()
    for digest in await least_recently_used(store):
        if total <= limit:
            break
        if digest not in sizes.objects or digest in protected:
            continue
        if graph.referrers.get(digest, set()) - dropped - drop:
            continue  # a kept path refers to it
        dropped.add(digest)
        for obj in sizes.objects[digest]:
            holders[obj] -= 1
            if not holders[obj]:
                total -= sizes.sizes[obj]
    return dropped


async def _sweep(
    target: Collectable,
    live: LiveSet,
    cutoff: float,
    report: GcReport,
    *,
    progress: Progress,
) -> None:
    """Delete what `target` holds that is neither live nor written after `cutoff` (in a
    dry run: count it)."""
    dry_run = report.dry_run
    batch: list[StoredObject] = []
    async for obj in target.gc_objects():
        report.found(obj.kind, obj.size)
        progress("objects", 1)
        keep = _is_live(obj, live)
        if keep or obj.written >= cutoff:
            continue
        batch.append(obj)
        if len(batch) >= SWEEP_BATCH:
            await _delete(target, batch, cutoff, dry_run, report)
            batch = []
    if batch:
        await _delete(target, batch, cutoff, dry_run, report)


def _is_live(obj: StoredObject, live: LiveSet) -> bool:
    if obj.digest is None:
        return False  # stray files belong to no blob
    directory = obj.kind.endswith("directory")  # "directory", "trashed directory"
    return obj.digest in (live.directories if directory else live.blobs)


async def _delete(
    target: Collectable, batch: list[StoredObject], cutoff: float, dry_run: bool, report: GcReport
) -> None:
    deleted = batch if dry_run else await target.gc_delete(batch, cutoff)
    for obj in deleted:
        report.deleted(obj.kind, obj.size)
