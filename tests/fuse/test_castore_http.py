"""A FUSE mount and `tvix-store dump` over castore+http:// from Debian's nginx caching what
another process fetched through `tvix-store serve-castore`: served from the cache alone once
the origin is gone, and, with a corrupt object in nginx's cache, an error for what it spoils
(one mirror) or the origin's verified bytes (two mirrors, the corrupt one named in the log)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pytvix.castore.digests import B3Digest
from pytvix.testing.trees import make_tree
from tests.cli import ROOT, tvix_store
from tests.fuse.conftest import mounted
from tests.grpc.daemon import service_flags
from tests.servers import free_port, wait_for_port
from tests.servers.nginx import CachingProxy, caching_proxy

pytestmark = pytest.mark.fuse

BIG = 3 << 20


@contextmanager
def serve_castore(home: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`tvix-store serve-castore` over the embedded store at `home` on 127.0.0.1:`port`."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytvix", "serve-castore", "-l", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env={**os.environ, "TVIX_STORE_HOME": str(home)},
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc, lambda: "serve-castore did not start")
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def flags(home: Path, *bases: str) -> list[str]:
    """Service flags: blobs and directories from the castore mirrors, path infos local."""
    url = f"castore+{bases[0]}" + "".join(
        f"{'?' if i == 0 else '&'}mirror={b}" for i, b in enumerate(bases[1:])
    )
    return service_flags(url, f"lmdb://{home / 'store.lmdb'}")


def dump(home: Path, path: str, *bases: str) -> subprocess.CompletedProcess[bytes]:
    return tvix_store(home, "dump", path, *flags(home, *bases))


def same_tree(mnt: Path, original: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(original):
        rel = Path(dirpath).relative_to(original)
        for name in dirnames + filenames:
            source, mounted_path = Path(dirpath) / name, mnt / rel / name
            if source.is_symlink():
                assert os.readlink(mounted_path) == os.readlink(source)
            elif source.is_file():
                assert mounted_path.read_bytes() == source.read_bytes(), rel / name


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str, bytes]:
    """An embedded store with a tree (small files and one of 3 MiB) imported: home, tree,
    store path, NAR."""
    base = tmp_path_factory.mktemp("castore-http")
    home = base / "home"
    tree = make_tree(base / "tree", 3, big_file=BIG)
    path = tvix_store(home, "import", str(tree), check=True).stdout.decode().strip()
    nar = tvix_store(home, "dump", path, check=True).stdout
    return home, tree, path, nar


def big_blob(tree: Path) -> tuple[Path, B3Digest]:
    big = next(p for p in tree.rglob("*") if p.is_file() and p.stat().st_size == BIG)
    return big, B3Digest.of(big.read_bytes())


def corrupt_cached_stream(proxy: CachingProxy, digest: B3Digest) -> None:
    """Flip a byte in the middle of the blob's cached encoded stream (its body is the file's
    tail: nginx keeps a header and the upstream's response headers before it)."""
    cached = proxy.cache_file(f"/castore/blob/{digest.hex()}/bao")
    assert cached.exists(), "the blob's stream was not cached"
    data = bytearray(cached.read_bytes())
    data[len(data) - BIG // 2] ^= 1
    cached.write_bytes(bytes(data))


def test_mount_and_dump_through_a_caching_proxy(
    store: tuple[Path, Path, str, bytes], tmp_path: Path
) -> None:
    home, tree, path, nar = store
    origin_port = free_port()
    origin_url = f"http://127.0.0.1:{origin_port}"
    basename = path.removeprefix("/nix/store/")
    big, digest = big_blob(tree)
    with caching_proxy(tmp_path / "nginx", origin_port) as proxy:
        with serve_castore(home, origin_port):
            # another process fills nginx's cache: a dump and a mount, read through it
            assert dump(home, path, proxy.url).stdout == nar
            with mounted(home, tmp_path / "fill", *flags(home, proxy.url)):
                same_tree(tmp_path / "fill" / basename, tree)
        assert any(line.endswith(" MISS") for line in proxy.log())
        # the origin is gone: everything comes from nginx's cache, verified
        assert dump(home, path, proxy.url).stdout == nar
        with mounted(home, tmp_path / "mnt", *flags(home, proxy.url)):
            same_tree(tmp_path / "mnt" / basename, tree)
        hits = [line for line in proxy.log() if line.endswith(" HIT")]
        assert any(f"/castore/blob/{digest.hex()}/bao " in line for line in hits)

        corrupt_cached_stream(proxy, digest)
        # nginx alone: the spoiled range is an error, the rest of the tree reads
        failed = dump(home, path, proxy.url)
        assert failed.returncode != 0
        assert str(digest) in failed.stderr.decode()
        with mounted(home, tmp_path / "bad", *flags(home, proxy.url)):
            mnt = tmp_path / "bad" / basename
            with pytest.raises(OSError):  # EIO
                (mnt / big.relative_to(tree)).read_bytes()
            for small in tree.rglob("*"):
                if small.is_file() and not small.is_symlink() and small != big:
                    assert (mnt / small.relative_to(tree)).read_bytes() == small.read_bytes()
        # nginx and the origin as mirrors: the origin's bytes, nginx named as the culprit
        with serve_castore(home, origin_port):
            second = dump(home, path, proxy.url, origin_url)
            assert second.returncode == 0
            assert second.stdout == nar
            assert f"castore mirror {proxy.url} failed" in second.stderr.decode()
            with mounted(home, tmp_path / "two", *flags(home, proxy.url, origin_url)) as mount_proc:
                mnt = tmp_path / "two" / basename
                assert (mnt / big.relative_to(tree)).read_bytes() == big.read_bytes()
                same_tree(mnt, tree)
            assert mount_proc.stderr is not None
            assert f"castore mirror {proxy.url} failed" in mount_proc.stderr.read().decode()
