"""What a collection is asked to do and what it did."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_GRACE = 3600.0


@dataclass(frozen=True)
class GcOptions:
    dry_run: bool = False
    grace: float = DEFAULT_GRACE  # seconds: objects written this recently are kept
    keep_since: float | None = None  # seconds: drop path infos neither added nor read since
    max_size: int | None = None  # bytes of live data to keep at most (least recently used out)


@dataclass
class KindTotals:
    found: int = 0
    found_bytes: int = 0
    deleted: int = 0
    deleted_bytes: int = 0


@dataclass
class GcReport:
    dry_run: bool
    started: float
    seconds: float = 0.0
    mark_seconds: float = 0.0
    sweep_seconds: float = 0.0
    roots: int = 0
    dropped_paths: list[str] = field(default_factory=list)  # by retention
    marked: int = 0  # live objects
    kinds: dict[str, KindTotals] = field(default_factory=dict)

    def found(self, kind: str, size: int) -> None:
        totals = self.kinds.setdefault(kind, KindTotals())
        totals.found += 1
        totals.found_bytes += size

    def deleted(self, kind: str, size: int) -> None:
        totals = self.kinds.setdefault(kind, KindTotals())
        totals.deleted += 1
        totals.deleted_bytes += size

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "started": self.started,
            "seconds": round(self.seconds, 3),
            "mark_seconds": round(self.mark_seconds, 3),
            "sweep_seconds": round(self.sweep_seconds, 3),
            "roots": self.roots,
            "marked": self.marked,
            "dropped_paths": self.dropped_paths,
            "objects": {
                kind: {
                    "found": t.found,
                    "found_bytes": t.found_bytes,
                    "deleted": t.deleted,
                    "deleted_bytes": t.deleted_bytes,
                }
                for kind, t in sorted(self.kinds.items())
            },
        }
