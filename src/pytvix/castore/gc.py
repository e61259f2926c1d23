"""What garbage collection asks of blob and directory services (store.gc runs it).

A `Collectable` service lists what it stores, each object with when it was last written, and
deletes objects on request, but only those still not written since a cutoff: a writer that
stored an object again (or found it present and skipped storing it, which counts as a write:
such writers refresh the time of objects older than WRITE_REFRESH) after the collector decided
the object was unreachable keeps it. That, and a grace period longer than any write takes,
is what makes collection safe while writers run (README, "Garbage collection").
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pytvix.castore.digests import B3Digest

WRITE_REFRESH = 600.0
"""Seconds after which a writer finding an object present refreshes its written time (so an
object a writer relies on is never older than this); GC's grace period must exceed it. The
CLI sets it from PYTVIX_WRITE_REFRESH (`set_write_refresh`)."""


def write_refresh() -> float:
    return WRITE_REFRESH


def set_write_refresh(seconds: float) -> None:
    global WRITE_REFRESH
    if not seconds >= 0:
        raise ValueError(f"the write refresh interval must be a number of seconds >= 0: {seconds}")
    WRITE_REFRESH = float(seconds)


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One object a service stores: a blob, a chunk of one, a directory, or a file left
    without a record by an interrupted write (`kind` "stray")."""

    kind: str
    digest: B3Digest | None  # None for stray files
    size: int  # bytes it takes in storage
    written: float  # seconds since the epoch it was last written
    key: str = ""  # where it is, for kinds without a digest
    version: int = 0  # which write of it this is, where the backend tells (a stream sequence)


@runtime_checkable
class Collectable(Protocol):
    """A service garbage collection can sweep."""

    def gc_objects(self) -> AsyncIterator[StoredObject]:
        """Everything stored, with sizes and written times (in no particular order)."""
        ...

    async def gc_expand(self, live: set[B3Digest]) -> Iterable[B3Digest]:
        """Further digests the live ones keep alive (the chunks of live chunked blobs)."""
        ...

    async def gc_delete(
        self, objects: Sequence[StoredObject], written_before: float
    ) -> list[StoredObject]:
        """Delete those objects not written since `written_before` (checked again as they
        are deleted); returns what was deleted."""
        ...


class TimedValues:
    """digest -> bytes, with when each was last written: the in-memory backends' storage."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.values: dict[B3Digest, bytes] = {}
        self.written: dict[B3Digest, float] = {}

    def put(self, digest: B3Digest, value: bytes) -> bool:
        """Store (or refresh the written time of) a value; whether it was new."""
        new = digest not in self.values
        if new:
            self.values[digest] = value
        self.written[digest] = time.time()
        return new

    def objects(self) -> list[StoredObject]:
        return [
            StoredObject(self.kind, digest, len(value), self.written[digest])
            for digest, value in list(self.values.items())
        ]

    def delete(self, objects: Sequence[StoredObject], before: float) -> list[StoredObject]:
        deleted = []
        for obj in objects:
            if obj.digest in self.values and self.written[obj.digest] < before:
                del self.values[obj.digest], self.written[obj.digest]
                deleted.append(obj)
        return deleted
