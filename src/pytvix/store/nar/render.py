"""castore -> NAR (PROTOCOL.md §4.5): `render_nar` and `calculate_nar`.

A directory closure is fetched with one recursive get (validated root first, since it may come
from an untrusted store) and rendered depth first in name order. Blobs are fetched ahead of
the writer (castore.fetch), so rendering many small files is not bound by per-blob latency. A
File node's size must equal its blob's length exactly; a Directory node's size is ignored.
Failures raise RenderError (a StorageError) with upstream's error kinds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pytvix.castore.blobservice import BlobService
from pytvix.castore.directoryservice import DirectoryService
from pytvix.castore.errors import StorageError
from pytvix.castore.fetch import (
    BlobPrefetcher,
    Closure,
    MissingContentError,
    fetch_tree,
    files_in_order,
)
from pytvix.castore.nodes import DirectoryNode, FileNode, Node, SymlinkNode
from pytvix.castore.readahead import BUDGET
from pytvix.observability import traced
from pytvix.store.nar.errors import NarWriteError
from pytvix.store.nar.io import ByteSink, HashingSink
from pytvix.store.nar.writer import (
    CONTENT_READ_SIZE,
    DEFAULT_BUFFER_SIZE,
    NarDirectoryWriter,
    NarNodeWriter,
    NarWriter,
)

LARGE_READ = 8 << 20
"""What a render asks a file's reader for at a time while the read-ahead budget allows: each
read is a hop to a worker thread, which dominates at 256 KiB (README, "Measurements behind the
code")."""

RenderErrorKind = Literal["not_found", "directory_not_found", "unexpected_eof", "invalid_input"]


class RenderError(StorageError):
    """Rendering failed: a missing blob or directory, or a blob of the wrong size."""

    def __init__(self, kind: RenderErrorKind, message: str) -> None:
        super().__init__(f"failed rendering nar: {message}")
        self.kind = kind

    @classmethod
    def missing(cls, e: MissingContentError) -> RenderError:
        return cls("not_found" if e.what == "blob" else "directory_not_found", str(e))


@traced("nar.render")
async def render_nar(
    sink: ByteSink,
    node: Node,
    blobs: BlobService,
    directories: DirectoryService,
    closure: Closure | None = None,
    *,
    buffer_size: int = DEFAULT_BUFFER_SIZE,
) -> None:
    """Write the NAR of `node` to `sink` (`closure`: its directories, if already fetched), in
    writes of at least `buffer_size` bytes (but the last)."""
    try:
        if closure is None:
            closure = await fetch_tree(directories, node)
        prefetcher = BlobPrefetcher(blobs, files_in_order(node, closure))
        try:
            with BUDGET.reserved(LARGE_READ) as large_reads:
                read_size = LARGE_READ if large_reads else CONTENT_READ_SIZE
                writer = NarWriter(sink, buffer_size=buffer_size, read_size=read_size)
                await _write_node(writer, node, closure, prefetcher)
                await writer.close()
        finally:
            prefetcher.close()
    except NarWriteError as e:
        raise RenderError(e.kind, str(e)) from e
    except MissingContentError as e:
        raise RenderError.missing(e) from e


async def _write_node(
    slot: NarWriter, node: Node, closure: Closure, prefetcher: BlobPrefetcher
) -> None:
    if not isinstance(node, DirectoryNode):
        await _write_leaf(slot, node, prefetcher)
        return
    stack: list[tuple[NarDirectoryWriter, Iterator[tuple[bytes, Node]]]] = [
        (await slot.directory(), iter(closure[node.digest].entries()))
    ]
    while stack:
        dir_writer, entries = stack[-1]
        for name, child in entries:
            entry = await dir_writer.entry(name)
            if isinstance(child, DirectoryNode):
                stack.append((await entry.directory(), iter(closure[child.digest].entries())))
                break
            await _write_leaf(entry, child, prefetcher)
        else:
            stack.pop()
            await dir_writer.close()


async def _write_leaf(
    slot: NarWriter | NarNodeWriter, node: FileNode | SymlinkNode, prefetcher: BlobPrefetcher
) -> None:
    if isinstance(node, SymlinkNode):
        await slot.symlink(node.target)
        return
    contents = await prefetcher.next()
    if isinstance(contents, bytes):
        await slot.file(node.executable, node.size, contents)
    else:
        async with contents:
            await slot.file(node.executable, node.size, contents)


async def calculate_nar(
    node: Node, blobs: BlobService, directories: DirectoryService
) -> tuple[int, bytes]:
    """(nar_size, nar_sha256) of `node`'s NAR, rendered and hashed."""
    sink = HashingSink()
    await render_nar(sink, node, blobs, directories)
    return sink.size, sink.sha256.digest()
