"""Test helpers: a plain tree model, tree <-> NAR through the reader/writer, raw NAR strings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from pytvix.store.nar import (
    BytesSource,
    ListSink,
    NarDirectory,
    NarDirectoryWriter,
    NarFile,
    NarNode,
    NarNodeWriter,
    NarReader,
    NarSymlink,
    NarWriter,
)
from pytvix.store.nar.tokens import encode_string


@dataclass(frozen=True)
class Sym:
    target: bytes


@dataclass(frozen=True)
class Reg:
    contents: bytes
    executable: bool = False


@dataclass(frozen=True)
class Dir:
    entries: tuple[tuple[bytes, Tree], ...] = ()


Tree: TypeAlias = Sym | Reg | Dir


def strs(*items: str | bytes) -> bytes:
    """Raw NAR strings, for hand-made (possibly invalid) archives."""
    return b"".join(encode_string(i.encode() if isinstance(i, str) else i) for i in items)


async def _read_leaf(node: NarSymlink | NarFile, read_size: int) -> Tree:
    if isinstance(node, NarSymlink):
        return Sym(node.target)
    parts = []
    while chunk := await node.read(read_size):
        parts.append(chunk)
    data = b"".join(parts)
    assert len(data) == node.size
    return Reg(data, node.executable)


async def read_tree(
    reader: NarReader, *, read_size: int = 65536, allow_trailing: bool = False
) -> Tree:
    """The whole tree (iteratively, so deep trees are fine); also calls `finish()`."""
    root = await reader.read_root()
    if not isinstance(root, NarDirectory):
        tree = await _read_leaf(root, read_size)
        await reader.finish(allow_trailing=allow_trailing)
        return tree
    # stack of (directory, its name in the parent, collected entries)
    stack: list[tuple[NarDirectory, bytes, list[tuple[bytes, Tree]]]] = [(root, b"", [])]
    while True:
        directory, name, entries = stack[-1]
        entry = await directory.next_entry()
        if entry is None:
            stack.pop()
            done = Dir(tuple(entries))
            if not stack:
                await reader.finish(allow_trailing=allow_trailing)
                return done
            stack[-1][2].append((name, done))
            continue
        child_name, child = entry
        if isinstance(child, NarDirectory):
            stack.append((child, child_name, []))
        else:
            entries.append((child_name, await _read_leaf(child, read_size)))


async def parse(data: bytes, *, max_read: int | None = None) -> Tree:
    return await read_tree(NarReader(BytesSource(data, max_read=max_read)))


async def consume(reader: NarReader, *, read_size: int = 7) -> None:
    """Walk everything (reading file contents in small pieces) without building a tree."""
    stack: list[NarDirectory] = []
    node: NarNode | None = await reader.read_root()
    while True:
        if isinstance(node, NarDirectory):
            stack.append(node)
        elif isinstance(node, NarFile):
            while await node.read(read_size):
                pass
        if not stack:
            break
        entry = await stack[-1].next_entry()
        if entry is None:
            stack.pop()
            node = None
        else:
            node = entry[1]
    await reader.finish()


async def write_node(slot: NarWriter | NarNodeWriter, tree: Tree) -> None:
    if isinstance(tree, Sym):
        await slot.symlink(tree.target)
    elif isinstance(tree, Reg):
        await slot.file(tree.executable, len(tree.contents), tree.contents)
    else:
        directory = await slot.directory()
        for name, child in tree.entries:
            await write_node(await directory.entry(name), child)
        await directory.close()


async def write_tree(tree: Tree) -> bytes:
    sink = ListSink()
    writer = NarWriter(sink)
    await write_node(writer, tree)
    await writer.close()
    return sink.getvalue()


async def copy_nar(reader: NarReader, writer: NarWriter) -> None:
    """Stream a NAR from a reader into a writer (file contents passed as a `ByteSource`)."""
    stack: list[tuple[NarDirectory, NarDirectoryWriter]] = []

    async def put(node: NarNode, slot: NarWriter | NarNodeWriter) -> None:
        if isinstance(node, NarSymlink):
            await slot.symlink(node.target)
        elif isinstance(node, NarFile):
            await slot.file(node.executable, node.size, node)
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


async def recopy(data: bytes, *, max_read: int | None = None) -> bytes:
    sink = ListSink()
    await copy_nar(NarReader(BytesSource(data, max_read=max_read)), NarWriter(sink))
    return sink.getvalue()
