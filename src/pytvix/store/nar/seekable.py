"""A NAR that can be read at any byte range without rendering what precedes it (for HTTP
Range requests). The layout is computed once from the directory closure and the nodes' sizes:
a sorted list of segments, each either literal NAR framing or the contents of one blob."""

from __future__ import annotations

import bisect
from collections.abc import AsyncIterator
from dataclasses import dataclass

from pytvix.castore.blobservice import BlobService
from pytvix.castore.directoryservice import DirectoryService
from pytvix.castore.fetch import Closure, MissingContentError, fetch_tree
from pytvix.castore.nodes import DirectoryNode, FileNode, Node, SymlinkNode
from pytvix.store.nar.render import RenderError
from pytvix.store.nar.tokens import (
    TOK_DIR,
    TOK_ENT,
    TOK_EXE,
    TOK_NAR,
    TOK_NOD,
    TOK_PAR,
    TOK_REG,
    TOK_SYM,
    U64,
    ZERO_PADDING,
    encode_string,
)

READ_PIECE = 1 << 20


@dataclass(frozen=True, slots=True)
class _Blob:
    node: FileNode


class _Layout:
    """Accumulates segments, merging adjacent literals."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.items: list[bytes | _Blob] = []
        self.size = 0
        self._literal = bytearray()

    def literal(self, data: bytes) -> None:
        self._literal += data

    def blob(self, node: FileNode) -> None:
        self._flush()
        if node.size:
            self.starts.append(self.size)
            self.items.append(_Blob(node))
            self.size += node.size

    def _flush(self) -> None:
        if self._literal:
            self.starts.append(self.size)
            self.items.append(bytes(self._literal))
            self.size += len(self._literal)
            self._literal = bytearray()

    def leaf(self, node: FileNode | SymlinkNode) -> None:
        if isinstance(node, SymlinkNode):
            self.literal(TOK_SYM + encode_string(node.target) + TOK_PAR)
            return
        self.literal((TOK_EXE if node.executable else TOK_REG) + U64.pack(node.size))
        self.blob(node)
        self.literal(ZERO_PADDING[-node.size & 7] + TOK_PAR)

    def finish(self) -> None:
        self._flush()


def _layout(node: Node, closure: Closure) -> _Layout:
    layout = _Layout()
    layout.literal(TOK_NAR)
    if not isinstance(node, DirectoryNode):
        layout.leaf(node)
        layout.finish()
        return layout
    layout.literal(TOK_DIR)
    stack = [iter(closure[node.digest].entries())]
    while stack:
        for name, child in stack[-1]:
            layout.literal(TOK_ENT + encode_string(name) + TOK_NOD)
            if isinstance(child, DirectoryNode):
                layout.literal(TOK_DIR)
                stack.append(iter(closure[child.digest].entries()))
                break
            layout.leaf(child)
            layout.literal(TOK_PAR)  # closes the entry
        else:
            stack.pop()
            layout.literal(TOK_PAR + TOK_PAR if stack else TOK_PAR)  # directory (+ its entry)
    layout.finish()
    return layout


class SeekableNar:
    """The NAR of one root node; `size` is exact, `read_range` serves any [start, end)."""

    def __init__(self, layout: _Layout, blobs: BlobService) -> None:
        self._starts = layout.starts
        self._items = layout.items
        self.size = layout.size
        self._blobs = blobs

    @classmethod
    async def build(
        cls,
        node: Node,
        blobs: BlobService,
        directories: DirectoryService,
        closure: Closure | None = None,
    ) -> SeekableNar:
        """The NAR of `node` (`closure`: its directories, if already fetched)."""
        if closure is None:
            try:
                closure = await fetch_tree(directories, node)
            except MissingContentError as e:
                raise RenderError.missing(e) from e
        return cls(_layout(node, closure), blobs)

    async def read_range(self, start: int, end: int) -> AsyncIterator[bytes]:
        """The bytes [start, end) of the NAR (clamped to its size), in pieces."""
        end = min(end, self.size)
        index = max(bisect.bisect_right(self._starts, start) - 1, 0)
        pos = start
        while pos < end and index < len(self._items):
            seg_start = self._starts[index]
            item = self._items[index]
            seg_len = len(item) if isinstance(item, bytes) else item.node.size
            lo, hi = pos - seg_start, min(end, seg_start + seg_len) - seg_start
            if isinstance(item, bytes):
                yield item[lo:hi]
            else:
                async for piece in self._blob_range(item.node, lo, hi):
                    yield piece
            pos = seg_start + hi
            index += 1

    async def _blob_range(self, node: FileNode, lo: int, hi: int) -> AsyncIterator[bytes]:
        reader = await self._blobs.open_read(node.digest)
        if reader is None:
            raise RenderError("not_found", f"blob {node.digest} not found")
        async with reader:
            await reader.seek(lo)
            remaining = hi - lo
            while remaining:
                piece = await reader.read(min(remaining, READ_PIECE))
                if not piece:
                    raise RenderError(
                        "unexpected_eof",
                        f"blob {node.digest} is shorter than its node's {node.size} bytes",
                    )
                remaining -= len(piece)
                yield piece
