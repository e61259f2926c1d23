"""Garbage collection against `nix-store --gc` (issue 19), and imports while it runs.

- gc: the same N store paths (about 100 files each in 10 directories, a fifth of the files
  shared between paths) go into a fresh embedded store and a fresh chroot Nix store
  (`nix-store --store <dir>`, so the machine's /nix/store is left alone). Half of the paths
  lose their roots (ours: `tvix-store delete`; Nix: only the other half get a gcroot link).
  Then `tvix-store gc --grace 0` and `nix-store --gc` each collect, alternating which goes
  first, each timed alone and with the `sync` that follows it. Our mark and sweep rates
  (objects per second) come from gc's JSON report.
- import during gc: `tvix-store import` of a salted copy of the Python stdlib into the store
  holding the N paths, alone against while another process collects it in a loop (speed
  ratio: with / alone).

Setting up takes minutes at full size (N = 10,000, about a million objects): BENCH_SCALE
scales N; BENCH_RUNS (at most 3 here) the repetitions.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
import time
import uuid
from pathlib import Path

from bench.bench_nar import read_tree, salted_copy, stdlib_tree, tree_stats
from bench.common import (
    DATA,
    ROOT,
    RUNS,
    Report,
    Row,
    alternating,
    pytvix,
    pytvix_cmd,
    pytvix_env,
    remove_at_exit,
    run_cmd_synced,
    scaled,
    scratch_dir,
    settle_after_deletes,
    timed,
)

FILES_PER_PATH = 100
DIRS_PER_PATH = 10
SHARED_FILES = 2000  # the pool a fifth of every path's files come from
NIX_ADD_BATCH = 500


def gc_trees(count: int) -> list[Path]:
    """`count` trees of FILES_PER_PATH files (64 B - 8 KiB), written once and kept."""
    base = DATA / f"gc-{count}x{FILES_PER_PATH}"
    trees = [base / f"p{i:05}" for i in range(count)]
    if (base / "complete").exists():
        return trees
    rng = random.Random(19)
    shared = [rng.randbytes(rng.randint(64, 8192)) for _ in range(SHARED_FILES)]
    for tree in trees:
        for d in range(DIRS_PER_PATH):
            (tree / f"d{d}").mkdir(parents=True, exist_ok=True)
        for f in range(FILES_PER_PATH):
            data = rng.choice(shared) if f % 5 == 0 else rng.randbytes(rng.randint(64, 8192))
            (tree / f"d{f % DIRS_PER_PATH}" / f"f{f}").write_bytes(data)
    (base / "complete").touch()
    return trees


def nix_store(root: Path, *args: str) -> str:
    out = subprocess.run(
        ["nix-store", "--store", str(root), *args], check=True, capture_output=True, text=True
    )
    return out.stdout


def fill_nix(root: Path, trees: list[Path]) -> list[str]:
    """Add the trees to the chroot Nix store at `root`; their store paths."""
    paths: list[str] = []
    for start in range(0, len(trees), NIX_ADD_BATCH):
        batch = trees[start : start + NIX_ADD_BATCH]
        paths += nix_store(root, "--add", *map(str, batch)).split()
    return paths


def root_nix(root: Path, kept: list[str]) -> None:
    gcroots = root / "nix" / "var" / "nix" / "gcroots" / "bench"
    gcroots.mkdir(parents=True)
    for i, path in enumerate(kept):
        (gcroots / f"r{i}").symlink_to(path)


def fill_ours(home: Path, trees: list[Path]) -> list[str]:
    return pytvix(home, "import", *map(str, trees)).split()


def unroot_ours(home: Path, dropped: list[str]) -> None:
    for start in range(0, len(dropped), 1000):
        pytvix(home, "delete", "--force", *dropped[start : start + 1000])


def main() -> None:
    settle_after_deletes()
    count = scaled(10_000)
    trees = gc_trees(count)
    runs = min(RUNS, 3)
    report = Report("garbage collection", "nix-store --gc")
    objects_label = f"{count:,} paths, ~{count * (FILES_PER_PATH + DIRS_PER_PATH + 1):,} objects"
    gc_row = report.add(Row(f"gc, {objects_label}, half unreachable", target=">= 1"))
    gc_sync_row = report.add(Row("gc + sync", target=">= 1"))
    mark_row = report.add(Row("our mark rate (objects/s)", unit="/s", higher_is_better=True))
    sweep_row = report.add(Row("our sweep rate (objects/s)", unit="/s", higher_is_better=True))
    during = report.add(
        Row(
            "import stdlib while gc runs (peer: alone)",
            unit="MB/s",
            higher_is_better=True,
            target=">= 0.8",
        )
    )
    stdlib = stdlib_tree()
    _, stdlib_size = tree_stats(stdlib)
    scratch = scratch_dir("gc")
    remove_at_exit(scratch)
    for run in range(runs):
        home, nix_root = scratch / f"ours{run}", scratch / f"nix{run}"
        ours_paths = fill_ours(home, trees)
        nix_paths = fill_nix(nix_root, trees)
        if ours_paths != nix_paths:
            raise RuntimeError("the sides imported the trees as different store paths")
        unroot_ours(home, ours_paths[1::2])
        root_nix(nix_root, nix_paths[::2])
        os.sync()
        for side in alternating(run, ["ours", "nix"]):
            read_tree(trees[0])  # both start with their program's code cached
            if side == "ours":
                argv = pytvix_cmd("gc", "--grace", "0", "--json")
                seconds, sync_seconds, out = run_cmd_synced(
                    argv, env=pytvix_env(home), cwd=ROOT, stderr=subprocess.DEVNULL
                )
                result = json.loads(out)
                found = sum(kind["found"] for kind in result["objects"].values())
                mark_row.ours.append(result["marked"] / result["mark_seconds"])
                sweep_row.ours.append(found / result["sweep_seconds"])
                gc_row.ours.append(seconds)
                gc_sync_row.ours.append(seconds + sync_seconds)
            else:
                argv = ["nix-store", "--store", str(nix_root), "--gc"]
                seconds, sync_seconds, _ = run_cmd_synced(argv, stderr=subprocess.DEVNULL)
                gc_row.peer.append(seconds)
                gc_sync_row.peer.append(seconds + sync_seconds)
        for side in alternating(run, ["with gc", "alone"]):
            copy = salted_copy(stdlib, scratch / f"src{run}-{side}", uuid.uuid4().hex)
            read_tree(copy)
            seconds = import_timed(home, copy, with_gc=side == "with gc")
            (during.ours if side == "with gc" else during.peer).append(stdlib_size / 1e6 / seconds)
    report.print()


class GcLoop:
    """`tvix-store gc` on a store, run again and again in another process until stopped."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.stopping = threading.Event()
        self.runs = 0
        self.thread = threading.Thread(target=self._loop)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            subprocess.run(
                pytvix_cmd("gc", "--grace", "1h"),
                env=pytvix_env(self.home),
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            self.runs += 1

    def __enter__(self) -> GcLoop:
        self.thread.start()
        time.sleep(1.0)  # collecting when the import starts
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join()


def import_timed(home: Path, tree: Path, *, with_gc: bool) -> float:
    """Seconds `tvix-store import` of `tree` takes, alone or while collections run."""
    argv = pytvix_cmd("import", str(tree))
    env = pytvix_env(home)

    def run() -> None:
        subprocess.run(argv, env=env, cwd=ROOT, check=True, capture_output=True)

    if not with_gc:
        return timed(run)
    with GcLoop(home) as loop:
        seconds = timed(run)
        if loop.runs == 0 and not loop.thread.is_alive():
            raise RuntimeError("the collections did not run")
    return seconds


if __name__ == "__main__":
    main()
