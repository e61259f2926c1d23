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
  ratio: with / alone). IMPORT_PAIRS imports per side and run. Before each import with gc, a
  fiftieth of the kept paths lose their roots, and the import starts at a random point of
  the collections (uniform over one collection's duration), so it meets marking, scanning
  and deleting in proportion. Both sides run with PYTVIX_WRITE_REFRESH=10s and the loop with
  --grace 30s (the safe minimum for that refresh), so the loop deletes what was unrooted.

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
from pytvix.cli.units import parse_duration

FILES_PER_PATH = 100
DIRS_PER_PATH = 10
SHARED_FILES = 2000  # the pool a fifth of every path's files come from
NIX_ADD_BATCH = 500
IMPORT_PAIRS = 3  # imports alone and with gc, per run
WRITE_REFRESH = "10"  # seconds (PYTVIX_WRITE_REFRESH) while imports meet collections
LOOP_GRACE = "30s"  # the safe minimum for that refresh: twice it, and more


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
            f"import stdlib while gc runs ({IMPORT_PAIRS} per run; peer: alone)",
            unit="MB/s",
            higher_is_better=True,
            target=">= 0.8",
        )
    )
    stdlib = stdlib_tree()
    _, stdlib_size = tree_stats(stdlib)
    scratch = scratch_dir("gc")
    remove_at_exit(scratch)
    deleted_during = loops = 0
    for run in range(runs):
        home, nix_root = scratch / f"ours{run}", scratch / f"nix{run}"
        ours_paths = fill_ours(home, trees)
        filled = time.monotonic()
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
        kept = ours_paths[::2]
        # what loses its roots below must be older than the loop's grace to be collected
        time.sleep(max(0.0, filled + parse_duration(LOOP_GRACE) + 1 - time.monotonic()))
        rng = random.Random(run)
        for pair in range(IMPORT_PAIRS):
            for side in alternating(run + pair, ["with gc", "alone"]):
                copy = salted_copy(stdlib, scratch / f"src{run}-{pair}-{side}", uuid.uuid4().hex)
                read_tree(copy)
                if side == "alone":
                    seconds = import_timed(home, copy)
                    during.peer.append(stdlib_size / 1e6 / seconds)
                    continue
                unroot_ours(home, [kept.pop() for _ in range(max(1, count // 50))])
                with GcLoop(home, start_after=rng.uniform(0, gc_row.ours[-1])) as loop:
                    seconds = import_timed(home, copy)
                during.ours.append(stdlib_size / 1e6 / seconds)
                deleted_during += loop.deleted
                loops += loop.runs
    report.print()
    print(f"The {loops} collections that ran during imports deleted {deleted_during:,} objects.")


class GcLoop:
    """`tvix-store gc` on a store, run again and again in another process until stopped;
    entering the `with` block starts them and waits `start_after` seconds."""

    def __init__(self, home: Path, start_after: float) -> None:
        self.home = home
        self.start_after = start_after
        self.stopping = threading.Event()
        self.runs = self.deleted = 0
        self.thread = threading.Thread(target=self._loop)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            out = subprocess.run(
                pytvix_cmd("gc", "--grace", LOOP_GRACE, "--json"),
                env=refresh_env(self.home),
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            )
            objects = json.loads(out.stdout)["objects"].values()
            self.deleted += sum(kind["deleted"] for kind in objects)
            self.runs += 1

    def __enter__(self) -> GcLoop:
        self.thread.start()
        time.sleep(self.start_after)
        if not self.thread.is_alive():
            raise RuntimeError("the collections stopped")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join()


def refresh_env(home: Path) -> dict[str, str]:
    """The environment of both the imports and the collections (the short write refresh)."""
    return {**pytvix_env(home), "PYTVIX_WRITE_REFRESH": WRITE_REFRESH}


def import_timed(home: Path, tree: Path) -> float:
    """Seconds `tvix-store import` of `tree` takes."""
    argv = pytvix_cmd("import", str(tree))
    env = refresh_env(home)
    return timed(lambda: subprocess.run(argv, env=env, cwd=ROOT, check=True, capture_output=True))


if __name__ == "__main__":
    main()
