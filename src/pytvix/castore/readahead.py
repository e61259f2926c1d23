"""One process-wide cap on bytes fetched ahead of readers.

Readers fetch ahead of their consumer so that I/O overlaps with it (chunks of a blob being
read sequentially, small blobs of a tree being rendered). Data a consumer has asked for is
always fetched; data fetched only in the hope it will be asked for next takes bytes from this
budget first, and gives them back when it is consumed or dropped. A server with many slow or
stalled clients therefore holds at most `limit` bytes of read-ahead in all, plus what each
client is being sent right now: memory does not grow with the readers' patience.

Used from the event loop only (no locking). Servers set the limit from their options.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

DEFAULT_LIMIT = 256 << 20


class ReadaheadBudget:
    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self.used = 0

    def try_take(self, n: int) -> bool:
        """Take `n` bytes if they fit; False (and nothing taken) if not."""
        if self.used + n > self.limit:
            return False
        self.used += n
        return True

    def give(self, n: int) -> None:
        self.used -= n

    @contextmanager
    def reserved(self, n: int) -> Iterator[bool]:
        """Hold `n` bytes for the with-block if they fit (yields whether they did)."""
        taken = self.try_take(n)
        try:
            yield taken
        finally:
            if taken:
                self.give(n)


BUDGET = ReadaheadBudget()


def set_limit(limit: int) -> None:
    """Set the process-wide read-ahead cap (bytes)."""
    BUDGET.limit = limit
