"""Embedded store benchmarks (issue: persistent embedded store).

- write a 1 GiB blob vs `cp` of the same file to the same disk, with and without `sync`
- read a 1 GiB blob in a fresh process vs `cat` of the file, page cache warm and dropped
- directory and path info gets from LMDB vs raw LMDB gets of the same keys
- on-disk size of a tree with many duplicate files and subtrees (dedup ratio)
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import subprocess
import sys
import time

from bench.common import (
    DATA,
    ROOT,
    RUNS,
    Report,
    Row,
    alternating,
    drop_caches,
    random_1g,
    remove_at_exit,
    run_cmd,
    same_start,
    scratch_dir,
    size_label,
    sync,
    timed,
)
from pytvix.castore.blobservice import put_blob
from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.directoryservice import put_closure
from pytvix.castore.nodes import FileNode
from pytvix.nixcompat.store_path import StorePath
from pytvix.store.composition import open_store_from_urls
from pytvix.store.defaults import embedded_urls
from pytvix.store.path_info import PathInfo


def blob_io(*args: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "blob_io.py"), *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return out.stdout.split()


def bench_blob_write_read() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    src = random_1g()
    scratch = scratch_dir("blob")
    report = Report(f"blob write and read, {size_label(src.stat().st_size)}", "cp / cat")
    w_cache = report.add(Row("write, before sync", unit="MB/s", higher_is_better=True))
    w_disk = report.add(
        Row("write + sync (on disk)", unit="MB/s", higher_is_better=True, target=">= 0.5")
    )
    w_floor = report.add(
        Row(
            "write + sync, same bytes as 256 KiB files only (buffered, 8 threads)",
            unit="MB/s",
            higher_is_better=True,
        )
    )
    r_warm = report.add(
        Row(
            "read, fresh process, cache warm",
            unit="MB/s",
            higher_is_better=True,
            target=">= 1000 MB/s",
        )
    )
    r_cold = report.add(
        Row("read, fresh process, cache dropped", unit="MB/s", higher_is_better=True)
    )
    mb = src.stat().st_size / 1e6
    digest = ""

    # Every run writes to fresh paths and nothing is deleted until the end: ext4 skips inodes
    # freed in the last ~30 s when allocating (recently_deleted() scans past them, about
    # 0.5 ms per create here), so writing 4k chunk files right after deleting the previous
    # run's 4k would measure that, not the store.
    # Each writer starts from the same state: page cache dropped, source file cached.
    def read_src() -> None:
        run_cmd(["cat", str(src)], stdout=subprocess.DEVNULL)

    def write_cp(i: int) -> float:
        return run_cmd(["cp", str(src), str(scratch / f"copy-{i}.bin")])

    def write_ours(i: int) -> float:
        nonlocal digest
        seconds, digest = blob_io("write", f"objectstore+file://{scratch}/blobs-{i}", str(src))
        return float(seconds)

    def read_ours(i: int) -> float:
        return float(blob_io("read", f"objectstore+file://{scratch}/blobs-{i}", digest)[0])

    def read_cat(i: int) -> float:
        return run_cmd(["cat", str(src)], stdout=subprocess.DEVNULL)

    for i in range(RUNS):
        for side, write in alternating(i, [("peer", write_cp), ("ours", write_ours)]):
            same_start(read_src)
            t = write(i)
            t_sync = timed(sync)
            getattr(w_cache, side).append(mb / t)
            getattr(w_disk, side).append(mb / (t + t_sync))
        same_start(read_src)
        seconds = blob_io("files", str(scratch / f"files-{i}"), str(src))[0]
        w_floor.ours.append(mb / (float(seconds) + timed(sync)))
        w_floor.peer.append(w_disk.peer[-1])
        read_ours(i)  # the blob just written, into the page cache
        for side, read in alternating(i, [("ours", read_ours), ("peer", read_cat)]):
            getattr(r_warm, side).append(mb / read(i))
        if drop_caches():
            for side, read in alternating(i, [("ours", read_ours), ("peer", read_cat)]):
                drop_caches()
                getattr(r_cold, side).append(mb / read(i))
    report.print()
    remove_at_exit(scratch)


async def bench_metadata_gets() -> None:
    scratch = scratch_dir("lmdb")
    services = await open_store_from_urls(*embedded_urls(scratch))
    rng = random.Random(7)
    dirs = []
    for i in range(2000):
        files = [
            (f"file-{j}".encode(), FileNode(_digest(f"{i}-{j}"), rng.randint(0, 10**6), j % 3 == 0))
            for j in range(rng.randint(1, 12))
        ]
        dirs.append(Directory(files))
    for d in dirs:
        await put_closure(services.directory, [d])
    infos = []
    for i, d in enumerate(dirs):
        info = PathInfo(
            store_path=StorePath(hashlib.sha256(str(i).encode()).digest()[:20], f"pkg-{i}"),
            node=d.as_node(),
            nar_size=1000 + i,
            nar_sha256=hashlib.sha256(str(i).encode()).digest(),
        )
        infos.append(await services.path_info.put(info))
    keys = [d.digest() for d in dirs]
    path_keys = [i.store_path.digest for i in infos]
    n = 20000
    report = Report("metadata gets, LMDB, in process", "raw py-lmdb txn.get")
    dir_row = report.add(
        Row("directory get (1-12 entries)", unit="/s", higher_is_better=True, target=">= 50k/s")
    )
    pi_row = report.add(Row("path info get", unit="/s", higher_is_better=True, target=">= 50k/s"))
    # the peer: the same environment and keys, read with bare py-lmdb calls
    env = services.directory.env.env  # type: ignore[attr-defined]
    dir_db, pi_db = env.open_db(b"directory", create=False), env.open_db(b"pathinfo", create=False)
    for _ in range(RUNS):
        start = time.perf_counter()
        for i in range(n):
            assert await services.directory.get(keys[i % len(keys)]) is not None
        dir_row.ours.append(n / (time.perf_counter() - start))
        start = time.perf_counter()
        for i in range(n):
            assert await services.path_info.get(path_keys[i % len(path_keys)]) is not None
        pi_row.ours.append(n / (time.perf_counter() - start))
        for row, db, ks in ((dir_row, dir_db, keys), (pi_row, pi_db, path_keys)):
            start = time.perf_counter()
            for i in range(n):
                with env.begin(db=db) as txn:
                    assert txn.get(ks[i % len(ks)]) is not None
            row.peer.append(n / (time.perf_counter() - start))
    await services.close()
    report.print()
    remove_at_exit(scratch)


async def bench_dedup() -> None:
    """A tree of 10 copies of one 200-file subtree plus 500 files each stored 4 times."""
    scratch = scratch_dir("dedup")
    services = await open_store_from_urls(*embedded_urls(scratch))
    rng = random.Random(3)
    logical = 0
    shared = []
    for i in range(200):
        data = rng.randbytes(rng.randint(1, 64 << 10))
        shared.append((f"s{i}".encode(), FileNode(await put_blob(services.blob, data), len(data))))
    subtree = Directory(shared)
    subtree_bytes = sum(n.size for _, n in shared)
    entries: list[tuple[bytes, object]] = [
        (f"copy-{c}".encode(), subtree.as_node()) for c in range(10)
    ]
    logical += 10 * subtree_bytes
    for i in range(500):
        data = rng.randbytes(rng.randint(1, 256 << 10))
        digest = await put_blob(services.blob, data)
        for c in range(4):
            entries.append((f"f{i}-{c}".encode(), FileNode(digest, len(data))))
            logical += len(data)
    root = Directory(entries)  # type: ignore[arg-type]
    await put_closure(services.directory, [subtree, root])
    await services.close()
    stored = sum(
        p.stat().st_size for p in scratch.rglob("*") if p.is_file() and "lmdb" not in str(p)
    )
    print("\n### dedup: tree with duplicate files and subtrees")
    print(
        f"logical file bytes {logical / 1e6:.1f} MB, stored blob bytes {stored / 1e6:.1f} MB, "
        f"dedup ratio {logical / stored:.2f}x (10 identical subtrees, 500 files stored 4 times)"
    )
    remove_at_exit(scratch)


def _digest(text: str) -> B3Digest:
    return B3Digest.of(text.encode())


def main() -> None:
    bench_blob_write_read()
    asyncio.run(bench_metadata_gets())
    asyncio.run(bench_dedup())


if __name__ == "__main__":
    main()
