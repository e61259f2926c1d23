"""Reader behaviour beyond the vectors: streaming, hashing, sequential-use enforcement."""

from __future__ import annotations

import asyncio
import hashlib
import random
from pathlib import Path

import pytest

from pytvix.store.nar import (
    BytesSource,
    FileSource,
    NarDirectory,
    NarError,
    NarFile,
    NarReader,
    NarSymlink,
    NarUsageError,
)
from tests.store.nar.helpers import Dir, Reg, Sym, read_tree, write_tree

BIG = random.Random(1).randbytes(5 * 1024 * 1024 + 3)
TREE = Dir(
    (
        (b"a", Reg(b"first file", executable=True)),
        (b"b", Dir(((b"inner", Reg(b"x" * 100)),))),
        (b"big", Reg(BIG)),
        (b"c", Sym(b"../a")),
        (b"e", Reg(b"")),
    )
)


@pytest.fixture(scope="module")
def nar() -> bytes:
    return asyncio.run(write_tree(TREE))


async def open_dir(nar: bytes) -> tuple[NarReader, NarDirectory]:
    reader = NarReader(BytesSource(nar))
    root = await reader.read_root()
    assert isinstance(root, NarDirectory)
    return reader, root


async def next_file(directory: NarDirectory, name: bytes) -> NarFile:
    entry = await directory.next_entry()
    assert entry is not None
    assert entry[0] == name
    assert isinstance(entry[1], NarFile)
    return entry[1]


@pytest.mark.parametrize("read_size", [1, 4096, 256 * 1024])
@pytest.mark.parametrize("piece", [1000, 65536, 1 << 20, 1 << 23])
async def test_streaming_file_contents_and_hash(nar: bytes, read_size: int, piece: int) -> None:
    hasher = hashlib.sha256()
    reader = NarReader(BytesSource(nar), hasher=hasher, read_size=read_size)
    assert await read_tree(reader, read_size=piece) == TREE
    assert hasher.digest() == hashlib.sha256(nar).digest()
    assert reader.bytes_read == len(nar)


async def test_file_source(nar: bytes, tmp_path: Path) -> None:
    path = tmp_path / "x.nar"
    path.write_bytes(nar)
    hasher = hashlib.sha256()
    with path.open("rb") as f:
        reader = NarReader(FileSource(f, read_size=100_000), hasher=hasher)
        assert await read_tree(reader) == TREE
    assert hasher.digest() == hashlib.sha256(nar).digest()


async def test_skip_keeps_hash_and_position(nar: bytes) -> None:
    hasher = hashlib.sha256()
    reader = NarReader(BytesSource(nar, max_read=70_000), hasher=hasher, read_size=4096)
    root = await reader.read_root()
    assert isinstance(root, NarDirectory)
    async for _name, node in root:
        if isinstance(node, NarDirectory):
            async for _inner, leaf in node:
                assert isinstance(leaf, NarFile)
                assert await leaf.read(10) == b"x" * 10
                await leaf.skip()
        elif isinstance(node, NarFile):
            if node.size > 10:
                assert await node.read(3) == (BIG[:3] if node.size == len(BIG) else b"fir")
            await node.skip()
            assert node.remaining == 0
            assert await node.read(10) == b""
            await node.skip()
    await reader.finish()
    assert hasher.digest() == hashlib.sha256(nar).digest()


async def test_chunks_iterator(nar: bytes) -> None:
    _, root = await open_dir(nar)
    first = await next_file(root, b"a")
    assert first.executable
    assert first.size == 10
    assert [c async for c in first.chunks(3)] == [b"fir", b"st ", b"fil", b"e"]


class GreedySource:
    """Ignores `n` and returns large pieces (more than asked for)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def read(self, n: int, /) -> bytes:
        chunk, self.data = self.data[:300_000], self.data[300_000:]
        return chunk


async def test_source_returning_more_than_asked(nar: bytes) -> None:
    hasher = hashlib.sha256()
    reader = NarReader(GreedySource(nar), hasher=hasher, read_size=1000)
    assert await read_tree(reader, read_size=1 << 20) == TREE
    assert hasher.digest() == hashlib.sha256(nar).digest()


async def test_read_size_must_be_positive(nar: bytes) -> None:
    _, root = await open_dir(nar)
    file = await next_file(root, b"a")
    with pytest.raises(ValueError, match="positive"):
        await file.read(0)


async def test_empty_file_is_complete_on_arrival(nar: bytes) -> None:
    reader, root = await open_dir(nar)
    async for name, node in root:
        if isinstance(node, NarFile):
            await node.skip()
        elif isinstance(node, NarDirectory):
            async for _n, leaf in node:
                assert isinstance(leaf, NarFile)
                await leaf.skip()
        if name == b"e":
            assert isinstance(node, NarFile)
            assert node.size == 0
            assert await node.read(1) == b""
        if name == b"c":
            assert node == NarSymlink(b"../a")
    assert await root.next_entry() is None
    await reader.finish()


# --- misuse ----------------------------------------------------------------------------------


async def test_next_entry_before_file_is_consumed(nar: bytes) -> None:
    _reader, root = await open_dir(nar)
    file = await next_file(root, b"a")
    with pytest.raises(NarUsageError, match="contents of the current file"):
        await root.next_entry()
    # a usage error does not break the reader
    assert await file.read(100) == b"first file"
    entry = await root.next_entry()
    assert entry is not None
    assert entry[0] == b"b"


async def test_next_entry_before_subdirectory_is_done(nar: bytes) -> None:
    _, root = await open_dir(nar)
    await (await next_file(root, b"a")).skip()
    entry = await root.next_entry()
    assert entry is not None
    sub = entry[1]
    assert isinstance(sub, NarDirectory)
    with pytest.raises(NarUsageError, match="subdirectory"):
        await root.next_entry()
    inner = await next_file(sub, b"inner")
    with pytest.raises(NarUsageError, match="contents of the current file"):
        await sub.next_entry()
    await inner.skip()
    assert await sub.next_entry() is None
    assert await sub.next_entry() is None
    entry = await root.next_entry()
    assert entry is not None
    assert entry[0] == b"big"


async def test_root_and_finish_misuse(nar: bytes) -> None:
    reader, root = await open_dir(nar)
    with pytest.raises(NarUsageError):
        await reader.read_root()
    with pytest.raises(NarUsageError, match="finish"):
        await reader.finish()
    del root


async def test_unusable_after_error() -> None:
    reader = NarReader(BytesSource(b"not a nar" * 10))
    with pytest.raises(NarError):
        await reader.read_root()
    with pytest.raises(NarUsageError):
        await reader.finish()


async def test_unusable_after_error_in_directory(nar: bytes) -> None:
    bad = bytearray(nar)
    bad[bad.index(b"inner") + 5] = 1  # padding of the name "inner"
    _reader, root = await open_dir(bytes(bad))
    await (await next_file(root, b"a")).skip()
    entry = await root.next_entry()
    assert entry is not None
    assert isinstance(entry[1], NarDirectory)
    with pytest.raises(NarError, match="padding"):
        await entry[1].next_entry()
    with pytest.raises(NarUsageError, match="failed earlier"):
        await entry[1].next_entry()


class GatedSource:
    """Blocks every read until `gate` is set."""

    def __init__(self, data: bytes) -> None:
        self.inner = BytesSource(data)
        self.gate = asyncio.Event()

    async def read(self, n: int, /) -> bytes:
        await self.gate.wait()
        return await self.inner.read(n)


async def test_concurrent_use_is_refused(nar: bytes) -> None:
    source = GatedSource(nar)
    source.gate.set()
    reader = NarReader(source, read_size=1000)
    root = await reader.read_root()
    assert isinstance(root, NarDirectory)
    file = await next_file(root, b"a")
    assert await file.read(10) == b"first file"
    entry = await root.next_entry()
    assert entry is not None
    sub = entry[1]
    assert isinstance(sub, NarDirectory)
    await (await next_file(sub, b"inner")).skip()
    assert await sub.next_entry() is None
    big = await next_file(root, b"big")
    while await big.read(1 << 16) and reader.bytes_read < 100_000:
        pass
    source.gate.clear()
    task = asyncio.ensure_future(big.read(1 << 20))
    await asyncio.sleep(0)
    with pytest.raises(NarUsageError, match="concurrent"):
        await big.read(10)
    source.gate.set()
    assert await task
