"""Decoding a verified range stream (bao-tree `decode_ranges`, after iroh's 8-byte size
header) as it arrives, trusting only the blob's digest.

`RangeDecoder.feed` takes the received bytes in any pieces and returns the blob's bytes it
has verified so far, as (offset, bytes) in increasing order; nothing is returned before it
is checked. Every pair must hash to the CV its parent named (the root to the digest), every
group or chunk to its pair's half, so a flipped byte, a wrong outboard pair or another
blob's bytes raise BaoError naming the byte range, and the ranges before it stay good. The
size in the header shapes the tree and is only proven once an item holding the blob's last
chunk verified (`size_proven`). Memory: at most one item (a BULK item, about 1 MiB) besides
the piece being fed.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from pytvix_bao import chunk_group_cv, decode_subtree

from pytvix.buffers import Buffer, ByteQueue
from pytvix.castore.bao import BaoError
from pytvix.castore.bao_plan import Item, Kind, check_pair, plan
from pytvix.castore.bao_ranges import CHUNK, ChunkRanges, RangeSpec

SIZE_HEADER = struct.Struct("<Q")

Piece = tuple[int, Buffer]
"""(offset in the blob, verified bytes)."""


class RangeDecoder:
    def __init__(self, root: bytes, spec: RangeSpec | None = None) -> None:
        """Decode the stream for `spec` (None: the whole blob) of the blob whose BLAKE3
        hash is `root`."""
        self.root = root
        self.spec = spec
        self.size: int | None = None
        self.size_proven = False
        self._items: Iterator[Item] | None = None
        self._next: Item | None = None
        self._expected: list[Buffer] = [root]
        self._received = ByteQueue()

    @property
    def done(self) -> bool:
        """Whether every item of the stream has been received and verified."""
        return self._items is not None and self._next is None

    def feed(self, data: Buffer) -> list[Piece]:
        """Take more of the stream; the blob's bytes verified thanks to it. BaoError if
        anything received does not verify, or the stream goes on past its end."""
        self._received.append(data if isinstance(data, bytes) else bytes(data))
        out: list[Piece] = []
        if self._items is None:
            if self._received.size < SIZE_HEADER.size:
                return out
            (self.size,) = SIZE_HEADER.unpack(self._received.take(SIZE_HEADER.size))
            ranges = self.spec.resolve(self.size) if self.spec else ChunkRanges.all(self.size)
            self._items = plan(self.size, ranges)
            self._next = next(self._items, None)
        while self._next is not None and self._received.size >= self._next.encoded_length:
            piece = self._verify(self._next)
            if piece is not None:
                out.append(piece)
            self._next = next(self._items, None)
        if self._next is None and self._received.size:
            raise BaoError(f"{self._received.size} bytes after the end of the stream")
        return out

    def finish(self) -> None:
        """The stream has ended: BaoError unless all of it arrived."""
        if not self.done:
            where = "the size header" if self._next is None else _span(self._next)
            raise BaoError(f"the stream ended early, at {where}")

    def _verify(self, item: Item) -> Piece | None:
        """Check the next item, taking its bytes from what was received."""
        if item.kind is Kind.PAIR:
            view = memoryview(self._received.take(item.encoded_length))
            check_pair(item, view[:32], view[32:], self._expected, f"{_span(item)}: a pair")
            return None
        expected = self._expected.pop()
        data: Buffer
        if item.kind is Kind.DATA:
            data = self._received.take(item.encoded_length)
            if chunk_group_cv(data, item.start // CHUNK, item.is_root) != expected:
                raise BaoError(f"{_span(item)} do not hash to their place in the tree")
        else:
            data = self._verify_bulk(item, expected)
        if item.start + item.length == self.size:
            self.size_proven = True
        return item.start, data

    def _verify_bulk(self, item: Item, expected: Buffer) -> bytes:
        """A BULK item's groups, checked with the pairs between them in one native call
        (which copies the groups, once, into the bytes returned)."""
        encoded = self._received.take(item.encoded_length)
        try:
            return decode_subtree(encoded, expected, item.is_root, item.start // CHUNK, item.length)
        except ValueError as e:
            raise BaoError(f"{_span(item)}: {e}") from e


def _span(item: Item) -> str:
    return f"bytes {item.start}-{item.start + item.length}"
