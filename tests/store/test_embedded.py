"""The embedded default store: location, persistence across processes, crash safety,
concurrent writers, verify and info, full and read-only disks."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import lmdb
import pytest

from pytvix.castore.directoryservice import put_closure
from pytvix.castore.errors import StorageError
from pytvix.castore.progress import no_progress
from pytvix.store.composition import StoreServices, open_store_from_urls
from pytvix.store.defaults import embedded_urls, store_home
from pytvix.store.verify import verify_store
from pytvix.testing.fixtures import DIRECTORY_A, DIRECTORY_B, DIRECTORY_D
from pytvix.testing.synthetic import write_synthetic_path
from pytvix.testing.trees import make_tree
from tests.cli import tvix_store

ROOT = Path(__file__).resolve().parents[2]


def test_store_home_resolution(tmp_path: Path) -> None:
    assert store_home({"TVIX_STORE_HOME": str(tmp_path)}) == tmp_path
    assert store_home({"XDG_DATA_HOME": str(tmp_path)}) == tmp_path / "pytvix"
    assert (
        store_home({"TVIX_STORE_HOME": "", "XDG_DATA_HOME": str(tmp_path)}) == tmp_path / "pytvix"
    )
    assert store_home({}) == Path.home() / ".local" / "share" / "pytvix"
    blob, directory, path_info = embedded_urls(tmp_path)
    assert blob == f"local://{tmp_path}"
    assert directory == path_info == f"lmdb://{tmp_path}/store.lmdb"
    # a store of earlier versions keeps its object layout until migrated
    (tmp_path / "blobs" / "chunks").mkdir(parents=True)
    assert embedded_urls(tmp_path)[0] == f"objectstore+file://{tmp_path}/blobs"


def writer(home: Path, first: int, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.store.crash_writer", str(first), str(count)],
        cwd=ROOT,
        env={**os.environ, "TVIX_STORE_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
async def open_embedded() -> AsyncIterator[object]:
    opened: list[StoreServices] = []

    async def open_(home: Path) -> StoreServices:
        services = await open_store_from_urls(*embedded_urls(home))
        opened.append(services)
        return services

    yield open_
    for services in opened:
        await services.close()


async def assert_consistent(services: StoreServices) -> None:
    report = await verify_store(services, no_progress)
    assert report.problems == [], report.problems


async def test_persists_across_processes(tmp_path: Path, open_embedded) -> None:  # type: ignore[no-untyped-def]
    proc = writer(tmp_path, 0, 3)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.split() == ["done", "0", "done", "1", "done", "2"]
    services = await open_embedded(tmp_path)
    infos = [i async for i in services.path_info.list()]
    assert sorted(i.store_path.name for i in infos) == ["synthetic-0", "synthetic-1", "synthetic-2"]
    await assert_consistent(services)


async def test_crash_at_random_points_leaves_store_consistent(
    tmp_path: Path, open_embedded
) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(1234)
    for round_ in range(12):
        home = tmp_path / f"store-{round_ % 3}"  # stores accumulate crashes across rounds
        first = round_ * 100
        proc = writer(home, first, 40)
        await asyncio.sleep(rng.uniform(0.3, 2.5))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        finished = {int(line.split()[1]) for line in out.splitlines() if line.startswith("done")}
        services = await open_embedded(home)
        await assert_consistent(services)
        present = {int(i.store_path.name.split("-")[1]) async for i in services.path_info.list()}
        assert finished <= present
        await services.close()
        # repeating the interrupted write succeeds and completes the store
        retry = writer(home, first, 5)
        _, err = retry.communicate(timeout=120)
        assert retry.returncode == 0, err
    for i in range(3):
        services = await open_embedded(tmp_path / f"store-{i}")
        await assert_consistent(services)


async def test_two_writers_with_overlapping_data(tmp_path: Path, open_embedded) -> None:  # type: ignore[no-untyped-def]
    procs = [writer(tmp_path, 0, 12), writer(tmp_path, 6, 12)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    services = await open_embedded(tmp_path)
    names = sorted([int(i.store_path.name.split("-")[1]) async for i in services.path_info.list()])
    assert names == list(range(18))
    await assert_consistent(services)


def _blob_files(home: Path) -> list[Path]:
    return sorted(p for p in (home / "data").glob("??/*") if p.is_file())


def test_verify_detects_corrupt_and_missing_blobs(tmp_path: Path) -> None:
    proc = writer(tmp_path, 0, 4)
    assert proc.wait(timeout=120) == 0
    ok = tvix_store(tmp_path, "verify", text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "no problems found" in ok.stdout
    assert "4 closures" in ok.stdout
    files = _blob_files(tmp_path)
    victim = max(files, key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x55
    victim.chmod(0o644)
    victim.write_bytes(bytes(data))
    bad = tvix_store(tmp_path, "verify", text=True)
    assert bad.returncode == 1
    problems = [line for line in bad.stdout.splitlines() if line.startswith("PROBLEM:")]
    assert len(problems) == 1, bad.stdout  # one damaged blob: one problem, one line
    assert "blob b3:" in problems[0]
    assert "corrupt" in problems[0]
    assert "1 problem(s) found" in bad.stderr
    damaged = [line for line in bad.stdout.splitlines() if line.startswith("DAMAGED: /nix/store/")]
    assert len(damaged) == 1, bad.stdout  # the one store path holding the chunk
    assert "3 closures" in bad.stdout
    victim.unlink()
    missing = tvix_store(tmp_path, "verify", text=True)
    assert missing.returncode == 1
    assert "missing" in missing.stdout


def test_verify_repair_then_reimport_restores_a_damaged_path(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "big").write_bytes(os.urandom(300_000))  # a blob file
    (tree / "small").write_text("small\n")
    home = tmp_path / "home"
    path = tvix_store(home, "import", str(tree), text=True, check=True).stdout.strip()
    [victim] = _blob_files(home)
    data = bytearray(victim.read_bytes())
    data[1000] ^= 1
    victim.chmod(0o644)
    victim.write_bytes(bytes(data))
    bad = tvix_store(home, "verify", text=True)
    assert bad.returncode == 1
    assert f"its file {victim} does not hash to its digest" in bad.stdout
    assert "to repair: `tvix-store verify --repair`" in bad.stderr
    # importing again alone does not help: the damaged blob is found present
    tvix_store(home, "import", str(tree), check=True)
    assert tvix_store(home, "verify").returncode == 1
    repaired = tvix_store(home, "verify", "--repair", text=True)
    assert repaired.returncode == 1  # it reports what it found
    assert "removed 1 damaged object(s)" in repaired.stderr
    assert f"DAMAGED: {path}" in repaired.stdout
    assert tvix_store(home, "import", str(tree), text=True, check=True).stdout.strip() == path
    good = tvix_store(home, "verify", text=True)
    assert good.returncode == 0, good.stdout + good.stderr
    assert (
        tvix_store(home, "dump", path).stdout
        == subprocess.run(
            ["nix-store", "--dump", str(tree)], capture_output=True, check=True
        ).stdout
    )


async def test_corrupt_directory_value_detected(tmp_path: Path, open_embedded) -> None:  # type: ignore[no-untyped-def]
    services = await open_embedded(tmp_path)
    await put_closure(services.directory, [DIRECTORY_A, DIRECTORY_B, DIRECTORY_D])
    await services.close()
    env = lmdb.open(str(tmp_path / "store.lmdb"), max_dbs=8)
    table = env.open_db(b"directory")
    with env.begin(write=True) as txn:
        value = bytearray(txn.get(DIRECTORY_B.digest(), db=table))
        value[-1] ^= 1
        txn.put(DIRECTORY_B.digest(), bytes(value), db=table)
    env.close()
    services = await open_embedded(tmp_path)
    with pytest.raises(StorageError, match="corrupt"):
        await services.directory.get(DIRECTORY_B.digest())
    with pytest.raises(StorageError, match="corrupt"):
        _ = [d async for d in services.directory.get_recursive(DIRECTORY_D.digest())]
    report = await verify_store(services, no_progress)
    assert any("corrupt" in p for p in report.problems)


def test_info_reports_location_and_contents(tmp_path: Path) -> None:
    assert writer(tmp_path, 0, 2).wait(timeout=120) == 0
    result = tvix_store(tmp_path, "info", text=True)
    assert result.returncode == 0, result.stderr
    assert f"store home: {tmp_path}" in result.stdout
    assert "LocalBlobService" in result.stdout
    assert "blobs in LMDB: " in result.stdout
    assert "blobs as files: " in result.stdout
    assert "path infos: 2" in result.stdout
    assert "directories: 4" in result.stdout


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


async def test_full_disk_gives_clear_error_and_stays_consistent(
    small_tmpfs: Path, open_embedded
) -> None:  # type: ignore[no-untyped-def]
    services = await open_embedded(small_tmpfs)
    written = []

    async def fill() -> None:
        for seed in range(100):
            written.append(await write_synthetic_path(services, seed))

    with pytest.raises(StorageError) as e:
        await fill()
    assert "No space left" in str(e.value) or "full" in str(e.value)
    assert written, "some paths fit before the disk filled up"
    await assert_consistent(services)
    for info in written:
        assert await services.path_info.get(info.store_path.digest) == info


def test_read_only_directory_gives_clear_error(small_tmpfs: Path) -> None:
    assert writer(small_tmpfs, 0, 1).wait(timeout=120) == 0
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    result = subprocess.run(
        [sys.executable, "-m", "tests.store.crash_writer", "50", "1"],
        cwd=ROOT,
        env={**os.environ, "TVIX_STORE_HOME": str(small_tmpfs)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "Read-only file system" in result.stderr
    # reading still works
    info = tvix_store(small_tmpfs, "info", text=True)
    assert "path infos: 1" in info.stdout, info.stderr


async def test_import_killed_at_random_points(tmp_path: Path, open_embedded) -> None:  # type: ignore[no-untyped-def]
    """The real `tvix-store import`, killed with SIGKILL while it runs, then run again."""
    tree = make_tree(tmp_path / "tree", 11, entries=400, max_file=600_000, big_file=12 << 20)
    home = tmp_path / "home"
    rng = random.Random(99)
    for _ in range(8):
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytvix", "import", str(tree)],
            cwd=ROOT,
            env={**os.environ, "TVIX_STORE_HOME": str(home)},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        await asyncio.sleep(rng.uniform(0.2, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        services = await open_embedded(home)
        await assert_consistent(services)
        await services.close()
    done = tvix_store(home, "import", str(tree), text=True)
    assert done.returncode == 0, done.stderr
    expected = subprocess.run(
        ["nix-store", "--add", str(tree)], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == expected.stdout.strip()
    services = await open_embedded(home)
    await assert_consistent(services)
