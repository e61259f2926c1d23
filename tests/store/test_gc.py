"""Garbage collection on the embedded store, end to end: what it deletes and keeps, pins and
retention, deleting roots, writers running meanwhile, and kill -9 at any point."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import pytvix
from pytvix.castore import gc as castore_gc
from pytvix.store.gc import GcOptions, GcReport, collect
from pytvix.store.gc import collector as gc_collect
from tests.cli import ROOT, tvix_store


def make_tree(root: Path, seed: int, shared: Path | None = None) -> Path:
    """A tree with unique files (small and large) and, if given, a copy of `shared`."""
    rng = random.Random(seed)
    (root / "sub").mkdir(parents=True)
    (root / "unique-small").write_bytes(rng.randbytes(3000))
    (root / "sub" / "unique-large").write_bytes(rng.randbytes(400_000))
    if shared is not None:
        subprocess.run(["cp", "-r", str(shared), str(root / "shared")], check=True)
    return root


def shared_tree(root: Path) -> Path:
    rng = random.Random(99)
    (root / "deep" / "er").mkdir(parents=True)
    (root / "deep" / "er" / "big").write_bytes(rng.randbytes(300_000))
    (root / "small").write_text("shared small\n")
    return root


def nix_dump(path: Path) -> bytes:
    return subprocess.run(
        ["nix-store", "--dump", str(path)], capture_output=True, check=True
    ).stdout


def gc_json(home: Path, *args: str) -> dict[str, object]:
    result = tvix_store(home, "gc", "--json", *args, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def stored_bytes(home: Path) -> int:
    """Blob bytes stored: files on disk plus values in LMDB."""

    async def inline() -> int:
        async with await pytvix.open_store(home=home) as store:
            described = await store.blob.describe()  # type: ignore[attr-defined]
            return int(described["bytes in LMDB"])

    files = sum(p.stat().st_size for p in (home / "data").glob("??/*"))
    return files + asyncio.run(inline())


def test_deleting_a_path_frees_exactly_its_unique_data(tmp_path: Path) -> None:
    home = tmp_path / "home"
    shared = shared_tree(tmp_path / "shared")
    one = make_tree(tmp_path / "one", 1, shared)
    two = make_tree(tmp_path / "two", 2, shared)
    path_one = tvix_store(home, "import", str(one), text=True, check=True).stdout.strip()
    path_two = tvix_store(home, "import", str(two), text=True, check=True).stdout.strip()
    before = stored_bytes(home)
    dry = gc_json(home, "--grace", "0", "--dry-run")
    assert dry["objects"]["blob"]["deleted"] == 0  # type: ignore[index]
    assert tvix_store(home, "delete", path_one).returncode == 0
    dry = gc_json(home, "--grace", "0", "--dry-run")
    assert dry["objects"]["blob"]["deleted"] == 2  # type: ignore[index]
    assert stored_bytes(home) == before  # a dry run changes nothing
    report = gc_json(home, "--grace", "0")
    assert report["objects"]["blob"] == {  # type: ignore[index]
        "found": 6,  # 2 unique each, 2 shared
        "found_bytes": 2 * (3000 + 400_000) + 300_000 + 13,
        "deleted": 2,
        "deleted_bytes": 3000 + 400_000,
    }
    assert report["objects"]["directory"]["deleted"] == 2  # type: ignore[index]
    assert stored_bytes(home) == before - 403_000
    assert tvix_store(home, "dump", path_two).stdout == nix_dump(two)
    verify = tvix_store(home, "verify", text=True)
    assert verify.returncode == 0, verify.stdout
    assert "1 closures" in verify.stdout


def test_grace_keeps_recent_objects_and_gc_is_exclusive(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = tvix_store(home, "import", str(make_tree(tmp_path / "t", 3)), text=True).stdout.strip()
    tvix_store(home, "delete", path, check=True)
    kept = gc_json(home)  # default grace: an hour
    assert kept["objects"]["blob"]["deleted"] == 0  # type: ignore[index]
    gone = gc_json(home, "--grace", "0")
    assert gone["objects"]["blob"]["deleted"] == 2  # type: ignore[index]

    async def two_at_once() -> None:
        async with await pytvix.open_store(home=home) as store:
            lock = store.path_info.gc_lock()  # type: ignore[attr-defined]
            async with lock:
                busy = tvix_store(home, "gc", text=True)
                assert busy.returncode == 1
                assert "another garbage collection holds" in busy.stderr

    asyncio.run(two_at_once())


def test_pins_survive_retention_and_delete_respects_references(tmp_path: Path) -> None:
    home = tmp_path / "home"
    paths = [
        tvix_store(home, "import", str(make_tree(tmp_path / f"t{i}", i)), text=True).stdout.strip()
        for i in range(3)
    ]
    assert tvix_store(home, "pin", "keep", paths[0]).returncode == 0
    pins = tvix_store(home, "pins", text=True).stdout
    assert "keep: 1 path(s)" in pins
    assert paths[0] in pins
    # nothing was read or added in the last 0 seconds: all would go but the pinned one
    report = gc_json(home, "--grace", "0", "--keep-since", "0s")
    assert sorted(report["dropped_paths"]) == sorted(paths[1:])  # type: ignore[arg-type]
    assert tvix_store(home, "dump", paths[0]).returncode == 0
    assert tvix_store(home, "dump", paths[1]).returncode == 1
    refused = tvix_store(home, "delete", paths[0], text=True)
    assert refused.returncode == 1
    assert "still needed by a pin" in refused.stderr
    assert tvix_store(home, "unpin", "keep").returncode == 0
    assert (
        tvix_store(home, "unpin", "keep", text=True).stderr.strip()
        == "Error: there is no pin 'keep'"
    )
    assert tvix_store(home, "delete", paths[0]).returncode == 0


def test_bad_arguments_are_clear_errors(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for args, message in (
        (["gc", "--grace", "soon"], "is not a duration"),
        (["gc", "--max-size", "lots"], "is not a size"),
        (["gc", "--priority", "urgent"], "'background', 'normal'"),
        (["delete", "/nix/store/" + "0" * 32 + "-absent"], "no such store path"),
        (["pin", "name", "not-a-path"], "is not a store path"),
    ):
        result = tvix_store(home, *args, text=True)
        assert result.returncode in (1, 2), args
        assert message in result.stderr, (args, result.stderr)
    remote = tvix_store(
        home, "gc", "--blob-service-addr", "grpc+unix:///nonexistent.sock", text=True
    )
    assert remote.returncode == 1
    assert "cannot be garbage collected from here" in remote.stderr


def no_refresh_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writers refresh every object they find present (not only those older than
    WRITE_REFRESH), so a test's short grace periods are longer than the refresh interval."""
    monkeypatch.setattr(castore_gc, "WRITE_REFRESH", float(os.environ.get("GC_TEST_REFRESH", "0")))


def racing_tree(root: Path) -> Path:
    tree = make_tree(root / "tree", 5, shared_tree(root / "shared"))
    for i in range(300):  # enough files that the import takes a while
        (tree / "sub" / f"f{i}").write_bytes(random.Random(i).randbytes(2000 + 70 * i))
    return tree


async def race_reimport_with_gc(
    store: pytvix.Store, tree: Path, monkeypatch: pytest.MonkeyPatch, rounds: int = 12
) -> None:
    """Delete a path, then import the same tree again while a collection runs, `rounds` times:
    whatever the interleaving, the import's path is complete (dedup hits refresh objects)."""
    no_refresh_delay(monkeypatch)
    real_mark = gc_collect.mark

    async def slow_mark(*args: Any, **kwargs: Any) -> Any:
        live = await real_mark(*args, **kwargs)
        await asyncio.sleep(0.1)  # widen the window between mark and sweep
        return live

    monkeypatch.setattr(gc_collect, "mark", slow_mark)
    expected = nix_dump(tree)
    unreachable = 0  # rounds whose collection marked while the path was deleted
    grace = 0.0
    for attempt in range(rounds):
        started = time.monotonic()
        info = await store.import_path(tree)
        took = time.monotonic() - started
        # writes must finish within the grace period (README, "Garbage collection")
        grace = max(grace, 0.2, 2 * took)
        path = info.store_path.to_absolute_path()
        await asyncio.sleep(grace + 0.1)  # its objects are now older than the grace period
        await store.path_info.delete(info.store_path.digest)  # type: ignore[attr-defined]
        delay = random.Random(attempt).uniform(0, took)  # GC starts during the import

        async def gc_later(wait: float = delay, grace: float = grace) -> GcReport:
            await asyncio.sleep(wait)
            return await collect(store.services, GcOptions(grace=grace))

        _, report = await asyncio.gather(store.import_path(tree), gc_later())
        unreachable += report.roots == 0
        assert await store.dump(path) == expected, attempt
    assert unreachable > 0  # only the writers' refreshes kept the tree then


async def test_reimport_racing_gc_never_loses_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = racing_tree(tmp_path)
    async with await pytvix.open_store(home=tmp_path / "home") as store:
        await race_reimport_with_gc(store, tree, monkeypatch)


def test_gc_while_another_process_imports(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for round_ in range(3):
        tree = make_tree(
            tmp_path / f"big{round_}", 10 + round_, shared_tree(tmp_path / f"s{round_}")
        )
        for i in range(30):
            (tree / f"f{i}").write_bytes(os.urandom(20_000 + i))
        importer = subprocess.Popen(
            [sys.executable, "-m", "pytvix", "import", str(tree)],
            cwd=ROOT,
            env={**os.environ, "TVIX_STORE_HOME": str(home)},
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3):
            gc_json(home, "--grace", "60s")
        out, _ = importer.communicate(timeout=120)
        assert importer.returncode == 0
        assert tvix_store(home, "dump", out.strip()).stdout == nix_dump(tree)
    assert tvix_store(home, "verify").returncode == 0


def test_kill_9_during_gc_leaves_a_consistent_store(tmp_path: Path) -> None:
    home = tmp_path / "home"
    kept_tree = make_tree(tmp_path / "kept", 20)
    kept = tvix_store(home, "import", str(kept_tree), text=True, check=True).stdout.strip()
    rng = random.Random(7)
    for round_ in range(4):
        doomed = make_tree(tmp_path / f"doomed{round_}", 30 + round_)
        for i in range(200):
            (doomed / f"x{i}").write_bytes(rng.randbytes(rng.choice((100, 80_000))))
        path = tvix_store(home, "import", str(doomed), text=True, check=True).stdout.strip()
        tvix_store(home, "delete", path, check=True)
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytvix", "gc", "--grace", "0"],
            cwd=ROOT,
            env={**os.environ, "TVIX_STORE_HOME": str(home)},
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.2, 0.9))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        verify = tvix_store(home, "verify", text=True)
        assert verify.returncode == 0, verify.stdout
        assert tvix_store(home, "dump", kept).stdout == nix_dump(kept_tree)
        gc_json(home, "--grace", "0")  # finishes the job
        left = gc_json(home, "--grace", "0", "--dry-run")
        assert left["objects"]["blob"]["found"] == 2  # type: ignore[index]  # the kept path's
        assert "stray" not in left["objects"]  # type: ignore[operator]
