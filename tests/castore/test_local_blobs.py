"""The local blob store: every read verified (ranges group by group), corruption reported for
exactly what it touches, interrupted writes invisible, and stores of the old layout migrated."""

from __future__ import annotations

import os
import random
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import lmdb
import pytest

from pytvix.castore.bao import GROUP
from pytvix.castore.blobservice import put_blob, read_blob
from pytvix.castore.blobservice.local import LocalBlobService
from pytvix.castore.composition import BLOB_SERVICES, from_addr
from pytvix.castore.digests import B3Digest
from pytvix.castore.errors import StorageError
from tests.cli import tvix_store

BIG = 40 * GROUP + 123


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalBlobService]:
    service = await from_addr(BLOB_SERVICES, f"local://{tmp_path}")
    assert isinstance(service, LocalBlobService)
    yield service
    await service.close()


def flip(path: Path, offset: int) -> None:
    path.chmod(0o644)
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 1]))


async def test_ranges_are_verified_group_by_group(store: LocalBlobService) -> None:
    data = random.Random(1).randbytes(BIG)
    digest = await put_blob(store, data)
    path = Path(store.files.path(digest.hex()))
    flip(path, 17 * GROUP + 5)
    reader = await store.open_read(digest)
    assert reader is not None
    async with reader:
        # groups before and after the damaged one still read correctly
        assert await reader.read_at(0, 17 * GROUP) == data[: 17 * GROUP]
        assert await reader.read_at(18 * GROUP, 100) == data[18 * GROUP : 18 * GROUP + 100]
        assert await reader.read_at(BIG - 7, 100) == data[BIG - 7 :]
        with pytest.raises(StorageError, match=f"corrupt at bytes {17 * GROUP}-{18 * GROUP}"):
            await reader.read_at(17 * GROUP + 1000, 10)
        with pytest.raises(StorageError, match=str(B3Digest(digest))):
            await reader.read_at(0, BIG)


async def test_a_corrupt_outboard_or_inline_value_is_never_returned(
    store: LocalBlobService, tmp_path: Path
) -> None:
    big = random.Random(2).randbytes(BIG)
    small = b"small blob"
    big_digest, small_digest = await put_blob(store, big), await put_blob(store, small)
    await store.close()
    env = lmdb.open(str(tmp_path / "store.lmdb"), max_dbs=8)
    with env.begin(write=True) as txn:
        files, blobs = env.open_db(b"blob_file", txn=txn), env.open_db(b"blob", txn=txn)
        record = bytearray(txn.get(big_digest, db=files))
        record[8 + 64 * 3] ^= 1  # a pair somewhere below the root
        txn.put(big_digest, bytes(record), db=files)
        txn.put(small_digest, b"smalL blob", db=blobs)
    env.close()
    service = await from_addr(BLOB_SERVICES, f"local://{tmp_path}")
    try:
        with pytest.raises(StorageError, match="corrupt"):
            await read_blob(service, small_digest)
        with pytest.raises(StorageError, match="corrupt"):
            await read_blob(service, big_digest)
    finally:
        await service.close()


async def test_interrupted_writes_leave_nothing_visible(store: LocalBlobService) -> None:
    data = random.Random(3).randbytes(BIG)
    writer = await store.open_write()
    await writer.write(data)
    await writer.abort()
    assert list(Path(store.files.staging_dir).iterdir()) == []
    # a blob file whose record never committed (a crash between the two) is no blob
    digest = B3Digest.of(data)
    path = Path(store.files.path(digest.hex()))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    assert not await store.has(digest)
    assert await store.open_read(digest) is None
    # writing it for real records it (the file is replaced by the same bytes)
    assert await put_blob(store, data) == digest
    assert await read_blob(store, digest) == data


async def test_sizes_around_the_inline_limit_and_groups(store: LocalBlobService) -> None:
    rng = random.Random(4)
    for size in (0, 1, GROUP - 1, GROUP, GROUP + 1, store.inline_max, store.inline_max + 1, BIG):
        data = rng.randbytes(size)
        digest = await put_blob(store, data)
        assert await read_blob(store, digest) == data
        record = store.record(digest)
        assert record is not None
        assert record.inline == (size <= store.inline_max)
    written = await store.put_many([b"a" * n for n in (1, 70_000, 70_000, 5)])
    assert [new for _, new in written] == [1, 70_000, 0, 5]  # the repeat deduplicated


def test_old_layout_store_is_migrated(tmp_path: Path) -> None:
    home = tmp_path / "home"
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "big").write_bytes(os.urandom(3 << 20))
    (tree / "sub" / "small").write_text("small\n")
    old = ["--blob-service-addr", f"objectstore+file://{home}/blobs"]
    store_path = tvix_store(home, "import", *old, str(tree), text=True, check=True).stdout.strip()
    nar = subprocess.run(["nix-store", "--dump", str(tree)], capture_output=True, check=True)
    before = tvix_store(home, "dump", store_path)
    assert before.stdout == nar.stdout  # the old layout is still read
    assert b"tvix-store migrate" in before.stderr
    migrated = tvix_store(home, "migrate", text=True)
    assert migrated.returncode == 0, migrated.stderr
    assert "copied 2 of 2 blob(s)" in migrated.stderr
    assert not (home / "blobs").exists()
    assert (home / "blobs.migrated").is_dir()
    after = tvix_store(home, "dump", store_path)
    assert after.stdout == nar.stdout
    assert after.stderr == b""
    assert tvix_store(home, "verify", text=True).returncode == 0
    again = tvix_store(home, "migrate", text=True)
    assert "nothing to do" in again.stderr
