"""NAR and file tree benchmarks (issue: NAR and file trees; issue 22: fair peers).

Trees: (a) a copy of the Python standard library (~7.7k files) and a generated tree of 50k
files of 1-16 KiB; (b) two 1 GiB random files (BENCH_SCALE scales the generated trees).

- import: `tvix-store import` into a fresh embedded store vs `nix-store --add`; for (b) also
  vs `b3sum` of the same files; vs upstream `tvix-store import` if $TVIX_STORE_UPSTREAM names
  one (fresh objectstore+file/redb services each run).
  Each run imports a new copy of the tree: hard links to the tree's files plus one small file
  with a salt unique to the run, so every import writes a store path nobody wrote before. No
  side deletes anything before it is timed: ext4 creates files slowly for a minute or more
  after thousands were deleted (see common.remove_at_exit), and the old benchmark timed
  `nix-store --add` right after `nix-store --delete` of the same path. Stores, copies and
  /nix/store paths are deleted when the benchmark process ends.
  Durability: ours writes chunks with O_DIRECT (on disk when the command ends), nix leaves its
  files in the page cache. Each import is timed twice: the command alone ("no sync"), and the
  command plus a `sync` right after it ("+ sync", the data on disk). Every import starts
  alike (common.same_start): page cache dropped, the source tree read back into it, nothing
  dirty.
- dump: `tvix-store dump` vs `nix-store --dump` of the store path the run imported, to
  /dev/null, twice: with the page cache dropped before each side (both read their stores
  from disk; each program's own code is read back first, by dumping a tiny path from another
  store), and with both sides' files cached (each side dumped once before). Imports write
  chunks past the page cache, so right after an import our store is cold while nix's files
  are cached: only equal cache states compare the two. Upstream tvix-store has no dump command.
The sides take turns in an order that rotates every run (common.alternating).
"""

from __future__ import annotations

import functools
import os
import random
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from bench.common import (
    DATA,
    GIB,
    ROOT,
    RUNS,
    Report,
    Row,
    UpstreamStore,
    alternating,
    delete_store_paths_at_exit,
    drop_caches,
    nix_store_add,
    pytvix_cmd,
    pytvix_env,
    random_file,
    remove_at_exit,
    run_cmd,
    run_cmd_synced,
    same_start,
    scaled,
    scratch_dir,
    settle_after_deletes,
    size_label,
    upstream_binary,
)

STDLIB = Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
QUIET = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}


def stdlib_tree() -> Path:
    target = DATA / "stdlib"
    if not target.exists():
        tmp = DATA / "stdlib.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(STDLIB, tmp, symlinks=True, ignore=shutil.ignore_patterns("site-packages"))
        tmp.rename(target)
    return target


def small_files_tree(count: int) -> Path:
    target = DATA / ("small50k" if count == 50_000 else f"small{count}")
    if not target.exists():
        tmp = DATA / f"{target.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        rng = random.Random(50)
        for d in range(-(-count // 500)):
            sub = tmp / f"dir{d:03}"
            sub.mkdir(parents=True)
            for f in range(min(500, count - d * 500)):
                (sub / f"file{f:03}").write_bytes(rng.randbytes(rng.randint(1 << 10, 16 << 10)))
        tmp.rename(target)
    return target


def big_files_tree(size: int) -> Path:
    target = DATA / ("big2g" if size == GIB else f"big2x{size >> 20}m")
    target.mkdir(parents=True, exist_ok=True)
    random_file(target / "one.bin", size, seed=1)
    random_file(target / "two.bin", size, seed=2)
    return target


def tree_stats(tree: Path) -> tuple[int, int]:
    files = size = 0
    for dirpath, _, names in os.walk(tree):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            files += 1
            size += st.st_size
    return files, size


def salted_copy(tree: Path, into: Path, salt: str) -> Path:
    """A copy of `tree` (named like it) in `into`: hard links to the tree's files, and one
    small file holding `salt`, so its NAR, and store path, are new."""
    into.mkdir(parents=True)
    copy = into / tree.name
    subprocess.run(["cp", "-al", str(tree), str(copy)], check=True)
    (copy / ".bench-salt").write_text(f"{salt}\n")
    return copy


def read_tree(tree: Path) -> None:
    """Read every file of `tree` once (into the page cache)."""
    for dirpath, _, names in os.walk(tree):
        for name in names:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                with open(path, "rb") as f:
                    while f.read(1 << 20):
                        pass


def count_label(count: int) -> str:
    return f"{count // 1000}k" if count % 1000 == 0 else str(count)


Kwargs = dict[str, object]


def read_and_warm(tree: Path, warm: tuple[list[str], Kwargs]) -> None:
    """Read `tree` into the page cache, and run `warm` (the importer on a tiny tree), so that
    the program's code is cached too."""
    read_tree(tree)
    run_quiet(warm)


def import_cmd(side: str, tree: Path, store: Path) -> tuple[list[str], Kwargs]:
    """`side`'s command importing `tree` into the (new) store in directory `store`, and the
    keyword arguments for subprocess.run (nix always imports into /nix/store)."""
    if side == "ours":
        return pytvix_cmd("import", str(tree)), {"env": pytvix_env(store), "cwd": ROOT}
    if side == "nix":
        return ["nix-store", "--add", str(tree)], {}
    store.mkdir(exist_ok=True)
    return UpstreamStore(os.environ["TVIX_STORE_UPSTREAM"], store).command("import", str(tree)), {}


def run_quiet(cmd: tuple[list[str], Kwargs]) -> float:
    """Seconds the command (argv, keyword arguments for subprocess.run) takes, output hidden."""
    argv, kwargs = cmd
    return run_cmd(argv, **QUIET, **kwargs)


def dump_cmd(side: str, store_path: str, store: Path) -> tuple[list[str], Kwargs]:
    """`side`'s command dumping `store_path` from the store in directory `store`."""
    if side == "ours":
        return pytvix_cmd("dump", store_path), {"env": pytvix_env(store), "cwd": ROOT}
    return ["nix-store", "--dump", store_path], {}


def bench_tree(
    report: Report,
    upstream_report: Report | None,
    label: str,
    tree: Path,
    *,
    salt: str,
    nix_paths: list[str],
    b3sum: bool = False,
) -> None:
    files, size = tree_stats(tree)
    mb = size / 1e6

    def speed_row(name: str, target: str = "") -> Row:
        return report.add(Row(name, unit="MB/s", higher_is_better=True, target=target))

    imp = speed_row(f"import {label} ({files} files, {mb:.0f} MB), no sync", ">= 1")
    imp_sync = speed_row(f"import {label} + sync", ">= 1")
    dump_cold = speed_row(f"dump {label}, page cache dropped", ">= 1")
    dump_warm = speed_row(f"dump {label}, cached", ">= 0.5")
    b3 = speed_row(f"import {label}, no sync, vs b3sum", ">= 0.5") if b3sum else None
    up_rows: tuple[Row, Row] | None = None
    if upstream_report is not None:
        up_rows = (
            upstream_report.add(Row(imp.name, ours=imp.ours, unit="MB/s", higher_is_better=True)),
            upstream_report.add(
                Row(imp_sync.name, ours=imp_sync.ours, unit="MB/s", higher_is_better=True)
            ),
        )
    scratch = scratch_dir("nar")
    remove_at_exit(scratch)
    sides = ["ours", "nix", *(["upstream"] if up_rows else [])]
    tiny = scratch / "tiny" / "warm-up"
    tiny.mkdir(parents=True)
    (tiny / "file").write_text("warm-up\n")
    tiny_path = nix_store_add(tiny)
    nix_paths.append(tiny_path)
    for run in range(RUNS):
        copy = salted_copy(tree, scratch / f"src{run}", f"{salt}-{run}")
        times: dict[str, tuple[float, float]] = {}
        store_paths: dict[str, str] = {}
        for side in alternating(run, sides):
            warm = import_cmd(side, tiny, scratch / f"warm-{side}")
            same_start(functools.partial(read_and_warm, copy, warm))
            argv, kwargs = import_cmd(side, copy, scratch / f"{side}{run}")
            seconds, sync_seconds, out = run_cmd_synced(argv, stderr=subprocess.DEVNULL, **kwargs)
            times[side] = (seconds, sync_seconds)
            store_paths[side] = out
        nix_paths.append(store_paths["nix"])
        if len(set(store_paths.values())) != 1:
            raise RuntimeError(f"the sides imported {copy} as different paths: {store_paths}")
        for row, key, with_sync in ((imp, "ours", False), (imp_sync, "ours", True)):
            seconds, sync_seconds = times[key]
            row.ours.append(mb / (seconds + (sync_seconds if with_sync else 0)))
            seconds, sync_seconds = times["nix"]
            row.peer.append(mb / (seconds + (sync_seconds if with_sync else 0)))
        if up_rows is not None:
            seconds, sync_seconds = times["upstream"]
            up_rows[0].peer.append(mb / seconds)
            up_rows[1].peer.append(mb / (seconds + sync_seconds))
        if b3 is not None:
            b3.ours.append(mb / times["ours"][0])
            b3.peer.append(mb / run_cmd(["b3sum", *map(str, sorted(copy.iterdir()))], **QUIET))
        store_path = store_paths["nix"]
        record = {"ours": "ours", "nix": "peer"}
        if drop_caches():
            for side in alternating(run, list(record)):
                drop_caches()
                # the program's code back in the page cache, not the store's data
                run_quiet(dump_cmd(side, tiny_path, scratch / f"warm-{side}"))
                seconds = run_quiet(dump_cmd(side, store_path, scratch / f"{side}{run}"))
                getattr(dump_cold, record[side]).append(mb / seconds)
        for side in record:
            run_quiet(dump_cmd(side, store_path, scratch / f"{side}{run}"))  # cached
        for side in alternating(run, list(record)):
            seconds = run_quiet(dump_cmd(side, store_path, scratch / f"{side}{run}"))
            getattr(dump_warm, record[side]).append(mb / seconds)


def main() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    settle_after_deletes()
    os.environ.setdefault("NIX_CONFIG", "experimental-features = nix-command")
    report = Report("import and dump", "nix-store --add / --dump, b3sum")
    upstream_report = None
    if upstream_binary("TVIX_STORE_UPSTREAM", "import rows against upstream tvix-store"):
        upstream_report = Report("import against upstream tvix-store", "upstream tvix-store")
        print("note: upstream tvix-store has no dump command: no dump rows against it")
    salt = uuid.uuid4().hex  # new store paths in every invocation, too
    nix_paths: list[str] = []
    delete_store_paths_at_exit(nix_paths)
    small, big = scaled(50_000), scaled(GIB)
    for label, tree, b3sum in (
        ("(a) Python stdlib", stdlib_tree(), False),
        (f"(a) {count_label(small)} x 1-16 KiB", small_files_tree(small), False),
        (f"(b) 2 x {size_label(big)}", big_files_tree(big), True),
    ):
        bench_tree(
            report, upstream_report, label, tree, salt=salt, nix_paths=nix_paths, b3sum=b3sum
        )
    report.print()
    if upstream_report is not None:
        upstream_report.print()


if __name__ == "__main__":
    main()
