"""NAR bytes, store paths and exported trees are identical with real Nix."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from pytvix.castore.export import export_node
from pytvix.store.composition import StoreServices, open_store_from_urls
from pytvix.store.import_ import import_path
from pytvix.store.nar.io import ListSink
from pytvix.store.nar.render import render_nar
from pytvix.testing.trees import make_tree
from tests.cli import tvix_store

ROOT = Path(__file__).resolve().parents[2]


def nix(*args: str | os.PathLike[str]) -> bytes:
    return subprocess.run(["nix-store", *map(str, args)], check=True, capture_output=True).stdout


def nix_hash(path: Path) -> str:
    return subprocess.run(
        ["nix-hash", "--type", "sha256", str(path)], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
async def services(tmp_path: Path):  # type: ignore[no-untyped-def]
    svc = await open_store_from_urls(
        f"objectstore+file://{tmp_path}/store/blobs",
        f"lmdb://{tmp_path}/store/db",
        f"lmdb://{tmp_path}/store/db",
    )
    yield svc
    await svc.close()


@pytest.mark.parametrize("seed", range(6))
async def test_random_tree_matches_nix(tmp_path: Path, services: StoreServices, seed: int) -> None:
    tree = make_tree(tmp_path / f"tree-{seed}", seed)
    imported = await import_path(tree, services)
    info = imported.info
    # store path equals nix-store --add
    assert info.store_path.to_absolute_path() == nix("--add", tree).decode().strip()
    # NAR bytes equal nix-store --dump
    expected = nix("--dump", tree)
    assert (info.nar_size, info.nar_sha256) == (len(expected), hashlib.sha256(expected).digest())
    sink = ListSink()
    await render_nar(sink, info.node, services.blob, services.directory)
    assert sink.getvalue() == expected
    # export, then nix-hash equals the original's
    out = tmp_path / "exported"
    await export_node(info.node, out, services.blob, services.directory)
    assert nix_hash(out) == nix_hash(tree)
    assert imported.stats is not None
    assert imported.stats.files > 0


@pytest.mark.slow
def test_cli_round_trip_with_large_file(tmp_path: Path) -> None:
    """Files over 64 MiB, through the command line: import, dump, export, import-nar."""
    tree = make_tree(tmp_path / "bigtree", 99, big_file=80 << 20)
    home = tmp_path / "home"
    result = tvix_store(home, "import", str(tree))
    assert result.returncode == 0, result.stderr
    store_path = result.stdout.decode().strip()
    assert store_path == nix("--add", tree).decode().strip()
    assert b"imported 1 path(s)" in result.stderr
    dumped = tvix_store(home, "dump", store_path)
    assert dumped.returncode == 0, dumped.stderr
    expected = nix("--dump", tree)
    assert dumped.stdout == expected
    out = tmp_path / "out"
    exported = tvix_store(home, "export", store_path, str(out))
    assert exported.returncode == 0, exported.stderr
    assert nix_hash(out) == nix_hash(tree)
    # the same NAR imported through import-nar gives the same store path
    nar_file = tmp_path / "bigtree.nar"
    nar_file.write_bytes(expected)
    again = tvix_store(tmp_path / "home2", "import-nar", str(nar_file))
    assert again.returncode == 0, again.stderr
    assert again.stdout.decode().strip() == store_path
