"""The file system's operations without a mount: nothing is fetched before it is needed, a
read at an offset of a chunked blob fetches only the chunks it touches, errors are EIO."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pyfuse3
import pytest

from pytvix.castore.blobservice.objectstore import ObjectStoreBlobService
from pytvix.castore.digests import B3Digest
from pytvix.castore.directoryservice.memory import MemoryDirectoryService
from pytvix.castore.drivers.objectstore import open_object_store
from pytvix.castore.fs.filesystem import CastoreFs
from pytvix.castore.fs.inodes import ROOT_INODE
from pytvix.castore.ingest.fs import ingest_path
from pytvix.castore.object_layout import chunk_key
from pytvix.nixcompat.store_path import build_source_path
from pytvix.store.fs import StorePathRoots
from pytvix.store.path_info import PathInfo
from pytvix.store.pathinfoservice.memory import MemoryPathInfoService
from tests.counting_store import CountingStore


class CountingDirectories(MemoryDirectoryService):
    def __init__(self) -> None:
        super().__init__()
        self.gets = 0

    async def get(self, digest):  # type: ignore[no-untyped-def]
        self.gets += 1
        return await super().get(digest)


async def test_lazy_fetching(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    (tree / "sub").mkdir(parents=True)
    data = os.urandom(3 << 20)
    (tree / "sub" / "big").write_bytes(data)
    (tree / "small").write_bytes(b"x")
    store = CountingStore(f"file://{tmp_path}/blobs")
    blobs = ObjectStoreBlobService(store, avg_chunk_size=65536)
    dirs = CountingDirectories()
    path_infos = MemoryPathInfoService()
    node, _ = await ingest_path(tree, blobs, dirs)
    store_path = build_source_path("t", bytes(32))
    await path_infos.put(PathInfo(store_path, node))
    store.gets.clear()
    dirs.gets = 0
    fs = CastoreFs(StorePathRoots(path_infos), blobs, dirs)
    assert (store.gets, dirs.gets) == ([], 0), "nothing is fetched before it is used"
    root = await fs.lookup(ROOT_INODE, str(store_path).encode())
    assert dirs.gets == 0, "looking up a store path does not fetch its directory"
    sub = await fs.lookup(root.st_ino, b"sub")
    assert dirs.gets == 1
    big = await fs.lookup(sub.st_ino, b"big")
    assert dirs.gets == 2
    assert big.st_size == len(data)
    assert store.gets == [], "no blob is fetched by lookups"
    info = await fs.open(big.st_ino, os.O_RDONLY)
    assert info.keep_cache
    offset = 2 << 20
    assert await fs.read(info.fh, offset, 4096) == data[offset : offset + 4096]
    chunks = await blobs.chunks(B3Digest.of(data))
    assert chunks is not None
    assert len(chunks) > 20
    # (the first fetch tries the blob's digest as a chunk, as upstream; it is not one)
    fetched = {k for k in store.gets if k.startswith("chunks/")} - {chunk_key(B3Digest.of(data))}
    assert fetched <= {chunk_key(c.digest) for c in chunks}
    assert 1 <= len(fetched) <= 6, "a read fetches the chunks around it, not the whole blob"
    await fs.release(info.fh)


async def test_errors(tmp_path: Path) -> None:
    blobs = ObjectStoreBlobService(open_object_store(f"file://{tmp_path}/blobs"))
    dirs = MemoryDirectoryService()
    path_infos = MemoryPathInfoService()
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "f").write_bytes(b"contents")
    (tree / "l").symlink_to("f")
    node, _ = await ingest_path(tree, blobs, dirs)
    store_path = build_source_path("t", bytes(32))
    await path_infos.put(PathInfo(store_path, node))
    fs = CastoreFs(StorePathRoots(path_infos), blobs, dirs, show_xattr=False)
    for name in (b"not-a-store-path", b"00000000000000000000000000000000-x"):
        with pytest.raises(pyfuse3.FUSEError) as e:
            await fs.lookup(ROOT_INODE, name)
        assert e.value.errno == errno.ENOENT
    with pytest.raises(pyfuse3.FUSEError) as e:
        await fs.opendir(ROOT_INODE)
    assert e.value.errno == errno.EPERM
    root = await fs.lookup(ROOT_INODE, str(store_path).encode())
    with pytest.raises(pyfuse3.FUSEError) as e:
        await fs.open(root.st_ino, os.O_RDONLY)
    assert e.value.errno == errno.EISDIR
    with pytest.raises(pyfuse3.FUSEError) as e:
        await fs.open(ROOT_INODE, os.O_RDONLY)
    assert e.value.errno == errno.ENOSYS
    link = await fs.lookup(root.st_ino, b"l")
    assert await fs.readlink(link.st_ino) == b"f"
    f = await fs.lookup(root.st_ino, b"f")
    with pytest.raises(pyfuse3.FUSEError) as e:
        await fs.readlink(f.st_ino)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(pyfuse3.FUSEError) as e:
        await fs.getxattr(f.st_ino, b"user.tvix.castore.blob.digest")
    assert e.value.errno == errno.ENOSYS
    # the blob disappears: reads answer EIO
    (tmp_path / "blobs" / chunk_key(B3Digest.of(b"contents"))).unlink()
    info = await fs.open(f.st_ino, os.O_RDONLY)
    with pytest.raises(pyfuse3.FUSEError) as e:
        await fs.read(info.fh, 0, 100)
    assert e.value.errno == errno.EIO
