"""Blob files are written past the page cache (O_DIRECT) through an aligned buffer, byte for
byte whatever the piece sizes, and buffered where the file system refuses O_DIRECT."""

from __future__ import annotations

import errno
import fcntl
import os
import random
from pathlib import Path

import pytest

from pytvix.castore.drivers import blob_files
from pytvix.castore.drivers.blob_files import DIRECT_BUFFER, BlobFiles
from tests.castore.test_objectstore_local import cached_pages

SIZES = [
    1,
    4095,
    4096,
    DIRECT_BUFFER - 1,
    DIRECT_BUFFER,
    DIRECT_BUFFER + 1,
    2 * DIRECT_BUFFER + 777,
]


def write(files: BlobFiles, data: bytes, piece: int) -> Path:
    """Write `data` to a staging file in pieces of `piece` bytes; the file."""
    staging = files.open_staging()
    try:
        for at in range(0, len(data), piece):
            staging.write(memoryview(data)[at : at + piece])
        staging.finish()
    finally:
        staging.close()
    return Path(staging.path)


@pytest.mark.parametrize("size", SIZES)
def test_staging_files_hold_exact_bytes(tmp_path: Path, size: int) -> None:
    files = BlobFiles(str(tmp_path))
    data = random.Random(size).randbytes(size)
    for piece in (1000, 1 << 20, size):
        assert write(files, data, piece).read_bytes() == data
    assert files.direct


def test_direct_writes_bypass_the_page_cache(tmp_path: Path) -> None:
    path = write(BlobFiles(str(tmp_path)), os.urandom(3 * DIRECT_BUFFER + 100), 1 << 20)
    assert cached_pages(path) <= 1  # at most the last partial block, written buffered


def test_file_systems_refusing_direct_io_get_buffered_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused when the file is switched to O_DIRECT: buffered, and not asked again."""
    real_fcntl = fcntl.fcntl
    asked = []

    def refusing_fcntl(fd: int, cmd: int, arg: int = 0) -> int:
        if cmd == fcntl.F_SETFL and arg & os.O_DIRECT:
            asked.append(fd)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_fcntl(fd, cmd, arg)

    monkeypatch.setattr(fcntl, "fcntl", refusing_fcntl)
    files = BlobFiles(str(tmp_path))
    data = os.urandom(DIRECT_BUFFER + 5)
    assert write(files, data, 1 << 20).read_bytes() == data
    assert write(files, data, 1 << 20).read_bytes() == data
    assert not files.direct
    assert len(asked) == 1


def test_refused_direct_writes_fall_back_to_buffered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused at the first write, after half of it went out: rewritten buffered from where
    that write started, and buffered from then on."""
    attempts = []

    def half_then_refuse(fd: int, view: memoryview) -> None:
        attempts.append(fd)
        os.write(fd, view[: len(view) // 2])
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(blob_files, "write_aligned", half_then_refuse)
    files = BlobFiles(str(tmp_path))
    data = os.urandom(2 * DIRECT_BUFFER + 3)
    assert write(files, data, 1 << 20).read_bytes() == data
    assert not files.direct
    assert len(attempts) == 1
