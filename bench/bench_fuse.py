"""FUSE benchmarks (issue: FUSE mount). Each run mounts afresh (no warm in-process caches)
and drops the page cache first. Two peers run the same operations: the original files, and a
C FUSE file system (`squashfuse_ll`, libfuse's low-level API) serving an uncompressed squashfs
image of the same trees, which shows what the FUSE round trips alone cost on this machine.

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
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    RUNS,
    Report,
    Row,
    drop_caches,
    random_file,
    remove_at_exit,
    scratch_dir,
)

DATA = Path("/var/tmp/pytvix-bench-data")
GIB = 1 << 30


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


def tvix(home: Path, *args: str) -> str:
    env = {**os.environ, "TVIX_STORE_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, "-m", "pytvix", *args],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


class Mount:
    """A FUSE file system run in the foreground by `argv`, mounted at `mountpoint` until the
    with-block ends (SIGTERM, which unmounts)."""

    def __init__(self, mountpoint: Path, argv: list[str], **popen: Any) -> None:
        mountpoint.mkdir(parents=True, exist_ok=True)
        self.mountpoint = mountpoint
        self.proc = subprocess.Popen(argv, **popen)
        while not os.path.ismount(mountpoint):
            time.sleep(0.05)

    def __enter__(self) -> Path:
        return self.mountpoint

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait()


def tvix_mount(home: Path, mountpoint: Path, *flags: str) -> Mount:
    argv = [sys.executable, "-m", "pytvix", "mount", str(mountpoint), *flags]
    env = {**os.environ, "TVIX_STORE_HOME": str(home)}
    return Mount(mountpoint, argv, env=env, cwd=ROOT, stderr=subprocess.DEVNULL)


def squash_mount(tree: Path, mountpoint: Path) -> Mount:
    """`squashfuse_ll` serving an uncompressed squashfs image of `tree` (built once)."""
    image = DATA / f"{tree.name}.sqfs"
    if not image.exists():
        uncompressed = ("-noI", "-noD", "-noF", "-noX")
        quiet = ("-no-progress", "-quiet", "-noappend")
        subprocess.run(["mksquashfs", tree, f"{image}.tmp", *uncompressed, *quiet], check=True)
        os.rename(f"{image}.tmp", image)
    return Mount(mountpoint, ["squashfuse_ll", "-f", str(image), str(mountpoint)])


def getxattr_round_trip(path: Path, calls: int = 20_000) -> float:
    """Mean µs of a getxattr the file system answers with ENODATA (never cached by FUSE)."""
    start = time.perf_counter()
    for _ in range(calls):
        try:
            os.getxattr(path, "security.selinux")
        except OSError as e:
            if e.errno != errno.ENODATA:
                raise
    return (time.perf_counter() - start) / calls * 1e6


def timed_shell(command: str) -> float:
    start = time.perf_counter()
    subprocess.run(command, shell=True, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    big = random_file(DATA / "random-1g.bin", GIB)
    big_dir = DATA / "bigfile"
    big_dir.mkdir(exist_ok=True)
    if not (big_dir / "random-1g.bin").exists():
        os.link(big, big_dir / "random-1g.bin")
    small = tree_of("small20k", 40, 500, 8192)
    many = tree_of("entries100k", 200, 500, 64)
    scratch = scratch_dir("fuse")
    home = scratch / "home"
    paths = {
        name: tvix(home, "import", str(tree)).removeprefix("/nix/store/")
        for name, tree in (("big", big_dir), ("small", small), ("many", many))
    }
    report = Report("FUSE mount", "same operation on the original files")
    seq_warm = report.add(
        Row("sequential read 1 GiB, store files cached", unit="MB/s", higher_is_better=True)
    )
    seq = report.add(
        Row(
            "sequential read 1 GiB, cache dropped",
            unit="MB/s",
            higher_is_better=True,
            target=">= 1000 MB/s",
        )
    )
    cat = report.add(
        Row("cat 20k small files", unit="/s", higher_is_better=True, target=">= 10k files/s")
    )
    find = report.add(
        Row("find, 100k entries", unit="/s", higher_is_better=True, target=">= 50k entries/s")
    )
    lslr = report.add(
        Row("ls -lR, 100k entries", unit="/s", higher_is_better=True, target=">= 50k entries/s")
    )
    # `ls -l` asks every entry for security.selinux and system.posix_acl_access; with the
    # digest xattrs shown those are two FUSE round trips per entry (answered ENODATA, which
    # the kernel does not cache), without them the first ENOSYS ends all xattr requests
    lslr_plain = report.add(
        Row("ls -lR, 100k entries, --no-show-xattr", unit="/s", higher_is_better=True)
    )
    c_fuse = Report("FUSE mount against a C FUSE file system", "squashfuse_ll")
    trip = c_fuse.add(Row("one FUSE round trip (getxattr -> ENODATA)", unit="us"))
    c_rows = {  # by name: rows are dataclasses (unhashable)
        row.name: c_fuse.add(
            Row(row.name, ours=row.ours, unit=row.unit, higher_is_better=True, target=row.target)
        )
        for row in (seq, cat, find, lslr)
    }
    entries = sum(len(files) + len(dirs) for _, dirs, files in os.walk(many))
    try:
        for _ in range(RUNS):
            for row, tree, key, command, count, flags in (
                (seq, big_dir, "big", "dd if={}/random-1g.bin of=/dev/null bs=1M", GIB / 1e6, ()),
                (cat, small, "small", "find {} -type f -print0 | xargs -0 -n 1000 cat", 20_000, ()),
                (find, many, "many", "find {}", entries, ()),
                (lslr, many, "many", "ls -lR {}", entries, ()),
                (lslr_plain, many, "many", "ls -lR {}", entries, ("--no-show-xattr",)),
            ):
                drop_caches()
                row.peer.append(count / timed_shell(command.format(tree)))
                with tvix_mount(home, scratch / "mnt", *flags) as mnt:
                    drop_caches()
                    row.ours.append(count / timed_shell(command.format(mnt / paths[key])))
                    if row is lslr:
                        trip.ours.append(getxattr_round_trip(mnt / paths[key] / "dir0000"))
                if row.name in c_rows:
                    with squash_mount(tree, scratch / "sqmnt") as mnt:
                        drop_caches()
                        c_rows[row.name].peer.append(count / timed_shell(command.format(mnt)))
                        if row is lslr:
                            trip.peer.append(getxattr_round_trip(mnt / "dir0000"))
                if row is seq:  # a fresh mount, the store's chunk files still in the page cache
                    with tvix_mount(home, scratch / "mnt") as mnt:
                        seq_warm.ours.append(count / timed_shell(command.format(mnt / paths[key])))
    finally:
        report.print()
        c_fuse.print()
        remove_at_exit(scratch)


if __name__ == "__main__":
    main()
