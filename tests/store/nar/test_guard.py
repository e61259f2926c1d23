"""The use guard shared by the reader and writer, and how the writer applies it: every wait
for the sink or the contents runs inside it, argument checks outside."""

from __future__ import annotations

import asyncio

import pytest

from pytvix.store.nar import (
    BytesSource,
    ListSink,
    NarFile,
    NarReader,
    NarUsageError,
    NarWriter,
)
from pytvix.store.nar.guard import UseGuard
from pytvix.store.nar.io import Bytes
from pytvix.store.nar.tokens import TOK_DIR, TOK_EXE, TOK_REG, TOK_SYM, NodeKind
from tests.store.nar.helpers import Dir, Reg, Sym, read_tree, write_node, write_tree
from tests.store.nar.test_reader import GatedSource


def guard() -> UseGuard[str]:
    return UseGuard("thing", "done", lambda active: f"{active} first", "a")


def test_guard_checks_in_order() -> None:
    g = guard()
    assert g.enter("a") is g
    with pytest.raises(
        NarUsageError, match=r"^NAR nodes must be done in order, depth first: a first$"
    ):
        g.enter("b")
    with g, pytest.raises(NarUsageError, match="the NAR thing is already in use"):
        g.enter("b")  # busy is reported before the turn
    with pytest.raises(KeyError), g:
        raise KeyError("boom")
    with pytest.raises(NarUsageError, match="the NAR thing failed earlier: KeyError"):
        g.enter("a")


def test_guard_nests_and_closes() -> None:
    g = guard()
    with g:
        with g:
            pass
        with pytest.raises(NarUsageError, match="in use"):
            g.enter("a")
    g.enter("a")
    assert not g.closed
    g.close()
    assert g.closed
    with pytest.raises(NarUsageError, match="the NAR thing is closed"):
        g.enter("a")


def test_errors_outside_the_with_leave_the_guard_usable() -> None:
    g = guard()

    def operation(argument: int) -> None:
        g.enter("a")
        if argument < 0:
            raise ValueError("a bad argument")

    with pytest.raises(ValueError):
        operation(-1)
    operation(1)
    g.active = "b"
    assert g.enter("b") is g


def test_node_kinds_are_the_type_tokens() -> None:
    assert [(k.name, k.value) for k in NodeKind] == [
        ("SYMLINK", TOK_SYM),
        ("REGULAR", TOK_REG),
        ("EXECUTABLE", TOK_EXE),
        ("DIRECTORY", TOK_DIR),
    ]


class GatedSink:
    """Blocks every write until `gate` is set."""

    def __init__(self) -> None:
        self.inner = ListSink()
        self.gate = asyncio.Event()

    async def write(self, data: Bytes, /) -> None:
        await self.gate.wait()
        await self.inner.write(data)


class FailingSink:
    async def write(self, data: Bytes, /) -> None:
        raise OSError("disk full")


async def test_writer_is_busy_while_the_sink_waits() -> None:
    sink = GatedSink()
    writer = NarWriter(sink, buffer_size=1)
    root = await writer.directory()
    task = asyncio.ensure_future(root.entry(b"a"))  # its flush waits for the sink
    await asyncio.sleep(0)
    with pytest.raises(NarUsageError, match="concurrent"):
        await root.entry(b"b")
    sink.gate.set()
    await (await task).symlink(b"t")
    await root.close()
    await writer.close()
    assert sink.inner.getvalue() == await write_tree(Dir(((b"a", Sym(b"t")),)))


async def test_writer_is_busy_while_the_contents_wait() -> None:
    sink = ListSink()
    writer = NarWriter(sink)
    source = GatedSource(b"abc")
    task = asyncio.ensure_future(writer.file(False, 3, source))
    await asyncio.sleep(0)
    with pytest.raises(NarUsageError, match="concurrent"):
        await writer.close()
    source.gate.set()
    await task
    await writer.close()
    assert await read_tree(NarReader(BytesSource(sink.getvalue()))) == Reg(b"abc")


async def write_and_close(writer: NarWriter) -> None:
    await write_node(writer, Dir(((b"a", Sym(b"t")),)))
    await writer.close()


@pytest.mark.parametrize("buffer_size", [1, 1 << 16], ids=["first-flush", "final-flush"])
async def test_failed_sink_write_poisons_writer(buffer_size: int) -> None:
    writer = NarWriter(FailingSink(), buffer_size=buffer_size)
    with pytest.raises(OSError, match="disk full"):
        await write_and_close(writer)
    with pytest.raises(NarUsageError, match="failed earlier: OSError"):
        await writer.close()


async def test_closed_writer_refuses_use() -> None:
    writer = NarWriter(ListSink())
    await writer.symlink(b"t")
    await writer.close()
    with pytest.raises(NarUsageError, match="the NAR writer is closed"):
        await writer.symlink(b"u")


async def test_writer_order_is_checked_before_arguments() -> None:
    sink = ListSink()
    writer = NarWriter(sink)
    root = await writer.directory()
    slot = await root.entry(b"a")
    with pytest.raises(NarUsageError, match="last entry"):
        await root.entry(b"")  # out of turn and an invalid name
    await slot.symlink(b"t")
    await root.close()
    await writer.close()
    assert await read_tree(NarReader(BytesSource(sink.getvalue()))) == Dir(((b"a", Sym(b"t")),))


async def test_failed_source_read_poisons_reader() -> None:
    nar = await write_tree(Reg(b"x" * 100))

    class FailingSource:
        """The NAR up to the first 8 content bytes, then an error."""

        def __init__(self) -> None:
            self.sent = False

        async def read(self, n: int, /) -> bytes:
            if self.sent:
                raise OSError("connection reset")
            self.sent = True
            return nar[:104]

    reader = NarReader(FailingSource(), read_size=104)
    root = await reader.read_root()
    assert isinstance(root, NarFile)
    assert await root.read(100) == b"x" * 8
    with pytest.raises(OSError):
        await root.read(100)
    with pytest.raises(NarUsageError, match="failed earlier: OSError"):
        await root.read(100)
