"""A real FUSE mount of the store: contents, modes, xattrs, random reads, read-only-ness,
concurrency, root listing, errors, shutdown; over the embedded store and over a daemon."""

from __future__ import annotations

import errno
import os
import random
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytvix.castore.digests import B3Digest
from pytvix.castore.fs.mount import READAHEAD_KB, _mount_device
from pytvix.testing.trees import make_tree
from tests.cli import tvix_store
from tests.fuse.conftest import mounted
from tests.grpc.daemon import daemon, service_flags


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """An embedded store with three random trees (one with a 20 MiB file) imported."""
    base = tmp_path_factory.mktemp("fuse")
    home = base / "home"
    trees = {}
    for seed in range(3):
        tree = make_tree(base / f"tree-{seed}", seed, big_file=(20 << 20) if seed == 0 else 0)
        out = tvix_store(home, "import", str(tree), check=True).stdout.decode().strip()
        trees[out.removeprefix("/nix/store/")] = tree
    return home, trees


@pytest.fixture(params=["embedded", "grpc"])
def mount(
    request: pytest.FixtureRequest, store: tuple[Path, dict[str, Path]], tmp_path: Path
) -> Iterator[tuple[Path, dict[str, Path]]]:
    home, trees = store
    if request.param == "embedded":
        with mounted(home, tmp_path / "mnt", "--list-root"):
            yield tmp_path / "mnt", trees
    else:
        sock = tmp_path / "d.sock"
        with (
            daemon(home, str(sock)),
            mounted(
                tmp_path / "unused",
                tmp_path / "mnt",
                "--list-root",
                *service_flags(f"grpc+unix://{sock}"),
            ),
        ):
            yield tmp_path / "mnt", trees


def walk(root: Path) -> Iterator[tuple[Path, os.stat_result]]:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            yield path, os.lstat(path)


def test_trees_equal_the_originals(mount: tuple[Path, dict[str, Path]]) -> None:
    mnt, trees = mount
    for basename, original in trees.items():
        result = subprocess.run(
            ["diff", "-r", "--no-dereference", str(original), str(mnt / basename)],
            capture_output=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout[:2000]
        for path, st in walk(mnt / basename):
            orig = os.lstat(original / path.relative_to(mnt / basename))
            if stat.S_ISDIR(st.st_mode):
                assert stat.S_IMODE(st.st_mode) == 0o555
            elif stat.S_ISLNK(st.st_mode):
                assert os.readlink(path) == os.readlink(original / path.relative_to(mnt / basename))
                assert st.st_size == orig.st_size
            else:
                assert stat.S_ISREG(st.st_mode)
                assert st.st_size == orig.st_size
                assert stat.S_IMODE(st.st_mode) == (0o555 if orig.st_mode & 0o100 else 0o444)


def test_xattrs(mount: tuple[Path, dict[str, Path]]) -> None:
    mnt, trees = mount
    basename, original = next(iter(trees.items()))
    big = mnt / basename / "big.bin"
    value = os.getxattr(big, "user.tvix.castore.blob.digest")
    assert B3Digest.parse(value.decode()) == B3Digest.of((original / "big.bin").read_bytes())
    assert os.listxattr(big) == ["user.tvix.castore.blob.digest"]
    assert os.getxattr(mnt / basename, "user.tvix.castore.directory.digest").startswith(b"b3:")
    with pytest.raises(OSError) as e:
        os.getxattr(big, "user.other")
    assert e.value.errno == errno.ENODATA
    getfattr = subprocess.run(
        ["getfattr", "-n", "user.tvix.castore.blob.digest", str(big)],
        capture_output=True,
        check=True,
        text=True,
    )
    assert value.decode() in getfattr.stdout


def test_random_offset_reads(mount: tuple[Path, dict[str, Path]]) -> None:
    mnt, trees = mount
    basename, original = next(iter(trees.items()))
    expected = (original / "big.bin").read_bytes()
    rng = random.Random(1)
    with open(mnt / basename / "big.bin", "rb", buffering=0) as f:
        for _ in range(200):
            offset = rng.randrange(len(expected) + 10)
            size = rng.choice([1, 100, 4096, 70_000, 1 << 20])
            f.seek(offset)
            assert f.read(size) == expected[offset : offset + size]


def test_sequential_reads_get_a_large_readahead(mount: tuple[Path, dict[str, Path]]) -> None:
    """The kernel's 128 KiB default for FUSE is raised (READAHEAD_KB), after the INIT
    handshake that would reset it."""
    mnt, _ = mount
    device = os.stat(mnt).st_dev
    bdi = Path(f"/sys/class/bdi/{os.major(device)}:{os.minor(device)}/read_ahead_kb")
    deadline = time.monotonic() + 10
    while int(bdi.read_text()) != READAHEAD_KB and time.monotonic() < deadline:
        time.sleep(0.05)
    assert int(bdi.read_text()) == READAHEAD_KB


def test_mount_device_is_found_for_escaped_paths(tmp_path: Path) -> None:
    """/proc/self/mountinfo escapes spaces and backslashes in mount points as octal."""
    mountpoint = tmp_path / "a b\\c"
    with mounted(tmp_path / "home", mountpoint):
        device = os.stat(mountpoint).st_dev
        found = _mount_device(os.path.realpath(mountpoint))
    assert found == f"{os.major(device)}:{os.minor(device)}"


def test_writes_fail_with_erofs(mount: tuple[Path, dict[str, Path]]) -> None:
    mnt, trees = mount
    basename = next(iter(trees))
    target = mnt / basename / "big.bin"
    attempts = [
        lambda: open(target, "ab"),
        lambda: open(mnt / basename / "new", "wb"),
        lambda: os.mkdir(mnt / basename / "newdir"),
        lambda: os.rename(target, mnt / basename / "renamed"),
        lambda: os.chmod(target, 0o777),
        lambda: os.unlink(target),
        lambda: os.symlink("x", mnt / basename / "newlink"),
        lambda: open(mnt / "toplevel", "wb"),
    ]
    for attempt in attempts:
        with pytest.raises(OSError) as e:
            attempt()
        assert e.value.errno == errno.EROFS


def test_concurrent_readers(mount: tuple[Path, dict[str, Path]]) -> None:
    mnt, trees = mount
    files = []
    for basename, original in trees.items():
        for path, st in walk(original):
            if stat.S_ISREG(st.st_mode) and st.st_size > 1000:
                files.append((mnt / basename / path.relative_to(original), path))
    files = files[:20]
    errors: list[str] = []

    def reader(i: int) -> None:
        rng = random.Random(i)
        for _ in range(15):
            mounted_path, original_path = files[0] if i % 2 else rng.choice(files)
            if mounted_path.read_bytes() != original_path.read_bytes():
                errors.append(str(mounted_path))

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_root_listing_and_lookup(mount: tuple[Path, dict[str, Path]]) -> None:
    mnt, trees = mount
    assert sorted(os.listdir(mnt)) == sorted(trees)
    assert not (mnt / ("0" * 32 + "-nope")).exists()
    assert not (mnt / "not-a-store-path").exists()


def test_identical_content_shares_inodes(
    store: tuple[Path, dict[str, Path]], tmp_path: Path
) -> None:
    home, _ = store
    tree = tmp_path / "dups"
    (tree / "a").mkdir(parents=True)
    (tree / "a" / "x").write_bytes(b"same")
    (tree / "y").write_bytes(b"same")
    (tree / "b").mkdir()
    (tree / "b" / "x").write_bytes(b"same")
    basename = (
        tvix_store(home, "import", str(tree), check=True).stdout.decode().strip().split("/")[-1]
    )
    with mounted(home, tmp_path / "mnt"):
        root = tmp_path / "mnt" / basename
        assert os.stat(root / "y").st_ino == os.stat(root / "a" / "x").st_ino
        assert os.stat(root / "a").st_ino == os.stat(root / "b").st_ino
        assert os.stat(root / "a").st_ino != os.stat(root / "y").st_ino
        # without --list-root the root cannot be listed, but lookups work
        with pytest.raises(PermissionError):
            os.listdir(tmp_path / "mnt")
        assert (root / "y").read_bytes() == b"same"


def nix_hash(path: Path) -> str:
    return subprocess.run(
        ["nix-hash", "--type", "sha256", str(path)], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_same_bytes_executable_and_not_keep_their_modes(tmp_path: Path) -> None:
    """Inodes are keyed by content and executable bit: in one tree and across store paths,
    whichever copy the kernel meets first, every mounted path hashes like its original."""
    home = tmp_path / "home"
    one = tmp_path / "one"
    (one / "sub").mkdir(parents=True)
    for path, executable in ((one / "a", False), (one / "b", True), (one / "sub" / "c", True)):
        path.write_bytes(b"#!/bin/sh\necho same bytes\n")
        path.chmod(0o755 if executable else 0o644)
    two = tmp_path / "two"
    two.mkdir()
    (two / "only-exec").write_bytes(b"#!/bin/sh\necho same bytes\n")
    (two / "only-exec").chmod(0o755)
    (two / "plain").write_bytes(b"other")
    three = tmp_path / "three"
    three.mkdir()
    (three / "only-plain").write_bytes(b"#!/bin/sh\necho same bytes\n")
    originals = {}
    for tree in (three, two, one):  # the plain copy is imported (and met) first
        out = tvix_store(home, "import", str(tree), check=True).stdout.decode().strip()
        originals[out.removeprefix("/nix/store/")] = tree
    with mounted(home, tmp_path / "mnt"):
        mnt = tmp_path / "mnt"
        for basename, original in originals.items():
            assert nix_hash(mnt / basename) == nix_hash(original), basename
        root = mnt / next(b for b, t in originals.items() if t == one)
        assert os.stat(root / "a").st_ino != os.stat(root / "b").st_ino
        assert os.stat(root / "b").st_ino == os.stat(root / "sub" / "c").st_ino
        assert stat.S_IMODE(os.stat(root / "a").st_mode) == 0o444
        assert stat.S_IMODE(os.stat(root / "b").st_mode) == 0o555


def test_listings_have_dot_entries(store: tuple[Path, dict[str, Path]], tmp_path: Path) -> None:
    home, trees = store
    with mounted(home, tmp_path / "mnt", "--list-root"):
        mnt = tmp_path / "mnt"
        basename = sorted(trees)[0]
        listing = subprocess.run(
            ["ls", "-a1", str(mnt / basename)], capture_output=True, text=True, check=True
        ).stdout.split("\n")
        assert listing[:2] == [".", ".."]
        # (names may hold newlines: compare the lines, not the names)
        assert sorted(listing[2:-1]) == sorted("\n".join(os.listdir(trees[basename])).split("\n"))
        root_listing = subprocess.run(
            ["ls", "-a1", str(mnt)], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        assert root_listing[:2] == [".", ".."]
        assert set(trees) <= set(root_listing[2:])  # (other tests import into this store too)
        # os.listdir (no dots) and stat of the dots still agree with the tree
        assert sorted(os.listdir(mnt / basename)) == sorted(os.listdir(trees[basename]))
        assert os.stat(mnt / basename / ".").st_ino == os.stat(mnt / basename).st_ino
        assert os.stat(mnt / basename / "..").st_ino == os.stat(mnt).st_ino


def test_missing_blob_is_eio_and_mount_keeps_serving(tmp_path: Path) -> None:
    home = tmp_path / "home"
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "victim").write_bytes(os.urandom(2 << 20))
    (tree / "fine").write_bytes(b"still here")
    basename = (
        tvix_store(home, "import", str(tree), check=True).stdout.decode().strip().split("/")[-1]
    )
    [victim] = (home / "data").glob("??/*")  # the one blob large enough for a file
    victim.unlink()
    with mounted(home, tmp_path / "mnt") as proc:
        with pytest.raises(OSError) as e:
            (tmp_path / "mnt" / basename / "victim").read_bytes()
        assert e.value.errno == errno.EIO
        assert (tmp_path / "mnt" / basename / "fine").read_bytes() == b"still here"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        log = proc.stderr.read().decode() if proc.stderr else ""
    assert f"/nix/store/{basename}" in log
    assert not os.path.ismount(tmp_path / "mnt")


def test_fusermount_unmount_ends_cleanly(
    store: tuple[Path, dict[str, Path]], tmp_path: Path
) -> None:
    home, _ = store
    with mounted(home, tmp_path / "mnt") as proc:
        subprocess.run(["fusermount3", "-u", str(tmp_path / "mnt")], check=True)
        assert proc.wait(timeout=30) == 0
    assert not os.path.ismount(tmp_path / "mnt")
