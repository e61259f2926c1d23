"""Garbage collection: pins, deleting store paths, retention, and mark and sweep.

Roots are every PathInfo and every pin. `collect` deletes path infos a retention policy
drops (never a pinned closure, never a path a kept path refers to), marks everything the
remaining roots reach, and sweeps the rest from every blob and directory service, except
what was written less than the grace period before the collection started, or since (see
castore.gc and the README's "Garbage collection" for why that is safe with writers running).
"""

from pytvix.store.gc.collector import collect
from pytvix.store.gc.report import GcOptions, GcReport
from pytvix.store.gc.roots import DeletePlan, GcUnsupported, plan_delete, root_store

__all__ = [
    "DeletePlan",
    "GcOptions",
    "GcReport",
    "GcUnsupported",
    "collect",
    "plan_delete",
    "root_store",
]
