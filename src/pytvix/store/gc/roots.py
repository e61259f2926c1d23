"""The roots side of garbage collection: finding the store that keeps path infos and pins
behind wrapper services, the reference graph of store paths, and deciding which path infos a
deletion or a retention policy may remove (never one a kept path refers to, never a pinned
closure)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from pytvix.castore.errors import StorageError
from pytvix.store.path_info import PathInfo
from pytvix.store.pathinfoservice import PathInfoService
from pytvix.store.pathinfoservice.roots import PathTimes, RootStore


class GcUnsupported(StorageError):
    """The configured services cannot be garbage collected from here."""


def root_store(service: PathInfoService) -> RootStore:
    """The service that keeps the path infos behind wrappers (signing: its inner; cache:
    its far side, which holds the truth)."""
    seen = service
    while not isinstance(seen, RootStore):
        inner = getattr(seen, "inner", None) or getattr(seen, "far", None)
        if inner is None:
            raise GcUnsupported(
                f"the path info service ({type(service).__name__}) cannot delete path infos or "
                "keep pins: run this where the store is (for a daemon: on its host, over its "
                "own services)"
            )
        seen = inner
    return seen


@dataclass
class PathGraph:
    """Every path info, with the references between them."""

    infos: dict[bytes, PathInfo]
    referrers: dict[bytes, set[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for digest, info in self.infos.items():
            for ref in info.references:
                if ref.digest != digest:
                    self.referrers.setdefault(ref.digest, set()).add(digest)

    def closure(self, digests: Iterable[bytes]) -> set[bytes]:
        """The digests and every store path they refer to, transitively (known ones)."""
        out: set[bytes] = set()
        stack = [d for d in digests if d in self.infos]
        while stack:
            digest = stack.pop()
            if digest in out:
                continue
            out.add(digest)
            stack.extend(r.digest for r in self.infos[digest].references if r.digest in self.infos)
        return out

    def name(self, digest: bytes) -> str:
        return self.infos[digest].store_path.to_absolute_path()


async def load_graph(service: PathInfoService) -> PathGraph:
    return PathGraph({info.store_path.digest: info async for info in service.list()})


async def pinned_closure(store: RootStore, graph: PathGraph) -> set[bytes]:
    pins = await store.pins()
    return graph.closure(d for digests in pins.values() for d in digests)


@dataclass
class DeletePlan:
    delete: list[bytes]
    refused: dict[bytes, list[bytes]]  # path -> the kept paths that refer to it (or pin)


async def plan_delete(
    store: RootStore, graph: PathGraph, targets: list[bytes], *, closure: bool, force: bool
) -> DeletePlan:
    """Which path infos deleting `targets` removes. With `closure`, also what only they
    kept (their references no remaining path refers to); without `force`, targets that a
    remaining path refers to, or that a pin holds, are refused."""
    pinned = await pinned_closure(store, graph)
    chosen = set(targets)
    if closure:
        chosen = _closure_kept_only_by(graph, chosen, pinned)
    refused: dict[bytes, list[bytes]] = {}
    if not force:
        for digest in targets:
            users = sorted(graph.referrers.get(digest, set()) - chosen)
            if users or digest in pinned:
                refused[digest] = users
    return DeletePlan([d for d in chosen if d not in refused], refused)


def _closure_kept_only_by(graph: PathGraph, chosen: set[bytes], pinned: set[bytes]) -> set[bytes]:
    """`chosen` plus references no path outside the growing set refers to (nor a pin)."""
    candidates = graph.closure(chosen)
    changed = True
    while changed:
        changed = False
        for digest in list(candidates - chosen):
            if digest in pinned or graph.referrers.get(digest, set()) - candidates:
                candidates.discard(digest)
                changed = True
    return candidates | chosen


async def expired(
    store: RootStore, graph: PathGraph, keep_since: float, now: float | None = None
) -> set[bytes]:
    """Path infos neither added nor read for `keep_since` seconds, that no pin holds and no
    other kept path refers to."""
    cutoff = (now or time.time()) - keep_since
    active: dict[bytes, float] = {}
    async for times in store.times():
        active[times.digest] = _last_active(times)
    old = {d for d in graph.infos if active.get(d, 0.0) < cutoff}
    keep = graph.closure((set(graph.infos) - old) | await pinned_closure(store, graph))
    return old - keep


def _last_active(times: PathTimes) -> float:
    return max(times.added, times.last_read)


async def least_recently_used(store: RootStore) -> list[bytes]:
    """Path digests, least recently added or read first."""
    active = [(_last_active(t), t.digest) async for t in store.times()]
    return [digest for _, digest in sorted(active)]
