"""Local object stores write files directly: atomically (staging file + rename), in parts,
chunk-sized objects with O_DIRECT where the file system allows it, with no staging file
left behind on failure and none visible in listings."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import itertools
import mmap
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from pytvix.allocator import tune_allocator
from pytvix.castore.drivers import local_files
from pytvix.castore.drivers.objectstore import NOT_CACHED, open_object_store
from pytvix.castore.drivers.objectstore.local import LocalObjectStore
from pytvix.castore.errors import StorageError


def leftovers(root: Path) -> list[str]:
    return [p.name for p in root.rglob("*") if "#" in p.name]


def test_parts_are_written_in_order_and_listed_once(tmp_path: Path) -> None:
    store = open_object_store(f"file://{tmp_path}")
    payload = os.urandom(300_000)
    parts = [b"head", memoryview(payload)[:100_000], b"", memoryview(payload)[100_000:]]
    store.put("chunks/ab/key", parts)
    store.put("small", b"x")
    assert store.get("chunks/ab/key") == b"head" + payload
    assert sorted(meta.key for meta in store.list("")) == ["chunks/ab/key", "small"]
    assert leftovers(tmp_path) == []
    assert not store.create("small", b"y")
    assert store.get("small") == b"x"
    assert store.create("new", [b"a", b"b"])
    assert store.get("new") == b"ab"


def test_more_parts_than_one_writev_takes(tmp_path: Path) -> None:
    store = open_object_store(f"file://{tmp_path}")
    parts = [bytes([i % 256]) * 3 for i in range(5000)]
    store.put("many", parts)
    assert store.get("many") == b"".join(parts)


def test_failed_writes_leave_no_staging_file(tmp_path: Path) -> None:
    store = open_object_store(f"file://{tmp_path}")
    (tmp_path / "dir" / "sub").mkdir(parents=True)
    (tmp_path / "dir" / "sub" / "x").write_bytes(b"")
    with pytest.raises(StorageError, match="put dir/sub in"):
        store.put("dir/sub", b"data")  # a non-empty directory is in the way of the rename
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(StorageError, match="put file/below in"):
        store.put("file/below", b"data")  # a parent is a file
    assert leftovers(tmp_path) == []


def test_leftover_staging_names_are_not_reused_or_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_object_store(f"file://{tmp_path}")
    store.put("a/key", b"1")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.write_bytes(b"untouched")
    # the next two staging names are taken, as if left by a crashed writer: a link and a file
    monkeypatch.setattr(local_files, "_staging_numbers", itertools.count(5))
    token = local_files._STAGING_TOKEN
    (tmp_path / "a" / f"other#{token}5").symlink_to(outside)
    (tmp_path / "a" / f"other#{token}6").write_bytes(b"partial")
    data = os.urandom(100_000)
    store.put("a/other", data)
    assert store.get("a/other") == data
    assert outside.read_bytes() == b"untouched"
    assert sorted(meta.key for meta in store.list("a")) == ["a/key", "a/other"]


def test_allocator_tuning_applies_on_glibc() -> None:
    assert tune_allocator() is True


SIZES = [1, 4095, 4096, 64 << 10, (64 << 10) + 1, 262_159, (8 << 20) + 1]


@pytest.mark.parametrize("where", ["disk", "tmpfs"])
def test_direct_and_buffered_writes_store_exact_bytes(tmp_path: Path, where: str) -> None:
    if where == "tmpfs":
        shm = Path("/dev/shm")
        if not shm.is_dir() or os.statvfs(shm).f_bsize == 0:
            pytest.skip("no /dev/shm")
        tmp_path = Path(tempfile.mkdtemp(dir=shm))
    try:
        store = open_object_store(f"file://{tmp_path}")
        assert isinstance(store, LocalObjectStore)
        blobs = {f"k/{size}": os.urandom(size) for size in SIZES}
        for key, data in blobs.items():
            store.put(key, [data[:7], memoryview(data)[7:]])
        for key, data in blobs.items():
            assert store.get(key) == data
            assert (tmp_path / key).stat().st_size == len(data)
        store.sync()
    finally:
        if where == "tmpfs":
            shutil.rmtree(tmp_path)


def test_file_systems_refusing_direct_io_get_buffered_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open
    direct_opens = []

    def refusing_open(path: str, flags: int, mode: int = 0o777) -> int:
        if flags & os.O_DIRECT:
            direct_opens.append(path)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, mode)

    monkeypatch.setattr(local_files.os, "open", refusing_open)
    store = open_object_store(f"file://{tmp_path}")
    assert isinstance(store, LocalObjectStore)
    chunks = [os.urandom(200_000) for _ in range(3)]
    for i, chunk in enumerate(chunks):
        store.put(f"c/{i}", chunk)
    assert [store.get(f"c/{i}") for i in range(3)] == chunks
    assert store.files.direct is False
    assert len(direct_opens) == 1  # asked once, then remembered
    assert leftovers(tmp_path) == []


def test_refused_direct_writes_fall_back_to_buffered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refusing_write(fd: int, parts: object, size: int) -> None:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(local_files, "_write_direct", refusing_write)
    store = open_object_store(f"file://{tmp_path}")
    assert isinstance(store, LocalObjectStore)
    chunk = os.urandom(200_000)
    store.put("c/0", chunk)
    assert store.get("c/0") == chunk
    assert store.files.direct is False
    assert leftovers(tmp_path) == []


def test_direct_writes_bypass_the_page_cache(tmp_path: Path) -> None:
    store = open_object_store(f"file://{tmp_path}")
    store.put("chunk", os.urandom(256 << 10))
    store.put("small", os.urandom(1000))
    assert cached_pages(tmp_path / "chunk") <= 1  # at most the tail block, written buffered
    assert cached_pages(tmp_path / "small") == 1


def cached_pages(path: Path) -> int:
    """How many of the file's pages are in the page cache (mincore)."""
    size = path.stat().st_size
    with open(path, "rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as m:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
        vec = (ctypes.c_ubyte * pages)()
        address = ctypes.addressof(ctypes.c_char.from_buffer(m))
        try:
            assert libc.mincore(ctypes.c_void_p(address), ctypes.c_size_t(size), vec) == 0
        finally:
            del address
        return sum(v & 1 for v in vec)


def evict(path: Path) -> None:
    """Drop the file's pages from the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def test_cached_reads_never_wait_on_the_disk(tmp_path: Path) -> None:
    store = open_object_store(f"file://{tmp_path}")
    data = os.urandom(20_000)
    store.put("small", data)
    store.get("small")  # now in the page cache
    assert store.get_cached("small", 1 << 20) == data
    assert store.get("absent") is None  # now the kernel knows the name is absent
    assert store.get_cached("absent", 1 << 20) is None
    assert store.get_cached("small", len(data) - 1) is NOT_CACHED  # larger than asked for
    evict(tmp_path / "small")
    assert cached_pages(tmp_path / "small") == 0
    assert store.get_cached("small", 1 << 20) is NOT_CACHED  # would wait on the disk
    assert store.get("small") == data
    assert store.get_cached("small", 1 << 20) == data  # cached again by the read
    assert (
        open_object_store("memory:///").get_cached("small", 1 << 20) is NOT_CACHED
    )  # not a local store


def test_file_systems_without_nowait_reads_fall_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def refusing_preadv(fd: int, buffers: object, offset: int, flags: int = 0) -> int:
        calls.append(flags)
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    store = open_object_store(f"file://{tmp_path}")
    assert isinstance(store, LocalObjectStore)
    store.put("small", b"data")
    monkeypatch.setattr(local_files.os, "preadv", refusing_preadv)
    for _ in range(2):
        assert store.get_cached("small", 1 << 20) is NOT_CACHED
    assert len(calls) == 1  # asked once, then remembered
    assert store.files.nowait is False
    assert store.get("small") == b"data"


def drop_dentries_and_inodes() -> None:
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("2")
    except OSError as e:
        pytest.skip(f"cannot drop the kernel's lookup cache here: {e}")


def test_cached_reads_do_not_look_up_files_on_the_disk(tmp_path: Path) -> None:
    store = open_object_store(f"file://{tmp_path}")
    data = os.urandom(20_000)
    store.put("ab/small", data)
    drop_dentries_and_inodes()  # finding the file now means reading its directory
    assert store.get_cached("ab/small", 1 << 20) is NOT_CACHED
    assert local_files._cached_lookups  # the kernel supports it; not switched off
    assert store.get("ab/small") == data  # the worker-thread path looks it up
    assert store.get_cached("ab/small", 1 << 20) == data
    assert (
        store.get_cached("ab/absent", 1 << 20) is NOT_CACHED
    )  # a name never looked up: only the disk knows
    assert store.get("ab/absent") is None
    assert store.get_cached("ab/absent", 1 << 20) is None  # a known miss is no error


def test_kernels_without_cached_lookups_open_plainly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    class OldKernel:
        def syscall(self, number: ctypes.c_long, *args: object) -> int:
            calls.append(number.value)
            ctypes.set_errno(errno.ENOSYS)
            return -1

    monkeypatch.setattr(local_files, "libc", OldKernel)
    monkeypatch.setattr(local_files, "_cached_lookups", True)
    (tmp_path / "f").write_bytes(b"data")
    for _ in range(2):
        fd = local_files.open_cached(str(tmp_path / "f"), os.O_RDONLY)
        try:
            assert os.read(fd, 10) == b"data"
        finally:
            os.close(fd)
    assert calls == [local_files._SYS_OPENAT2]  # asked once, then remembered
    assert local_files._cached_lookups is False
    with pytest.raises(FileNotFoundError):
        local_files.open_cached(str(tmp_path / "absent"), os.O_RDONLY)
