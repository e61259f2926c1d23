"""NAR -> castore (PROTOCOL.md §4.4): `ingest_nar`.

The NAR is parsed strictly while its sha256 and size are computed over the same bytes. Small
files are buffered and uploaded in parallel (bounded memory), large ones streamed; directories
are uploaded leaves first. Trailing bytes after the NAR are an error. Nothing is uploaded as a
directory closure unless the whole NAR parsed.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable

from pytvix.castore.blobservice import BlobService
from pytvix.castore.directoryservice import DirectoryService
from pytvix.castore.ingest.tree import (
    PER_BLOB_OVERHEAD,
    BlobBatcher,
    ByteBudget,
    TreeBuilder,
    file_node,
    first_error,
)
from pytvix.castore.nodes import Node, SymlinkNode
from pytvix.observability import traced
from pytvix.store.nar.io import ByteSource
from pytvix.store.nar.reader import NarDirectory, NarFile, NarReader, NarSymlink

SMALL_FILE = 1 << 20
PIECE = 1 << 20


@traced("nar.ingest")
async def ingest_nar(
    source: ByteSource, blobs: BlobService, directories: DirectoryService
) -> tuple[Node, int, bytes]:
    """Import a NAR stream; returns (root node, nar_size, nar_sha256). Raises NarError for an
    invalid NAR (including trailing data)."""
    sha = hashlib.sha256()
    reader = NarReader(source, hasher=sha)
    budget = ByteBudget()
    try:
        async with asyncio.TaskGroup() as tasks:
            tree = TreeBuilder(directories.put_multiple_start(), tasks)
            batcher = BlobBatcher(blobs, tasks, budget)

            async def leaf(name: bytes, node: NarSymlink | NarFile) -> None:
                if isinstance(node, NarSymlink):
                    tree.leaf(name, SymlinkNode(node.target))
                elif node.size <= SMALL_FILE:
                    charge = node.size + PER_BLOB_OVERHEAD
                    if not budget.try_acquire(charge):
                        batcher.flush()  # its uploads are what frees budget
                        await budget.acquire(charge)
                    data = await _read_all(node)
                    tree.leaf(name, batcher.add(data, node.executable, charge))
                else:
                    batcher.flush()
                    tree.leaf(name, await _stream_file(blobs, node))

            root = await reader.read_root()
            if isinstance(root, NarDirectory):
                await _walk(root, tree, leaf)
            else:
                await leaf(b"", root)
            await reader.finish()
            batcher.flush()
            node = await tree.root()
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    return node, reader.bytes_read, sha.digest()


LeafFn = Callable[[bytes, NarSymlink | NarFile], Awaitable[None]]


async def _walk(root: NarDirectory, tree: TreeBuilder, leaf: LeafFn) -> None:
    """Depth first over the NAR's directories without recursion."""
    tree.dir_start()
    stack: list[tuple[bytes, NarDirectory]] = [(b"", root)]
    while stack:
        name, directory = stack[-1]
        entry = await directory.next_entry()
        if entry is None:
            stack.pop()
            tree.dir_end(name)
            continue
        child_name, child = entry
        if isinstance(child, NarDirectory):
            tree.dir_start()
            stack.append((child_name, child))
        else:
            await leaf(child_name, child)


async def _read_all(node: NarFile) -> bytes:
    parts = []
    while piece := await node.read(PIECE):
        parts.append(piece)
    return parts[0] if len(parts) == 1 else b"".join(parts)


async def _stream_file(blobs: BlobService, node: NarFile) -> Node:
    writer = await blobs.open_write()
    try:
        while piece := await node.read(PIECE):
            await writer.write(piece)
    except BaseException:
        await writer.abort()
        raise
    return file_node(await writer.close(), node.size, node.executable)
