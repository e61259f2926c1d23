"""Helpers shared by the benchmarks: scratch space on the store's disk, page cache control,
repeated timing with medians and spread, turn order, a results table with ratios against the
peer and the command that reproduces it, and the optional upstream tvix-store peer."""

from __future__ import annotations

import atexit
import functools
import json
import math
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DATA = Path("/var/tmp/pytvix-bench-data")  # generated inputs, kept between runs
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
GIB = 1 << 30
# Multiplies the generated inputs' sizes and counts (not the Python stdlib tree): smoke runs
# use e.g. BENCH_SCALE=0.02; tables for the README use the default, 1.
SCALE = float(os.environ.get("BENCH_SCALE", "1"))
# Environment variables a table depends on; the printed command repeats those that are set.
COMMAND_ENV = (
    "BENCH_SCALE",
    "BENCH_DIR",
    "TVIX_STORE_UPSTREAM",
    "TVIX_NAR_BRIDGE_UPSTREAM",
    "TVIX_UPSTREAM_SERVICES",
)
# The benchmark module running now (set by bench/__main__.py; `python -m bench.bench_nar`
# runs with argv[0] naming the module)
CURRENT = {"bench": Path(sys.argv[0]).stem.removeprefix("bench_")}

T = TypeVar("T")


def scaled(n: int) -> int:
    """`n` times BENCH_SCALE, at least 1."""
    return max(1, round(n * SCALE))


def scratch_dir(name: str) -> Path:
    """A fresh directory on the disk benchmarks write to ($BENCH_DIR, default /var/tmp)."""
    base = Path(os.environ.get("BENCH_DIR", "/var/tmp"))
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"pytvix-bench-{name}-", dir=base))


# When the last benchmark process finished deleting its files (see settle_after_deletes)
LAST_DELETES = DATA / "last-deletes"
SETTLE_SECONDS = 60
_deletes_pending: list[bool] = []


def remove_at_exit(path: Path) -> None:
    """Delete a scratch directory when the benchmark process ends, not now: on this VM's ext4,
    creating files within a minute or more of deleting thousands is several times slower (perf
    shows the inode allocator in `recently_deleted()`, skipping freshly freed inodes), so
    deleting one benchmark's files would slow down the next benchmark's writes."""
    _deletes_pending.append(True)
    atexit.register(shutil.rmtree, path, ignore_errors=True)


def nix_store_add(path: Path) -> str:
    """`nix-store --add`, untimed: the store path."""
    out = subprocess.run(
        ["nix-store", "--add", str(path)], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


def delete_store_paths_at_exit(paths: list[str]) -> None:
    """`nix-store --delete` the paths (the list may still grow) when the benchmark process
    ends, for the reason given at remove_at_exit: no peer is timed right after deletes."""
    _deletes_pending.append(True)

    def delete() -> None:
        if paths:
            unique = list(dict.fromkeys(paths))
            subprocess.run(["nix-store", "--delete", *unique], check=False, capture_output=True)

    atexit.register(delete)


@atexit.register  # registered first, so it runs after every deletion registered later
def _stamp_deletes() -> None:
    if _deletes_pending:
        os.sync()
        DATA.mkdir(parents=True, exist_ok=True)
        LAST_DELETES.write_text(f"{time.time()}\n")


def settle_after_deletes() -> None:
    """Wait until SETTLE_SECONDS have passed since an earlier benchmark process deleted its
    files (ext4 skips inodes freed in the last 30 s, 5 min while their table is unwritten),
    so that nothing is timed right after them."""
    try:
        last = float(LAST_DELETES.read_text())
    except (OSError, ValueError):
        return
    wait = last + SETTLE_SECONDS - time.time()
    if wait > 0:
        print(f"note: waiting {wait:.0f} s after the last benchmark's deletes", flush=True)
        os.sync()
        time.sleep(wait)


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


def same_start(read_source: Callable[[], object]) -> None:
    """Give the next timed writer the state every other one had: page cache dropped, its
    source read back into it, nothing dirty. On this VM, page cache pages freed a moment ago
    are several times cheaper to fill than long-free ones (the host backs guest memory
    lazily), so without this the writer that happens to run right after a large free wins."""
    drop_caches()
    read_source()
    os.sync()


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


def random_1g() -> Path:
    """The shared random file of 1 GiB (times BENCH_SCALE), DATA/random-1g[-NNNm].bin."""
    size = scaled(GIB)
    suffix = "" if size == GIB else f"-{size >> 20}m"
    return random_file(DATA / f"random-1g{suffix}.bin", size)


def size_label(size: int) -> str:
    return f"{size >> 30} GiB" if size % GIB == 0 else f"{size >> 20} MiB"


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_cmd(args: list[str], **kwargs: object) -> float:
    """Seconds a command takes (it must succeed)."""
    start = time.perf_counter()
    subprocess.run(args, check=True, **kwargs)  # type: ignore[call-overload]
    return time.perf_counter() - start


def run_cmd_synced(args: list[str], **kwargs: object) -> tuple[float, float, str]:
    """Seconds a command takes, then seconds of the `sync` right after it (which writes back
    whatever it left in the page cache), and its stdout. Syncs first, untimed, so that the
    timed sync only writes this command's data."""
    os.sync()
    start = time.perf_counter()
    out = subprocess.run(args, check=True, stdout=subprocess.PIPE, text=True, **kwargs)  # type: ignore[call-overload]
    seconds = time.perf_counter() - start
    return seconds, timed(os.sync), out.stdout.strip()


def alternating(run: int, sides: Sequence[T]) -> list[T]:
    """The turn order of `sides` in run number `run`: rotated by one place each run, so that
    no side always goes first, or always right after the same other side."""
    k = run % len(sides) if sides else 0
    return [*sides[k:], *sides[:k]]


def python_cmd(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def pytvix_env(home: Path) -> dict[str, str]:
    return {**os.environ, "TVIX_STORE_HOME": str(home)}


def pytvix_cmd(*args: str) -> list[str]:
    """Our `tvix-store` command line (run with cwd=ROOT and env=pytvix_env(home))."""
    return [sys.executable, "-m", "pytvix", *args]


def pytvix(home: Path, *args: str) -> str:
    """Run our `tvix-store` on the embedded store in `home`, untimed: its stdout."""
    out = subprocess.run(
        pytvix_cmd(*args),
        env=pytvix_env(home),
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


# --- the upstream tvix-store peer (optional) ---------------------------------------------
#
# Upstream's binaries are never built here: $TVIX_STORE_UPSTREAM names a `tvix-store` and
# $TVIX_NAR_BRIDGE_UPSTREAM a `nar-bridge`, built elsewhere by hand. Their commands (upstream
# tvix store/src/bin/tvix-store.rs, nar-bridge/src/bin/nar-bridge.rs) take the three service
# addresses as --blob-service-addr, --directory-service-addr and --path-info-service-addr
# (defaults: a daemon at grpc+http://[::1]:8000); `import PATH...` prints the store paths,
# `mount DEST` unmounts on SIGINT, nar-bridge listens on `-l ADDR`. There is no `dump`.
# The local services default to objectstore+file and redb; builds from before redb take
# e.g. TVIX_UPSTREAM_SERVICES='objectstore+file://{dir}/blobs sled://{dir}/dirs.sled
# sled://{dir}/pathinfo.sled'.

UPSTREAM_SERVICES = (
    "objectstore+file://{dir}/blobs redb://{dir}/directories.redb redb://{dir}/pathinfo.redb"
)


def upstream_binary(env: str, what: str) -> str | None:
    """The executable $`env` names, or None (and a printed note that `what` is skipped)."""
    value = os.environ.get(env, "")
    found = shutil.which(value) if value else None
    if found is None:
        why = f"${env}={value!r} is not an executable" if value else f"${env} is not set"
        print(f"note: {why}: {what} skipped", flush=True)
    return found


@functools.cache
def no_otlp(binary: str) -> tuple[str, ...]:
    """`--otlp=false` if the binary has that flag (builds with the otlp feature export traces
    to a collector by default)."""
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, check=False)
    return ("--otlp=false",) if "--otlp" in out.stdout + out.stderr else ()


@dataclass
class UpstreamStore:
    """An upstream tvix-store's local services, all in `directory`."""

    binary: str
    directory: Path

    def service_args(self) -> list[str]:
        template = os.environ.get("TVIX_UPSTREAM_SERVICES", UPSTREAM_SERVICES)
        blob, directory, path_info = template.format(dir=self.directory).split()
        return [
            "--blob-service-addr",
            blob,
            "--directory-service-addr",
            directory,
            "--path-info-service-addr",
            path_info,
        ]

    def command(self, subcommand: str, *args: str, binary: str | None = None) -> list[str]:
        """`binary` (default: the tvix-store) running `subcommand` on these services."""
        exe = binary or self.binary
        sub = [subcommand] if subcommand else []
        return [exe, *no_otlp(exe), *sub, *args, *self.service_args()]

    def import_path(self, path: Path) -> str:
        """Untimed `import`: the store path (upstream logs failures and exits 0)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(
            self.command("import", str(path)),
            check=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        ).stdout.strip()
        if not out.startswith("/nix/store/"):
            raise RuntimeError(f"upstream tvix-store import {path} printed {out!r}")
        return out


# --- results -------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    ours: list[float] = field(default_factory=list)
    peer: list[float] = field(default_factory=list)
    unit: str = "s"
    higher_is_better: bool = False
    target: str = ""


def bench_command() -> str:
    """The command that reproduces the running benchmark's tables."""
    env = [f"{name}={shlex.quote(os.environ[name])}" for name in COMMAND_ENV if name in os.environ]
    return " ".join([f"BENCH_RUNS={RUNS}", *env, ".venv/bin/python -m bench", CURRENT["bench"]])


def speed_ratio(row: Row, ours: float, peer: float) -> float:
    return ours / peer if row.higher_is_better else peer / ours


@dataclass
class Report:
    """Collects rows; prints medians with the min-max spread of the runs, and the speed ratio
    ours/peer of the medians (>1 = we are faster) with the spread of the runs' own ratios
    (ours and peer timed in the same run)."""

    title: str
    peer_name: str
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def print(self) -> None:
        command = bench_command()
        print(
            f"\n### {self.title} (peer: {self.peer_name}, medians of {RUNS} runs, "
            f"min-max in parentheses)"
        )
        print(f"| measurement | ours | {self.peer_name} | speed ratio ours/peer | target |")
        print("|---|---|---|---|---|")
        out = []
        for row in self.rows:
            ours = statistics.median(row.ours) if row.ours else float("nan")
            peer = statistics.median(row.peer) if row.peer else float("nan")
            runs_ratios: list[float] = []
            if row.ours and row.peer:
                ratio = speed_ratio(row, ours, peer)
                if len(row.ours) == len(row.peer):
                    runs_ratios = [
                        speed_ratio(row, o, p) for o, p in zip(row.ours, row.peer, strict=True)
                    ]
                ratio_text = f"{ratio:.2f}{spread(runs_ratios, '')}"
            else:
                ratio, ratio_text = float("nan"), "-"
            print(
                f"| {row.name} | {fmt(ours, row.unit)}{spread(row.ours, row.unit)}"
                f" | {fmt(peer, row.unit) if row.peer else '-'}{spread(row.peer, row.unit)}"
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
                    "ratio_runs": runs_ratios,
                    "target": row.target,
                }
            )
        print(f"\nReproduce: `{command}`")
        RESULTS.mkdir(exist_ok=True)
        slug = self.title.lower().replace(" ", "_").replace("/", "_")
        (RESULTS / f"{slug}.json").write_text(
            json.dumps({"command": command, "runs": RUNS, "rows": out}, indent=2)
        )


def number(value: float, unit: str) -> str:
    if unit in ("MB/s", "MiB/s"):
        return f"{value:.0f}"
    if unit == "/s":
        return f"{value:,.0f}"
    if unit == "us":
        return f"{value:.1f}"
    if unit == "":  # ratios
        return f"{value:.2f}"
    return f"{value:.3f}"


def fmt(value: float, unit: str) -> str:
    if math.isnan(value):
        return "-"
    text = number(value, unit)
    if unit in ("MB/s", "MiB/s"):
        return f"{text} {unit}"
    if unit == "/s":
        return f"{text}/s"
    if unit == "us":
        return f"{text} µs"
    return f"{text} s"


def spread(values: list[float], unit: str) -> str:
    """` (min-max)` of two or more runs, in the median's format without its unit."""
    if len(values) < 2:
        return ""
    return f" ({number(min(values), unit)}-{number(max(values), unit)})"
