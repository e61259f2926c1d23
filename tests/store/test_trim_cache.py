"""`tvix-store trim-cache`: a near blob cache shrinks to its budget on its own, the far store
untouched, and every path still reads whole (refilling the near store)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.cli import tvix_store
from tests.store.test_gc import nix_dump

COMPOSITION = """
[blobservices.default]
type = "{kind}"
{near} = "near"
{far} = "far"

[blobservices.near]
type = "{near_type}"
{near_location}

[blobservices.far]
type = "objectstore"
object_store_url = "file://{root}/far"
object_store_options = {{}}

[directoryservices.default]
type = "lmdb"
path = "{root}/directories"

[pathinfoservices.default]
type = "lmdb"
path = "{root}/pathinfo"
"""

NEAR = {
    "objectstore": 'object_store_url = "file://{root}/near"\nobject_store_options = {{}}',
    "local": 'path = "{root}/near"',
}


def composition(root: Path, kind: str, near_type: str) -> Path:
    names = ("near", "far") if kind == "cache" else ("local", "remote")
    text = COMPOSITION.format(
        kind=kind,
        near=names[0],
        far=names[1],
        near_type=near_type,
        near_location=NEAR[near_type].format(root=root),
        root=root,
    )
    path = root / "store.toml"
    path.write_text(text)
    return path


def trees(root: Path) -> list[Path]:
    out = []
    rng = random.Random(3)
    for i in range(4):
        tree = root / f"tree{i}"
        (tree / "sub").mkdir(parents=True)
        (tree / "small").write_bytes(rng.randbytes(2000))
        (tree / "sub" / "big").write_bytes(rng.randbytes(1_500_000))  # chunked
        out.append(tree)
    return out


def size_of(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def listing(directory: Path) -> dict[str, int]:
    return {str(p.relative_to(directory)): p.stat().st_mtime_ns for p in directory.rglob("*")}


@pytest.mark.parametrize("near_type", ["objectstore", "local"])
def test_a_cache_trims_its_near_store_only(tmp_path: Path, near_type: str) -> None:
    config = composition(tmp_path, "cache", near_type)
    store = ["--experimental-store-composition", str(config)]
    paths = {}
    for tree in trees(tmp_path):
        result = tvix_store(None, "import", *store, str(tree), text=True, check=True)
        paths[tree] = result.stdout.strip()
    assert size_of(tmp_path / "near") < 100_000  # writes went to far
    for tree, path in paths.items():  # reads fill the near store
        assert tvix_store(None, "dump", *store, path).stdout == nix_dump(tree)
    filled = size_of(tmp_path / "near")
    assert filled > 4 * 1_500_000
    far = listing(tmp_path / "far")
    budget = filled // 2

    dry = tvix_store(None, "trim-cache", *store, "--max-size", str(budget), "--dry-run", "--json")
    assert json.loads(dry.stdout)["evicted"] > 0
    assert size_of(tmp_path / "near") == filled  # a dry run changes nothing

    report = json.loads(
        tvix_store(None, "trim-cache", *store, "--max-size", str(budget), "--json").stdout
    )
    assert report["evicted"] > 0
    assert size_of(tmp_path / "near") <= budget + 200_000  # LMDB's own pages aside
    assert listing(tmp_path / "far") == far  # the far store was not touched
    for tree, path in paths.items():  # every path reads whole, refilling
        assert tvix_store(None, "dump", *store, path).stdout == nix_dump(tree)
    verify = tvix_store(None, "verify", *store, text=True)
    assert verify.returncode == 0, verify.stdout


def test_combined_keeps_what_only_its_local_store_holds(tmp_path: Path) -> None:
    config = composition(tmp_path, "combined", "objectstore")
    store = ["--experimental-store-composition", str(config)]
    tree = trees(tmp_path)[0]
    path = tvix_store(None, "import", *store, str(tree), text=True, check=True).stdout.strip()
    report = json.loads(tvix_store(None, "trim-cache", *store, "--max-size", "0", "--json").stdout)
    assert report["kept_local_only"] == 2  # written through combined: local is its only copy
    assert tvix_store(None, "dump", *store, path).stdout == nix_dump(tree)


def test_a_store_without_a_cache_says_so(tmp_path: Path) -> None:
    result = tvix_store(tmp_path, "trim-cache", "--max-size", "1G", text=True)
    assert result.returncode == 1
    assert "is not a cache: there is nothing to trim" in result.stderr
