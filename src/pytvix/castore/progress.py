"""Progress of long work (import, export, dump, copy, verify, GC): a callback the work calls
as it advances; the CLI shows it on a terminal, library callers may ignore it."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, int], None]
"""(what advanced, by how many bytes or items)"""


def no_progress(what: str, n: int) -> None:
    """A Progress callback that ignores progress."""
