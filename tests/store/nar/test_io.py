"""The byte source / sink adapters."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pytvix.store.nar import BytesSource, FileSink, FileSource, HashingSink, ListSink


async def drain(source: BytesSource | FileSource, n: int) -> list[bytes]:
    out = []
    while chunk := await source.read(n):
        out.append(chunk)
    return out


async def test_bytes_source() -> None:
    assert await drain(BytesSource(b"abcdefg"), 3) == [b"abc", b"def", b"g"]
    assert await drain(BytesSource(b"abcdefg", max_read=2), 3) == [b"ab", b"cd", b"ef", b"g"]
    assert await BytesSource(bytearray(b"xyz")).read(-1) == b"xyz"
    assert await BytesSource(b"").read(5) == b""


async def test_file_source(tmp_path: Path) -> None:
    data = bytes(range(256)) * 100
    path = tmp_path / "f"
    path.write_bytes(data)
    for n in (1, 100, 1000, 5000, 100_000):
        with path.open("rb") as f:
            chunks = await drain(FileSource(f, read_size=4096), n)
        assert b"".join(chunks) == data
        assert all(0 < len(c) <= n for c in chunks)


async def test_sinks(tmp_path: Path) -> None:
    listing = ListSink()
    hashing = HashingSink(listing)
    await hashing.write(b"abc")
    await hashing.write(bytearray(b"de"))
    await hashing.write(memoryview(b"fgh"))
    assert listing.getvalue() == b"abcdefgh"
    assert listing.writes == 3
    assert hashing.size == 8
    assert hashing.sha256.digest() == hashlib.sha256(b"abcdefgh").digest()
    path = tmp_path / "out"
    with path.open("wb") as f:
        sink = FileSink(f)
        await sink.write(b"12")
        await sink.write(memoryview(b"345"))
    assert path.read_bytes() == b"12345"
