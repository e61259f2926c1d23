"""Memory of a server process under test, as the kernel counts it."""

from __future__ import annotations

from pathlib import Path

MIB = 1 << 20


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def rss(pid: int) -> int:
    """Resident set size now, in bytes."""
    return _status_kib(pid, "VmRSS") * 1024


def peak_rss(pid: int) -> int:
    """The highest resident set size so far, in bytes."""
    return _status_kib(pid, "VmHWM") * 1024
