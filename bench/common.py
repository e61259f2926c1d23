"""Helpers shared by the benchmarks: scratch space on the store's disk, page cache control,
repeated timing with medians, and a results table with ratios against the peer."""

from __future__ import annotations

import atexit
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
RUNS = int(os.environ.get("BENCH_RUNS", "5"))


def scratch_dir(name: str) -> Path:
    """A fresh directory on the disk benchmarks write to ($BENCH_DIR, default /var/tmp)."""
    base = Path(os.environ.get("BENCH_DIR", "/var/tmp"))
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"pytvix-bench-{name}-", dir=base))


def remove_at_exit(path: Path) -> None:
    """Delete a scratch directory when the benchmark process ends, not now: on this VM's ext4,
    creating files within a minute or more of deleting thousands is several times slower (perf
    shows the inode allocator in `recently_deleted()`, skipping freshly freed inodes), so
    deleting one benchmark's files would slow down the next benchmark's writes."""
    atexit.register(shutil.rmtree, path, ignore_errors=True)


def sync() -> None:
    os.sync()


def drop_caches() -> bool:
    """Write back and drop the page cache (needs root); False if not possible."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def random_file(path: Path, size: int, seed: int = 0) -> Path:
    """A file of `size` pseudo-random (incompressible) bytes, written once and reused."""
    if path.exists() and path.stat().st_size == size:
        return path
    rng = random.Random(seed)
    with open(path, "wb") as f:
        remaining = size
        while remaining:
            n = min(remaining, 16 << 20)
            f.write(rng.randbytes(n))
            remaining -= n
    return path


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_cmd(args: list[str], **kwargs: object) -> float:
    """Seconds a command takes (it must succeed)."""
    start = time.perf_counter()
    subprocess.run(args, check=True, **kwargs)  # type: ignore[call-overload]
    return time.perf_counter() - start


def python_cmd(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


@dataclass
class Row:
    name: str
    ours: list[float] = field(default_factory=list)
    peer: list[float] = field(default_factory=list)
    unit: str = "s"
    higher_is_better: bool = False
    target: str = ""


@dataclass
class Report:
    """Collects rows; prints medians and ratio ours/peer (speed ratio: >1 = we are faster)."""

    title: str
    peer_name: str
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def print(self) -> None:
        print(f"\n### {self.title} (peer: {self.peer_name}, medians of {RUNS} runs)")
        print(f"| measurement | ours | {self.peer_name} | speed ratio ours/peer | target |")
        print("|---|---|---|---|---|")
        out = []
        for row in self.rows:
            ours = statistics.median(row.ours) if row.ours else float("nan")
            peer = statistics.median(row.peer) if row.peer else float("nan")
            if row.peer:
                ratio = ours / peer if row.higher_is_better else peer / ours
                ratio_text = f"{ratio:.2f}"
            else:
                ratio, ratio_text = float("nan"), "-"
            print(
                f"| {row.name} | {fmt(ours, row.unit)} | {fmt(peer, row.unit) if row.peer else '-'}"
                f" | {ratio_text} | {row.target} |"
            )
            out.append(
                {
                    "name": row.name,
                    "ours": ours,
                    "peer": peer,
                    "unit": row.unit,
                    "ratio": ratio,
                    "ours_runs": row.ours,
                    "peer_runs": row.peer,
                    "target": row.target,
                }
            )
        RESULTS.mkdir(exist_ok=True)
        slug = self.title.lower().replace(" ", "_").replace("/", "_")
        (RESULTS / f"{slug}.json").write_text(json.dumps(out, indent=2))


def fmt(value: float, unit: str) -> str:
    if math.isnan(value):
        return "-"
    if unit in ("MB/s", "MiB/s"):
        return f"{value:.0f} {unit}"
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "us":
        return f"{value:.1f} µs"
    return f"{value:.3f} s"
