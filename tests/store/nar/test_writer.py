"""Writer behaviour: size mismatches, name rules, ordering, buffering."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pytvix.store.nar import (
    BytesSource,
    ListSink,
    NarReader,
    NarUsageError,
    NarWriteError,
    NarWriter,
)
from pytvix.store.nar.io import Bytes
from pytvix.store.nar.tokens import TOK_EXE, TOK_NAR
from tests.store.nar.helpers import Dir, Reg, Sym, read_tree, recopy, write_tree

HELLO = b"Hello World!"


async def pieces(*chunks: bytes) -> AsyncIterator[Bytes]:
    for chunk in chunks:
        yield chunk


def sources(data: bytes) -> list[object]:
    """The same contents as bytes, a ByteSource, a fragmented ByteSource and an iterator."""
    return [
        data,
        bytearray(data),
        BytesSource(data),
        BytesSource(data, max_read=5),
        pieces(data[:3], b"", data[3:]),
    ]


@pytest.mark.parametrize("index", range(5))
async def test_too_short(index: int) -> None:
    writer = NarWriter(ListSink())
    with pytest.raises(NarWriteError, match="unexpected EOF") as info:
        await writer.file(False, 42, sources(HELLO)[index])  # type: ignore[arg-type]
    assert info.value.kind == "unexpected_eof"
    with pytest.raises(NarUsageError):
        await writer.close()


@pytest.mark.parametrize("index", range(5))
async def test_too_long(index: int) -> None:
    writer = NarWriter(ListSink())
    with pytest.raises(NarWriteError, match="more data than specified size") as info:
        await writer.file(False, 2, sources(HELLO)[index])  # type: ignore[arg-type]
    assert info.value.kind == "invalid_input"


@pytest.mark.parametrize("index", range(5))
async def test_exact_size(index: int) -> None:
    sink = ListSink()
    writer = NarWriter(sink)
    await writer.file(True, len(HELLO), sources(HELLO)[index])  # type: ignore[arg-type]
    await writer.close()
    assert sink.getvalue().startswith(TOK_NAR + TOK_EXE)
    assert await read_tree(NarReader(BytesSource(sink.getvalue()))) == Reg(HELLO, True)


async def test_bytes_mismatch_is_checked_before_writing() -> None:
    sink = ListSink()
    writer = NarWriter(sink)
    with pytest.raises(NarWriteError):
        await writer.file(False, 1, b"")
    await writer.file(False, 1, b"x")  # still usable
    await writer.close()
    assert await read_tree(NarReader(BytesSource(sink.getvalue()))) == Reg(b"x")


async def test_failed_content_poisons_writer() -> None:
    writer = NarWriter(ListSink())
    directory = await writer.directory()
    slot = await directory.entry(b"f")
    with pytest.raises(NarWriteError):
        await slot.file(False, 5, BytesSource(b"abc"))
    with pytest.raises(NarUsageError, match="failed earlier"):
        await directory.close()


@pytest.mark.parametrize("size", [-1, 2**64])
async def test_size_out_of_range(size: int) -> None:
    with pytest.raises(NarWriteError) as info:
        await NarWriter(ListSink()).file(False, size, pieces())
    assert info.value.kind == "invalid_input"


@pytest.mark.parametrize(
    "name", [b"", b".", b"..", b"a/b", b"a\0", b"x" * 256], ids=lambda n: repr(n[:8])
)
async def test_invalid_names(name: bytes) -> None:
    writer = NarWriter(ListSink())
    directory = await writer.directory()
    with pytest.raises(NarWriteError) as info:
        await directory.entry(name)
    assert info.value.kind == "invalid_input"


@pytest.mark.parametrize(("first", "second"), [(b"b", b"a"), (b"a", b"a"), (b"a", b"B")])
async def test_misordered_names(first: bytes, second: bytes) -> None:
    sink = ListSink()
    writer = NarWriter(sink)
    directory = await writer.directory()
    await (await directory.entry(first)).symlink(b"t")
    with pytest.raises(NarWriteError, match="strictly after") as info:
        await directory.entry(second)
    assert info.value.kind == "invalid_input"
    # the rejected entry wrote nothing: the writer can go on
    await (await directory.entry(b"c")).symlink(b"u")
    await directory.close()
    await writer.close()
    tree = await read_tree(NarReader(BytesSource(sink.getvalue())))
    assert tree == Dir(((first, Sym(b"t")), (b"c", Sym(b"u"))))


@pytest.mark.parametrize("target", [b"", b"x" * 4096, b"a\0b"], ids=["empty", "long", "nul"])
async def test_invalid_targets(target: bytes) -> None:
    with pytest.raises(NarWriteError) as info:
        await NarWriter(ListSink()).symlink(target)
    assert info.value.kind == "invalid_input"


async def test_usage_errors() -> None:
    writer = NarWriter(ListSink())
    with pytest.raises(NarUsageError, match="root node has not been written"):
        await writer.close()
    root = await writer.directory()
    with pytest.raises(NarUsageError):
        await writer.symlink(b"x")
    slot = await root.entry(b"a")
    with pytest.raises(NarUsageError, match="last entry"):
        await root.entry(b"b")
    with pytest.raises(NarUsageError):
        await root.close()
    sub = await slot.directory()
    with pytest.raises(NarUsageError, match="subdirectory"):
        await root.close()
    with pytest.raises(NarUsageError):
        await slot.symlink(b"x")
    await sub.close()
    with pytest.raises(NarUsageError):
        await sub.close()
    await root.close()
    with pytest.raises(NarUsageError, match="already complete"):
        await root.close()
    await writer.close()
    await writer.close()  # idempotent


async def test_small_nar_is_one_write() -> None:
    sink = ListSink()
    writer = NarWriter(sink)
    directory = await writer.directory()
    for i in range(100):
        await (await directory.entry(b"%03d" % i)).file(False, 3, b"abc")
    await directory.close()
    assert sink.writes == 0
    await writer.close()
    assert sink.writes == 1


async def test_writes_are_large() -> None:
    sink = ListSink()
    writer = NarWriter(sink, buffer_size=65536)
    directory = await writer.directory()
    for i in range(5000):
        await (await directory.entry(b"%05d" % i)).file(False, 100, b"z" * 100)
    big = bytes(range(256)) * 4096  # 1 MiB, passed through in one write
    await (await directory.entry(b"big")).file(False, len(big), pieces(big))
    await directory.close()
    await writer.close()
    assert all(len(p) >= 65536 for p in sink.parts[:-1])
    assert max(len(p) for p in sink.parts) > 900_000  # passed through, not re-buffered
    assert sink.writes <= len(sink.getvalue()) // 65536 + 1
    assert writer.bytes_written == len(sink.getvalue())
    tree = await read_tree(NarReader(BytesSource(sink.getvalue())))
    assert isinstance(tree, Dir)
    assert tree.entries[-1] == (b"big", Reg(big))


async def test_written_bytes_are_never_mutated() -> None:
    class KeepingSink:
        def __init__(self) -> None:
            self.kept: list[tuple[Bytes, bytes]] = []

        async def write(self, data: Bytes, /) -> None:
            self.kept.append((data, bytes(data)))

    sink = KeepingSink()
    writer = NarWriter(sink, buffer_size=100)
    directory = await writer.directory()
    for i in range(50):
        await (await directory.entry(b"%02d" % i)).symlink(b"target")
    await directory.close()
    await writer.close()
    assert all(bytes(data) == copy for data, copy in sink.kept)


async def test_deep_tree_roundtrip() -> None:
    tree: Dir = Dir(((b"leaf", Reg(b"deep")),))
    for _ in range(150):
        tree = Dir(((b"d", tree),))
    nar = await write_tree(tree)
    assert await recopy(nar) == nar
    assert nar.count(b"deep") == 1
