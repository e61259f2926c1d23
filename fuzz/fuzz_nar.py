"""NAR reader: bytes only ever raise NarError; accepted NARs re-encode identically and ingest."""

from __future__ import annotations

import hashlib

from fuzz._async import run, run_sync
from pytvix.castore.blobservice.memory import MemoryBlobService
from pytvix.castore.directoryservice.memory import MemoryDirectoryService
from pytvix.store.nar import (
    BytesSource,
    ListSink,
    NarDirectory,
    NarDirectoryWriter,
    NarError,
    NarFile,
    NarNode,
    NarNodeWriter,
    NarReader,
    NarSymlink,
    NarWriter,
)
from pytvix.store.nar.ingest import ingest_nar


async def _copy(data: bytes, read_size: int, max_read: int | None, piece: int) -> bytes:
    """Read `data` as a NAR (file contents in `piece`-byte reads) and write it out again."""
    reader = NarReader(BytesSource(data, max_read=max_read), read_size=read_size)
    sink = ListSink()
    writer = NarWriter(sink)
    stack: list[tuple[NarDirectory, NarDirectoryWriter]] = []

    async def put(node: NarNode, slot: NarWriter | NarNodeWriter) -> None:
        if isinstance(node, NarSymlink):
            await slot.symlink(node.target)
        elif isinstance(node, NarFile):
            parts = []
            while part := await node.read(piece):
                parts.append(part)
            await slot.file(node.executable, node.size, b"".join(parts))
        else:
            stack.append((node, await slot.directory()))

    await put(await reader.read_root(), writer)
    while stack:
        directory, directory_writer = stack[-1]
        entry = await directory.next_entry()
        if entry is None:
            await directory_writer.close()
            stack.pop()
        else:
            await put(entry[1], await directory_writer.entry(entry[0]))
    await reader.finish()
    await writer.close()
    return sink.getvalue()


def _attempt(data: bytes, read_size: int, max_read: int | None, piece: int) -> bytes | NarError:
    try:
        return run_sync(_copy(data, read_size, max_read, piece))
    except NarError as e:
        return e


def test_one_input(data: bytes) -> None:
    """Parse whole and byte by byte (same verdict), re-encode, and ingest into memory stores."""
    whole = _attempt(data, 1 << 18, None, 1 << 20)
    trickled = _attempt(data, 1, 3, 5)
    if isinstance(whole, NarError) or isinstance(trickled, NarError):
        assert isinstance(whole, NarError), (whole, trickled)
        assert isinstance(trickled, NarError), (whole, trickled)
        assert type(whole) is type(trickled), (whole, trickled)
        assert whole.offset == trickled.offset, (whole, trickled)
    else:
        assert whole == data
        assert trickled == data
    try:
        _, size, sha = run(
            ingest_nar(BytesSource(data), MemoryBlobService(), MemoryDirectoryService())
        )
    except NarError:
        assert isinstance(whole, NarError)
        return
    assert not isinstance(whole, NarError), whole
    assert size == len(data)
    assert sha == hashlib.sha256(data).digest()
