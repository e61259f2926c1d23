"""Contract test suites every service backend must pass.

One class per service, with upstream's test names (prefixed `test_`). A test module subclasses
them as `TestXxx` and provides a fixture (`blob_service`, `directory_service`,
`path_info_service`) parametrized over backends, so adding a backend adds one parameter.
"""

from __future__ import annotations

import os
import time
from collections.abc import Set
from dataclasses import replace

import pytest
from pytvix_bao import outboard

from pytvix.castore.bao import BlobOutboard, check_outboard
from pytvix.castore.blobservice import BlobService, put_blob, read_blob
from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.directoryservice import ClosureError, DirectoryService, put_closure
from pytvix.castore.gc import Collectable
from pytvix.castore.nodes import DirectoryNode, FileNode, SymlinkNode
from pytvix.nixcompat.nixhash import CAFlat, CAText, HashAlgo, NixHash
from pytvix.nixcompat.signing import Signature
from pytvix.nixcompat.store_path import StorePath
from pytvix.store.path_info import PathInfo
from pytvix.store.pathinfoservice import PathInfoService
from pytvix.store.pathinfoservice.roots import GcBusy, RootStore
from pytvix.testing.fixtures import (
    BLOB_A,
    BLOB_A_DIGEST,
    BLOB_B,
    BLOB_B_DIGEST,
    DIRECTORY_A,
    DIRECTORY_B,
    DIRECTORY_C,
    DIRECTORY_COMPLICATED,
    DIRECTORY_D,
    DIRECTORY_WITH_KEEP,
    DUMMY_PATH,
    DUMMY_PATH_DIGEST,
    EMPTY_BLOB_CONTENTS,
    EMPTY_BLOB_DIGEST,
    HELLOWORLD_BLOB_CONTENTS,
    HELLOWORLD_BLOB_DIGEST,
    PATH_INFO,
)

BLOB_CASES = [
    pytest.param(EMPTY_BLOB_CONTENTS, EMPTY_BLOB_DIGEST, id="empty"),
    pytest.param(HELLOWORLD_BLOB_CONTENTS, HELLOWORLD_BLOB_DIGEST, id="helloworld"),
    pytest.param(BLOB_A, BLOB_A_DIGEST, id="small"),
    pytest.param(BLOB_B, BLOB_B_DIGEST, id="big"),
]


class BlobServiceContract:
    """castore/src/blobservice/tests."""

    async def test_has_nonexistent_false(self, blob_service: BlobService) -> None:
        assert not await blob_service.has(BLOB_A_DIGEST)

    async def test_chunks_nonexistent_none(self, blob_service: BlobService) -> None:
        assert await blob_service.chunks(BLOB_A_DIGEST) is None

    async def test_not_found_read(self, blob_service: BlobService) -> None:
        assert await blob_service.open_read(BLOB_A_DIGEST) is None

    @pytest.mark.parametrize(("contents", "digest"), BLOB_CASES)
    async def test_put_has_get(
        self, blob_service: BlobService, contents: bytes, digest: B3Digest
    ) -> None:
        writer = await blob_service.open_write()
        # write in uneven pieces: piece boundaries must not matter
        view = memoryview(contents)
        for start in range(0, len(contents), 100_003):
            assert await writer.write(view[start : start + 100_003]) == min(
                100_003, len(contents) - start
            )
        assert await writer.close() == digest
        assert await writer.close() == digest, "close is idempotent"
        assert await blob_service.has(digest)
        assert await read_blob(blob_service, digest) == contents
        chunks = await blob_service.chunks(digest)
        assert chunks is not None
        if chunks:
            assert sum(c.size for c in chunks) == len(contents)
            pieces = [await read_blob(blob_service, c.digest) for c in chunks]
            assert b"".join(p or b"" for p in pieces) == contents

    async def test_put_twice_same_digest(self, blob_service: BlobService) -> None:
        assert await put_blob(blob_service, BLOB_B) == BLOB_B_DIGEST
        assert await put_blob(blob_service, BLOB_B) == BLOB_B_DIGEST
        assert await read_blob(blob_service, BLOB_B_DIGEST) == BLOB_B

    async def test_aborted_write_is_invisible(self, blob_service: BlobService) -> None:
        writer = await blob_service.open_write()
        await writer.write(BLOB_A)
        await writer.abort()
        assert not await blob_service.has(BLOB_A_DIGEST)

    async def test_put_seek(self, blob_service: BlobService) -> None:
        assert await put_blob(blob_service, BLOB_B) == BLOB_B_DIGEST
        reader = await blob_service.open_read(BLOB_B_DIGEST)
        assert reader is not None
        async with reader:
            assert reader.size == len(BLOB_B)
            # forward, backward, relative and from-end seeks, reads spanning chunk borders
            for offset, length in [
                (0, 1),
                (1, 10),
                (len(BLOB_B) // 2, 300_000),
                (1000, 5000),
                (len(BLOB_B) - 1, 100),
                (0, len(BLOB_B)),
                (262_140, 10),
                (len(BLOB_B) + 10, 10),
            ]:
                assert await reader.seek(offset) == offset
                assert reader.tell() == offset
                got = await reader.read(length)
                assert got == BLOB_B[offset : offset + length], (offset, length)
            assert await reader.seek(-5, os.SEEK_END) == len(BLOB_B) - 5
            assert await reader.read() == BLOB_B[-5:]
            await reader.seek(10)
            assert await reader.seek(20, os.SEEK_CUR) == 30
            assert await reader.read(3) == BLOB_B[30:33]
            with pytest.raises(ValueError, match="negative"):
                await reader.seek(-1)

    @pytest.mark.parametrize("size", [0, 1, 16384, 16385, (1 << 20) + 1, 3 << 20])
    async def test_outboard(self, blob_service: BlobService, size: int) -> None:
        """(pytvix) Every backend gives a blob's Bao outboard, as bao-tree computes it."""
        assert await blob_service.outboard(BLOB_A_DIGEST) is None
        data = os.urandom(size)
        digest = await put_blob(blob_service, data)
        found = await blob_service.outboard(digest)
        assert found == BlobOutboard(size, outboard(data)[1])
        check_outboard(digest, found)

    async def test_gc_deletes_only_what_is_unwritten_and_rewrites_come_back(
        self, blob_service: BlobService
    ) -> None:
        """Garbage collection's part (castore.gc): listing, expanding, deleting."""
        if not isinstance(blob_service, Collectable):
            pytest.skip("a client of another store: collected where that store is")
        kept, doomed = await put_blob(blob_service, BLOB_A), await put_blob(blob_service, BLOB_B)
        objects = [obj async for obj in blob_service.gc_objects()]
        assert {kept, doomed} <= {obj.digest for obj in objects}
        earliest = min(obj.written for obj in objects)
        assert await blob_service.gc_delete(objects, earliest - 1) == []  # all written since
        live = {kept} | set(await blob_service.gc_expand({kept}))
        unreached = [obj for obj in objects if obj.digest not in live]
        deleted = await blob_service.gc_delete(unreached, time.time() + 1)
        assert {obj.digest for obj in deleted} == {obj.digest for obj in unreached}
        await empty_trash(blob_service, live)
        assert not await blob_service.has(doomed)
        assert await read_blob(blob_service, kept) == BLOB_A
        assert await put_blob(blob_service, BLOB_B) == doomed  # written again: whole again
        assert await read_blob(blob_service, doomed) == BLOB_B


async def empty_trash(service: Collectable, live: Set[B3Digest | None]) -> None:
    """What later collections do to objects a collection moved to a trash (object stores):
    delete those still unreachable, for good."""
    for _ in range(3):
        left = [obj async for obj in service.gc_objects() if obj.digest not in live]
        if not await service.gc_delete(left, time.time() + 1):
            return


class DirectoryServiceContract:
    """castore/src/directoryservice/tests."""

    async def test_non_exist(self, directory_service: DirectoryService) -> None:
        assert await directory_service.get(DIRECTORY_A.digest()) is None
        assert [d async for d in directory_service.get_recursive(DIRECTORY_A.digest())] == []

    @pytest.mark.parametrize(
        "directory", [DIRECTORY_A, DIRECTORY_WITH_KEEP], ids=["empty", "with_keep"]
    )
    async def test_put_get(self, directory_service: DirectoryService, directory: Directory) -> None:
        assert await directory_service.put(directory) == directory.digest()
        assert await directory_service.get(directory.digest()) == directory
        got = [d async for d in directory_service.get_recursive(directory.digest())]
        assert got == [directory]

    async def test_put_single_with_subdirectory_rejected(
        self, directory_service: DirectoryService
    ) -> None:
        await directory_service.put(DIRECTORY_A)
        with pytest.raises(ClosureError):
            await directory_service.put(DIRECTORY_B)
        assert await directory_service.get(DIRECTORY_B.digest()) is None

    async def test_put_get_multiple_success(self, directory_service: DirectoryService) -> None:
        root = await put_closure(directory_service, [DIRECTORY_A, DIRECTORY_C])
        assert root == DIRECTORY_C.digest()
        got = [d async for d in directory_service.get_recursive(root)]
        assert got == [DIRECTORY_C, DIRECTORY_A]

    async def test_put_get_multiple_dedup(self, directory_service: DirectoryService) -> None:
        root = await put_closure(directory_service, [DIRECTORY_A, DIRECTORY_A, DIRECTORY_C])
        assert root == DIRECTORY_C.digest()
        got = [d async for d in directory_service.get_recursive(root)]
        assert got == [DIRECTORY_C, DIRECTORY_A]

    async def test_get_recursive_order(self, directory_service: DirectoryService) -> None:
        root = await put_closure(directory_service, [DIRECTORY_A, DIRECTORY_B, DIRECTORY_D])
        assert root == DIRECTORY_D.digest()
        got = [d async for d in directory_service.get_recursive(root)]
        assert got in (
            [DIRECTORY_D, DIRECTORY_A, DIRECTORY_B],
            [DIRECTORY_D, DIRECTORY_B, DIRECTORY_A],
        )
        # the complicated fixture: root first, then the child
        await put_closure(directory_service, [DIRECTORY_WITH_KEEP, DIRECTORY_COMPLICATED])
        got = [d async for d in directory_service.get_recursive(DIRECTORY_COMPLICATED.digest())]
        assert got == [DIRECTORY_COMPLICATED, DIRECTORY_WITH_KEEP]
        assert await directory_service.get(DIRECTORY_COMPLICATED.digest()) == DIRECTORY_COMPLICATED

    async def test_upload_reject_unconnected(self, directory_service: DirectoryService) -> None:
        putter = directory_service.put_multiple_start()
        for d in (DIRECTORY_A, DIRECTORY_C, DIRECTORY_B):
            await putter.put(d)
        with pytest.raises(ClosureError, match="disconnected"):
            await putter.close()
        assert await directory_service.get(DIRECTORY_C.digest()) is None

    async def test_upload_reject_dangling_pointer(
        self, directory_service: DirectoryService
    ) -> None:
        # A exists from an earlier request; it still does not count for this stream.
        await directory_service.put(DIRECTORY_A)
        with pytest.raises(ClosureError, match="unknown directory"):
            await put_closure(directory_service, [DIRECTORY_B])
        assert await directory_service.get(DIRECTORY_B.digest()) is None

    async def test_upload_reject_wrong_size(self, directory_service: DirectoryService) -> None:
        wrong = Directory([(b"foo", DirectoryNode(DIRECTORY_A.digest(), 42))])
        with pytest.raises(ClosureError, match="wrong size"):
            await put_closure(directory_service, [DIRECTORY_A, wrong])
        assert await directory_service.get(wrong.digest()) is None

    async def test_upload_reject_empty(self, directory_service: DirectoryService) -> None:
        with pytest.raises(ClosureError, match="no directories"):
            await directory_service.put_multiple_start().close()


def _path_info_variants() -> list[PathInfo]:
    """PATH_INFO with each kind of root node, signatures, a deriver and each CA kind."""
    sig = Signature("cache.example.org-1", bytes(range(64)))
    other = StorePath(bytes([1]) * 20, "other")
    return [
        PATH_INFO,
        replace(PATH_INFO, node=FileNode(HELLOWORLD_BLOB_DIGEST, 12, True)),
        replace(PATH_INFO, node=SymlinkNode(b"/nix/store/somewhereelse")),
        replace(PATH_INFO, signatures=(sig,), deriver=other, references=(DUMMY_PATH, other)),
        replace(PATH_INFO, ca=CAText(bytes(32)), references=()),
        replace(PATH_INFO, ca=CAFlat(NixHash(HashAlgo.SHA1, bytes(20))), nar_size=123456789),
        replace(PATH_INFO, ca=None, nar_sha256=bytes(range(32))),
    ]

    async def test_gc_deletes_only_what_is_unwritten(
        self, directory_service: DirectoryService
    ) -> None:
        if not isinstance(directory_service, Collectable):
            pytest.skip("a client of another store: collected where that store is")
        await put_closure(directory_service, [DIRECTORY_A, DIRECTORY_B])
        await put_closure(directory_service, [DIRECTORY_C])
        objects = [obj async for obj in directory_service.gc_objects()]
        assert {DIRECTORY_B.digest(), DIRECTORY_C.digest()} <= {obj.digest for obj in objects}
        assert await directory_service.gc_delete(objects, min(o.written for o in objects) - 1) == []
        doomed = [obj for obj in objects if obj.digest == DIRECTORY_C.digest()]
        assert await directory_service.gc_delete(doomed, time.time() + 1) == doomed
        await empty_trash(directory_service, {o.digest for o in objects} - {doomed[0].digest})
        assert await directory_service.get(DIRECTORY_C.digest()) is None
        assert await directory_service.get(DIRECTORY_B.digest()) == DIRECTORY_B
        await put_closure(directory_service, [DIRECTORY_C])
        assert await directory_service.get(DIRECTORY_C.digest()) == DIRECTORY_C


class PathInfoServiceContract:
    """store/src/pathinfoservice/tests."""

    async def test_not_found(self, path_info_service: PathInfoService) -> None:
        assert await path_info_service.get(DUMMY_PATH_DIGEST) is None

    @pytest.mark.parametrize("info", _path_info_variants())
    async def test_put_get(self, path_info_service: PathInfoService, info: PathInfo) -> None:
        stored = await path_info_service.put(info)
        # a signing store may add signatures; everything else comes back unchanged
        assert replace(stored, signatures=info.signatures) == info
        assert set(info.signatures) <= set(stored.signatures)
        assert await path_info_service.get(info.store_path.digest) == stored

    async def test_put_overwrites(self, path_info_service: PathInfoService) -> None:
        await path_info_service.put(PATH_INFO)
        newer = replace(PATH_INFO, nar_size=42)
        stored = await path_info_service.put(newer)
        got = await path_info_service.get(DUMMY_PATH_DIGEST)
        assert got == stored
        assert got is not None
        assert got.nar_size == 42

    async def test_list(self, path_info_service: PathInfoService) -> None:
        infos = [
            replace(PATH_INFO, store_path=StorePath(bytes([i]) * 20, f"p{i}")) for i in range(5)
        ]
        stored = [await path_info_service.put(info) for info in infos]
        listed = [info async for info in path_info_service.list()]
        assert sorted(listed, key=lambda i: i.store_path) == sorted(
            stored, key=lambda i: i.store_path
        )

    async def test_roots_for_gc(self, path_info_service: PathInfoService) -> None:
        """Garbage collection's part (store.pathinfoservice.roots.RootStore)."""
        if not isinstance(path_info_service, RootStore):
            pytest.skip("keeps no roots of its own (a client, a cache, or fetch-through)")
        store: RootStore = path_info_service
        before = time.time()
        await path_info_service.put(PATH_INFO)
        digest = PATH_INFO.store_path.digest
        assert await path_info_service.get(digest) == PATH_INFO  # a read, recorded in time
        [times] = [t async for t in store.times()]
        assert times.digest == digest
        assert before - 1 <= times.added <= time.time() + 1
        assert times.last_read >= times.added - 1
        await store.set_pin("keep", [digest])
        assert await store.pins() == {"keep": (digest,)}
        assert await store.unpin("keep")
        assert not await store.unpin("keep")
        async with store.gc_lock():
            with pytest.raises(GcBusy):
                async with store.gc_lock():
                    pass
        assert await store.delete(digest)
        assert not await store.delete(digest)
        assert await path_info_service.get(digest) is None
