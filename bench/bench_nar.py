"""NAR and file tree benchmarks (issue: NAR and file trees).

Trees: (a) a copy of the Python standard library (~7.7k files) and a generated tree of 50k
files of 1-16 KiB; (b) two 1 GiB random files. Peers run in the same loop, alternating:
- import: `tvix-store import` into a fresh embedded store vs `nix-store --add` (path deleted
  from /nix/store before each run); for (b) also vs `b3sum` of the same files
- dump: `tvix-store dump` vs `nix-store --dump` of the original tree, to /dev/null, twice:
  with the page cache dropped before each side (both read from disk), and with both sides'
  files cached (each side dumped once before it is timed). Imports write chunks past the
  page cache, so right after an import our store is cold while the original tree is cached:
  only equal cache states compare the two.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

from bench.common import (
    ROOT,
    RUNS,
    Report,
    Row,
    drop_caches,
    random_file,
    remove_at_exit,
    run_cmd,
    scratch_dir,
)

DATA = Path("/var/tmp/pytvix-bench-data")
STDLIB = Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
GIB = 1 << 30


def stdlib_tree() -> Path:
    target = DATA / "stdlib"
    if not target.exists():
        tmp = DATA / "stdlib.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(STDLIB, tmp, symlinks=True, ignore=shutil.ignore_patterns("site-packages"))
        tmp.rename(target)
    return target


def small_files_tree(count: int = 50_000) -> Path:
    target = DATA / "small50k"
    if not target.exists():
        tmp = DATA / "small50k.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        rng = random.Random(50)
        for d in range(count // 500):
            sub = tmp / f"dir{d:03}"
            sub.mkdir(parents=True)
            for f in range(500):
                (sub / f"file{f:03}").write_bytes(rng.randbytes(rng.randint(1 << 10, 16 << 10)))
        tmp.rename(target)
    return target


def big_files_tree() -> Path:
    target = DATA / "big2g"
    target.mkdir(parents=True, exist_ok=True)
    random_file(target / "one.bin", GIB, seed=1)
    random_file(target / "two.bin", GIB, seed=2)
    return target


def tree_stats(tree: Path) -> tuple[int, int]:
    files = size = 0
    for dirpath, _, names in os.walk(tree):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            files += 1
            size += st.st_size
    return files, size


def tvix_store(home: Path, *args: str, **kwargs: object) -> float:
    env = {**os.environ, "TVIX_STORE_HOME": str(home)}
    return run_cmd([sys.executable, "-m", "pytvix", *args], env=env, cwd=ROOT, **kwargs)


def bench_tree(report: Report, label: str, tree: Path, *, b3sum: bool = False) -> None:
    files, size = tree_stats(tree)
    mb = size / 1e6
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    imp = report.add(
        Row(
            f"import {label} ({files} files, {mb:.0f} MB)",
            unit="MB/s",
            higher_is_better=True,
            target=">= 1 (aim 2)",
        )
    )
    dump_cold = report.add(
        Row(f"dump {label}, page cache dropped", unit="MB/s", higher_is_better=True, target=">= 1")
    )
    dump_warm = report.add(
        Row(f"dump {label}, cached", unit="MB/s", higher_is_better=True, target=">= 1")
    )
    b3 = None
    if b3sum:
        b3 = report.add(
            Row(f"import {label} vs b3sum", unit="MB/s", higher_is_better=True, target=">= 0.5")
        )
    scratch = scratch_dir("nar")
    store_path = subprocess.run(
        ["nix-store", "--add", str(tree)], check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        for run in range(RUNS):
            subprocess.run(["nix-store", "--delete", store_path], check=True, capture_output=True)
            os.sync()
            imp.peer.append(mb / run_cmd(["nix-store", "--add", str(tree)], **quiet))
            home = scratch / f"home{run}"
            os.sync()
            seconds = tvix_store(home, "import", str(tree), **quiet)
            imp.ours.append(mb / seconds)
            if b3 is not None:
                b3.ours.append(mb / seconds)
                files_ = [str(p) for p in sorted(tree.iterdir())]
                b3.peer.append(mb / run_cmd(["b3sum", *files_], **quiet))
            nix_dump = ["nix-store", "--dump", str(tree)]
            if drop_caches():
                dump_cold.peer.append(mb / run_cmd(nix_dump, **quiet))
                drop_caches()
                dump_cold.ours.append(mb / tvix_store(home, "dump", store_path, **quiet))
            run_cmd(nix_dump, **quiet)
            dump_warm.peer.append(mb / run_cmd(nix_dump, **quiet))
            tvix_store(home, "dump", store_path, **quiet)
            dump_warm.ours.append(mb / tvix_store(home, "dump", store_path, **quiet))
            # stores are deleted at the end only: ext4 makes creates right after deleting
            # thousands of files slow (see bench_store)
    finally:
        remove_at_exit(scratch)


def main() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("NIX_CONFIG", "experimental-features = nix-command")
    report = Report("import and dump", "nix-store --add / --dump, b3sum")
    bench_tree(report, "(a) Python stdlib", stdlib_tree())
    bench_tree(report, "(a) 50k x 1-16 KiB", small_files_tree())
    bench_tree(report, "(b) 2 x 1 GiB", big_files_tree(), b3sum=True)
    report.print()


if __name__ == "__main__":
    main()
