"""Seeded random file trees for tests and benchmarks: empty files and directories, executable
files, relative/absolute/dangling symlinks, names with spaces, unicode and odd bytes, deep
nesting, and optionally a large file. The same seed always yields the same tree."""

from __future__ import annotations

import os
import random
from pathlib import Path

ODD_NAMES = [
    b"with space",
    "ünïcödé".encode(),
    "日本語".encode(),
    b"\x01ctrl",
    b"\xff\xfe not utf-8",
    b"-dash",
    b".hidden",
    b"a" * 255,
    b"tab\there",
    b"new\nline",
    b"back\\slash",
    b"...",
]


def _name(rng: random.Random, taken: set[bytes]) -> bytes:
    while True:
        if rng.random() < 0.2:
            name = rng.choice(ODD_NAMES)
        else:
            name = f"n{rng.randrange(10**6)}".encode()
        if name not in taken:
            taken.add(name)
            return name


def make_tree(
    root: str | os.PathLike[str],
    seed: int,
    *,
    entries: int = 150,
    max_file: int = 300_000,
    deep: int = 40,
    big_file: int = 0,
) -> Path:
    """Create a tree at `root` (must not exist) and return it."""
    rng = random.Random(seed)
    base = os.fsencode(root)
    os.mkdir(base)
    dirs: list[tuple[bytes, set[bytes]]] = [(base, set())]
    for _ in range(entries):
        parent, taken = rng.choice(dirs)
        path = parent + b"/" + _name(rng, taken)
        kind = rng.random()
        if kind < 0.2:
            os.mkdir(path)
            dirs.append((path, set()))
        elif kind < 0.35:
            target = rng.choice(
                [b"../elsewhere", b"/nix/store/somewhereelse", b"dangling", b".", b"..", b"a/b/c"]
            )
            os.symlink(target, path)
        else:
            size = rng.choice([0, 0, 1, 7, 8, 9, 100, 4096, rng.randrange(max_file + 1)])
            with open(path, "wb") as f:
                f.write(rng.randbytes(size))
            os.chmod(path, 0o755 if rng.random() < 0.25 else 0o644)
    chain = base
    for i in range(deep):
        chain += f"/d{i}".encode()
        os.mkdir(chain)
    with open(chain + b"/leaf", "wb") as f:
        f.write(b"deep")
    if big_file:
        with open(base + b"/big.bin", "wb") as f:
            remaining = big_file
            while remaining:
                n = min(remaining, 8 << 20)
                f.write(rng.randbytes(n))
                remaining -= n
    return Path(os.fsdecode(base))
