"""Progress display on stderr for long commands: a live rich display when stderr is a
terminal, nothing otherwise (so scripts and logs stay clean)."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.live import Live
from rich.text import Text

from pytvix.castore.progress import Progress


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


@contextmanager
def progress_display(title: str) -> Iterator[Progress]:
    """Yields a Progress callback `(what, n)`; counters named `bytes` are shown as sizes."""
    counts: Counter[str] = Counter()
    console = Console(stderr=True)
    if not (sys.stderr.isatty() and console.is_terminal):
        yield lambda what, n: None
        return
    start = time.monotonic()

    def render() -> Text:
        elapsed = max(time.monotonic() - start, 1e-6)
        parts = [f"{title}:"]
        for what, n in counts.items():
            if what == "bytes":
                parts.append(f"{human_bytes(n)} ({human_bytes(n / elapsed)}/s)")
            else:
                parts.append(f"{n} {what}")
        return Text(" ".join(parts) + f"  [{elapsed:.0f}s]")

    with Live(render(), console=console, transient=True, refresh_per_second=8) as live:

        def advance(what: str, n: int) -> None:
            counts[what] += n
            live.update(render())

        yield advance
