"""Byte identity with real Nix: `nix-store --dump` of random trees, parsed and re-written."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest

from pytvix.store.nar import BytesSource, NarReader
from tests.store.nar.helpers import Dir, Reg, Sym, Tree, parse, read_tree, recopy, write_tree

pytestmark = pytest.mark.compat

NAMES = [
    b"a",
    b"B",
    b"with space",
    "ünïcödé ☃".encode(),
    b"\x01odd",
    b"\xff\xfe",
    b"-dash",
    b".hidden",
    b"..dots",
    b"tab\there",
    b"new\nline",
    b"x" * 255,
    b"~",
]
TARGETS = [
    b"a",
    b"../up",
    b"/nix/store/somewhereelse",
    b"dangling/nowhere",
    b"\xff\x01",
    b"t" * 1000,
]


def nix_dump(path: bytes) -> bytes:
    return subprocess.run(["nix-store", "--dump", path], check=True, capture_output=True).stdout


def make_file(path: bytes, contents: bytes, executable: bool) -> Reg:
    with open(path, "wb") as f:
        f.write(contents)
    os.chmod(path, 0o755 if executable else 0o644)
    return Reg(contents, executable)


def make_tree(rng: random.Random, path: bytes, depth: int) -> Dir:
    os.mkdir(path)
    entries: dict[bytes, Tree] = {}
    for _ in range(rng.randint(0, 7)):
        name = rng.choice([*NAMES, bytes(rng.choices(b"abcxyz019_.", k=rng.randint(1, 12)))])
        if name in entries or name in (b".", b".."):
            continue
        child = path + b"/" + name
        kind = rng.random()
        if kind < 0.4:
            size = rng.choice([0, 1, 7, 8, 9, 100, 4096, 70_000])
            entries[name] = make_file(child, rng.randbytes(size), rng.random() < 0.3)
        elif kind < 0.6:
            target = rng.choice(TARGETS)
            os.symlink(target, child)
            entries[name] = Sym(target)
        elif depth < 4:
            entries[name] = make_tree(rng, child, depth + 1)
        else:
            os.mkdir(child)
            entries[name] = Dir()
    return Dir(tuple(sorted(entries.items())))


def with_entry(tree: Dir, name: bytes, child: Tree) -> Dir:
    return Dir(tuple(sorted([*tree.entries, (name, child)])))


async def check(path: bytes, expected: Tree) -> None:
    nar = nix_dump(path)
    assert await write_tree(expected) == nar
    assert await parse(nar) == expected
    assert await parse(nar, max_read=4093) == expected
    assert await recopy(nar) == nar
    assert await recopy(nar, max_read=1000) == nar


@pytest.mark.parametrize("seed", range(8))
async def test_random_tree(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    root = bytes(tmp_path) + b"/root"
    tree = make_tree(rng, root, 0)
    if seed == 0:  # a deep chain and a large file
        deep = root + b"/deep" + b"/d" * 99
        os.makedirs(deep)
        chain: Tree = Dir(((b"bottom", make_file(deep + b"/bottom", b"", False)),))
        for _ in range(99):
            chain = Dir(((b"d", chain),))
        tree = with_entry(tree, b"deep", chain)
        big = rng.randbytes(3 * 1024 * 1024 + 5)
        tree = with_entry(tree, b"large", make_file(root + b"/large", big, True))
    await check(root, tree)


async def test_root_file_and_symlink(tmp_path: Path) -> None:
    base = bytes(tmp_path)
    await check(base + b"/f", make_file(base + b"/f", b"#!/bin/sh\n", True))
    await check(base + b"/e", make_file(base + b"/e", b"", False))
    os.symlink(b"/nix/store/somewhereelse", base + b"/s")
    await check(base + b"/s", Sym(b"/nix/store/somewhereelse"))
    os.mkdir(base + b"/empty")
    await check(base + b"/empty", Dir())


async def test_sorting_is_bytewise(tmp_path: Path) -> None:
    root = bytes(tmp_path) + b"/r"
    os.mkdir(root)
    names = [b"a", b"B", b"_", b"\xc3\xa4", b"\x7f", b"\x01", b"aa", b"a-", b"A"]
    for name in names:
        make_file(root + b"/" + name, name, False)
    nar = nix_dump(root)
    tree = await read_tree(NarReader(BytesSource(nar)))
    assert isinstance(tree, Dir)
    assert [name for name, _ in tree.entries] == sorted(names)
    assert await recopy(nar) == nar
