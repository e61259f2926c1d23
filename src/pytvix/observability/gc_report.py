"""The last garbage collection's report as a file, and as metrics.

`tvix-store gc` runs in a process of its own, so it leaves its report (JSON, the same as
`gc --json` prints) in a file, by default beside the embedded store; a daemon or nar-bridge
with metrics on exports the file's figures, reading it again whenever it changed. Dry runs
change nothing and leave the file alone.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FILE_NAME = "gc-report.json"


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Replace the file at `path` with `report`, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".gc-report-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(report, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class GcReportFile:
    """Sets the GC gauges from the report file at `path` (call `check` before each scrape)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None

    def check(self) -> None:
        try:
            stat = self.path.stat()
        except OSError:
            return
        key = (stat.st_mtime_ns, stat.st_size)
        if key == self._seen:
            return
        self._seen = key
        try:
            report = json.loads(self.path.read_text())
            export(report)
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("cannot read the GC report %s: %s", self.path, e)


def export(report: dict[str, Any]) -> None:
    """Set the GC gauges from a report (GcReport.as_json())."""
    from pytvix.observability import metrics as m  # noqa: PLC0415

    m.GC_LAST_RUN.set(float(report["started"]))
    m.GC_DURATION.set(float(report["seconds"]))
    m.GC_LIVE.set(int(report["marked"]))
    m.GC_DROPPED.set(len(report["dropped_paths"]))
    for kind, totals in report["objects"].items():
        m.GC_FREED_OBJECTS.labels(kind).set(int(totals["deleted"]))
        m.GC_FREED_BYTES.labels(kind).set(int(totals["deleted_bytes"]))
