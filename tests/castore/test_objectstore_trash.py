"""Garbage collection on object stores moves objects to a trash first (object_layout): a
reader finding an object missing restores it from there, and only a later collection,
a grace period on, deletes what is still unreachable for good. Against local files and S3
(Ceph radosgw), whose copies and modification times differ."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator

import pytest

from pytvix.castore.blobservice import BlobService, put_blob, read_blob
from pytvix.castore.composition import BLOB_SERVICES, DIRECTORY_SERVICES, from_addr
from pytvix.castore.directoryservice import DirectoryService, put_closure
from pytvix.castore.gc import Collectable, StoredObject
from pytvix.castore.object_layout import TRASHED
from pytvix.testing.fixtures import DIRECTORY_A, DIRECTORY_B
from tests.servers.ceph import ceph


@pytest.fixture(params=["file", "s3"])
async def base_url(request: pytest.FixtureRequest, tmp_path: object) -> AsyncIterator[str]:
    if request.param == "file":
        yield f"objectstore+file://{tmp_path}"
        return
    server = ceph()
    yield server.url(server.new_bucket("trash"), "store", scheme="objectstore+s3")


async def listed(service: Collectable) -> tuple[list[StoredObject], list[StoredObject]]:
    """(objects in place, objects in the trash)."""
    objects = [obj async for obj in service.gc_objects()]
    return (
        [o for o in objects if o.kind not in TRASHED],
        [o for o in objects if o.kind in TRASHED],
    )


async def test_a_blob_collected_while_a_writer_relied_on_it_is_restored_by_reads(
    base_url: str,
) -> None:
    service = await from_addr(BLOB_SERVICES, base_url)
    assert isinstance(service, BlobService)
    assert isinstance(service, Collectable)
    data = os.urandom(3 << 20)  # several chunks and an index
    digest = await put_blob(service, data)
    objects, trashed = await listed(service)
    assert len(objects) > 2
    assert trashed == []
    # a collection found it unreachable, while a writer found it present and relied on it
    assert len(await service.gc_delete(objects, time.time() + 1)) == len(objects)
    assert (await listed(service))[0] == []
    assert await read_blob(service, digest) == data  # the writer's path reads it: restored
    objects, trashed = await listed(service)
    assert len(objects) > 2
    assert trashed == []

    # collected again and never read: in the trash for a grace period, then gone for good
    await service.gc_delete(objects, time.time() + 1)
    _, trashed = await listed(service)
    assert len(trashed) == len(objects)
    moved = min(o.written for o in trashed)
    assert moved >= time.time() - 60  # the time it went to the trash, not of its write
    assert await service.gc_delete(trashed, moved - 1) == []
    assert len(await service.gc_delete(trashed, time.time() + 1)) == len(trashed)
    assert await listed(service) == ([], [])
    assert not await service.has(digest)
    assert await service.open_read(digest) is None


async def test_a_collected_directory_closure_is_restored_by_reads(base_url: str) -> None:
    service = await from_addr(DIRECTORY_SERVICES, base_url)
    assert isinstance(service, DirectoryService)
    assert isinstance(service, Collectable)
    root = await put_closure(service, [DIRECTORY_A, DIRECTORY_B])
    objects, _ = await listed(service)
    await service.gc_delete(objects, time.time() + 1)
    assert (await listed(service))[0] == []
    assert [d async for d in service.get_recursive(root)] == [DIRECTORY_B, DIRECTORY_A]
    objects, trashed = await listed(service)
    assert [o.digest for o in objects] == [root]
    assert trashed == []
