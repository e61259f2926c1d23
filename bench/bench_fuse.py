"""FUSE benchmarks (issue: FUSE mount). Each run mounts afresh (no warm in-process caches)
and drops the page cache first. Peers run the same operations: the original files; a C FUSE
file system (`squashfuse_ll`, libfuse's low-level API) serving an uncompressed squashfs image
of the same trees, which shows what the FUSE round trips alone cost on this machine; and, if
$TVIX_STORE_UPSTREAM names an upstream tvix-store binary, its `mount` of the same trees
imported into its objectstore+file/redb services (see common.UpstreamStore). The sides take
turns in an order that rotates every run (common.alternating). BENCH_SCALE scales the trees.

- sequential read of a 1 GiB file (dd bs=1M)
- cat of 20k small files (one `cat` per 1000 files, via xargs)
- find and ls -lR over a 100k-entry tree
- one FUSE round trip: getxattr of a name the file system answers with ENODATA
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.common import (
    DATA,
    ROOT,
    RUNS,
    Report,
    Row,
    UpstreamStore,
    alternating,
    drop_caches,
    pytvix,
    pytvix_cmd,
    pytvix_env,
    random_1g,
    remove_at_exit,
    scaled,
    scratch_dir,
    size_label,
    upstream_binary,
)


def tree_of(name: str, dirs: int, files: int, max_size: int) -> Path:
    target = DATA / name
    if not target.exists():
        tmp = DATA / f"{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        rng = random.Random(name)
        for d in range(dirs):
            sub = tmp / f"dir{d:04}"
            sub.mkdir(parents=True)
            for f in range(files):
                (sub / f"f{f:04}").write_bytes(rng.randbytes(rng.randint(1, max_size)))
        tmp.rename(target)
    return target


def scaled_tree(name: str, dirs: int, files: int, max_size: int) -> Path:
    """tree_of with BENCH_SCALE applied to the number of directories."""
    count = scaled(dirs)
    return tree_of(name if count == dirs else f"{name}-{count}d", count, files, max_size)


def big_file_dir() -> Path:
    """A directory holding one hard link, `random-1g.bin`, to common.random_1g()."""
    big = random_1g()
    big_dir = DATA / big.name.replace("random-1g", "bigfile").removesuffix(".bin")
    big_dir.mkdir(exist_ok=True)
    if not (big_dir / "random-1g.bin").exists():
        os.link(big, big_dir / "random-1g.bin")
    return big_dir


class Mount:
    """A FUSE file system run in the foreground by `argv`, mounted at `mountpoint` until the
    with-block ends (`stop`, a signal on which it unmounts)."""

    def __init__(
        self, mountpoint: Path, argv: list[str], stop: int = signal.SIGTERM, **popen: Any
    ) -> None:
        mountpoint.mkdir(parents=True, exist_ok=True)
        self.mountpoint = mountpoint
        self.stop = stop
        self.proc = subprocess.Popen(argv, **popen)
        while not os.path.ismount(mountpoint):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{argv} exited {self.proc.returncode} before mounting")
            time.sleep(0.05)

    def __enter__(self) -> Path:
        return self.mountpoint

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(self.stop)
        self.proc.wait()
        if os.path.ismount(self.mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", str(self.mountpoint)], check=False)


def tvix_mount(home: Path, mountpoint: Path, *flags: str) -> Mount:
    argv = pytvix_cmd("mount", str(mountpoint), *flags)
    return Mount(mountpoint, argv, env=pytvix_env(home), cwd=ROOT, stderr=subprocess.DEVNULL)


def upstream_mount(store: UpstreamStore, mountpoint: Path) -> Mount:
    """Upstream `tvix-store mount` (unmounts on SIGINT) on its local services."""
    argv = store.command("mount", str(mountpoint))
    return Mount(mountpoint, argv, signal.SIGINT, stderr=subprocess.DEVNULL)


def squash_mount(tree: Path, mountpoint: Path) -> Mount:
    """`squashfuse_ll` serving an uncompressed squashfs image of `tree` (built once)."""
    image = DATA / f"{tree.name}.sqfs"
    if not image.exists():
        uncompressed = ("-noI", "-noD", "-noF", "-noX")
        quiet = ("-no-progress", "-quiet", "-noappend")
        subprocess.run(["mksquashfs", tree, f"{image}.tmp", *uncompressed, *quiet], check=True)
        os.rename(f"{image}.tmp", image)
    return Mount(mountpoint, ["squashfuse_ll", "-f", str(image), str(mountpoint)])


def getxattr_round_trip(path: Path, values: list[float], calls: int = 20_000) -> None:
    """Append the mean µs of a getxattr the file system answers with ENODATA (never cached by
    FUSE); nothing, with a note, if it answers otherwise (then the kernel may answer alone)."""
    start = time.perf_counter()
    for _ in range(calls):
        try:
            os.getxattr(path, "security.selinux")
        except OSError as e:
            if e.errno != errno.ENODATA:
                print(f"note: getxattr on {path}: {e}; no round trip measured", flush=True)
                return
    values.append((time.perf_counter() - start) / calls * 1e6)


def measure(command: str, root: Path, count: float, values: list[float]) -> None:
    """Drop the page cache, run `command` on `root`, append `count` per second to `values`."""
    drop_caches()
    values.append(count / timed_shell(command.format(root)))


def timed_shell(command: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        command, shell=True, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def main() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    big_dir = big_file_dir()
    big_size = (big_dir / "random-1g.bin").stat().st_size
    small = scaled_tree("small20k", 40, 500, 8192)
    many = scaled_tree("entries100k", 200, 500, 64)
    small_files = sum(len(files) for _, _, files in os.walk(small))
    entries = sum(len(files) + len(dirs) for _, dirs, files in os.walk(many))
    scratch = scratch_dir("fuse")
    remove_at_exit(scratch)
    home = scratch / "home"
    trees = {"big": big_dir, "small": small, "many": many}
    paths = {
        name: pytvix(home, "import", str(tree)).removeprefix("/nix/store/")
        for name, tree in trees.items()
    }
    upstream = None
    upstream_bin = upstream_binary("TVIX_STORE_UPSTREAM", "FUSE rows against upstream mount")
    if upstream_bin:
        upstream = UpstreamStore(upstream_bin, scratch / "upstream")
        for name, tree in trees.items():
            upstream_path = upstream.import_path(tree).removeprefix("/nix/store/")
            if upstream_path != paths[name]:
                raise RuntimeError(f"upstream imported {tree} as {upstream_path}, ours as {paths}")
    big_label = size_label(big_size)
    small_label = f"{small_files // 1000}k" if small_files >= 1000 else str(small_files)
    many_label = f"{entries // 1000}k" if entries >= 1000 else str(entries)
    report = Report("FUSE mount", "same operation on the original files")
    seq_warm = report.add(
        Row(f"sequential read {big_label}, store files cached", unit="MB/s", higher_is_better=True)
    )
    seq = report.add(
        Row(
            f"sequential read {big_label}, cache dropped",
            unit="MB/s",
            higher_is_better=True,
            target=">= 1000 MB/s",
        )
    )
    cat = report.add(
        Row(
            f"cat {small_label} small files, cache dropped",
            unit="/s",
            higher_is_better=True,
            target=">= 10k files/s",
        )
    )
    find = report.add(
        Row(
            f"find, {many_label} entries",
            unit="/s",
            higher_is_better=True,
            target=">= 50k entries/s",
        )
    )
    lslr = report.add(
        Row(
            f"ls -lR, {many_label} entries",
            unit="/s",
            higher_is_better=True,
            target=">= 50k entries/s",
        )
    )
    # `ls -l` asks every entry for security.selinux and system.posix_acl_access; with the
    # digest xattrs shown those are two FUSE round trips per entry (answered ENODATA, which
    # the kernel does not cache), without them the first ENOSYS ends all xattr requests
    lslr_plain = report.add(
        Row(f"ls -lR, {many_label} entries, --no-show-xattr", unit="/s", higher_is_better=True)
    )
    # the same operations against other FUSE file systems; rows by name (dataclasses are
    # unhashable), sharing our measurements
    c_fuse = Report("FUSE mount against a C FUSE file system", "squashfuse_ll")
    c_targets = {seq.name: ">= 0.8", cat.name: ">= 0.8", find.name: ">= 0.5"}
    peer_fs: dict[str, tuple[Report, Row, dict[str, Row]]] = {}
    for key, peer_report in (
        ("squash", c_fuse),
        ("upstream", Report("FUSE mount against upstream tvix-store", "upstream tvix-store mount")),
    ):
        if key == "upstream" and upstream is None:
            continue
        trip = peer_report.add(Row("one FUSE round trip (getxattr -> ENODATA)", unit="us"))
        peer_fs[key] = (
            peer_report,
            trip,
            {
                row.name: peer_report.add(
                    Row(
                        row.name,
                        ours=row.ours,
                        unit=row.unit,
                        higher_is_better=True,
                        target=c_targets.get(row.name, "") if key == "squash" else "",
                    )
                )
                for row in (seq, cat, find, lslr)
            },
        )
    round_trips: list[float] = peer_fs["squash"][1].ours
    if "upstream" in peer_fs:
        peer_fs["upstream"][1].ours = round_trips  # one measurement of ours, two tables
    try:
        for run in range(RUNS):
            for row, key, command, count, flags in (
                (seq, "big", "dd if={}/random-1g.bin of=/dev/null bs=1M", big_size / 1e6, ()),
                (cat, "small", "find {} -type f -print0 | xargs -0 -n 1000 cat", small_files, ()),
                (find, "many", "find {}", entries, ()),
                (lslr, "many", "ls -lR {}", entries, ()),
                (lslr_plain, "many", "ls -lR {}", entries, ("--no-show-xattr",)),
            ):
                tree = trees[key]
                sides = ["original", "ours"]
                if row.name in peer_fs["squash"][2]:
                    sides += list(peer_fs)
                for side in alternating(run, sides):
                    if side == "original":
                        measure(command, tree, count, row.peer)
                        continue
                    if side == "ours":
                        with tvix_mount(home, scratch / "mnt", *flags) as mnt:
                            measure(command, mnt / paths[key], count, row.ours)
                            if row is lslr:
                                getxattr_round_trip(mnt / paths[key] / "dir0000", round_trips)
                        if row is seq:  # a fresh mount, the store's chunk files still cached
                            with tvix_mount(home, scratch / "mnt") as mnt:
                                cmd = command.format(mnt / paths[key])
                                seq_warm.ours.append(count / timed_shell(cmd))
                        continue
                    _, trip, rows = peer_fs[side]
                    if side == "squash":
                        mount = squash_mount(tree, scratch / "sqmnt")
                        top = Path()
                    else:
                        assert upstream is not None
                        mount = upstream_mount(upstream, scratch / "upmnt")
                        top = Path(paths[key])
                    with mount as mnt:
                        measure(command, mnt / top, count, rows[row.name].peer)
                        if row is lslr:
                            getxattr_round_trip(mnt / top / "dir0000", trip.peer)
    finally:
        report.print()
        for peer_report, _, _ in peer_fs.values():
            peer_report.print()


if __name__ == "__main__":
    main()
