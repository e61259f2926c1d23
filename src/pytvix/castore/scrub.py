"""Scrubbing: re-reading and re-verifying everything a backend stores.

Backends that can enumerate their contents implement `Scrubbable.scrub`, which re-hashes each
object and records problems (corrupt, missing, dangling) in a `ScrubReport` instead of raising.
Backends that describe themselves for `tvix-store info` implement `Describable`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from pytvix.castore.digests import B3Digest
from pytvix.castore.progress import Progress


@dataclass
class ScrubReport:
    """What a scrub found. Each problem is recorded once, however many ways it was reached;
    blobs found damaged (corrupt or missing data) are remembered so the closure check can name
    the store paths they break without counting the same damage again."""

    checked: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    damaged_blobs: set[B3Digest] = field(default_factory=set)
    affected: list[str] = field(default_factory=list)  # store paths whose closure is damaged

    def ok(self, kind: str, n: int = 1) -> None:
        self.checked[kind] += n

    def problem(self, message: str) -> None:
        if message not in self.problems:
            self.problems.append(message)

    def damaged_blob(self, digest: B3Digest, message: str) -> None:
        self.damaged_blobs.add(digest)
        self.problem(message)


@runtime_checkable
class Scrubbable(Protocol):
    async def scrub(self, report: ScrubReport, progress: Progress) -> None: ...


@runtime_checkable
class Describable(Protocol):
    async def describe(self) -> dict[str, str | int]: ...
