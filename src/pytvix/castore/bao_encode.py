"""Encoding the verified range stream of a blob (bao-tree `encode_ranges` with the 8-byte
size header iroh-blobs puts in front; the items follow bao_plan).

The blob's bytes come from `read`, which must return bytes already verified against the
digest (a BlobService reader does). The outboard is not trusted: every pair sent is checked
top-down against the digest before it goes out, and the chunk-level pairs of partly sent
groups are computed from the data and checked the same way. So the stream is valid, or
BaoError is raised before any byte that would make it invalid.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

from pytvix_bao import chunk_group_cv, encode_subtree

from pytvix.buffers import Buffer
from pytvix.castore.bao import GROUP, PAIR, BaoError, BlobOutboard, check_outboard_size
from pytvix.castore.bao_plan import Item, Kind, check_pair, left_length, plan
from pytvix.castore.bao_ranges import CHUNK, MAX_NUMBER, ChunkRanges

ReadFn = Callable[[int, int], Awaitable[Buffer]]
"""(offset, length) -> exactly those bytes of the blob, verified."""

SIZE_HEADER = struct.Struct("<Q")
PIECE = 1 << 20
SPAN_READ_MAX = 2 << 20
"""A wanted span of up to this many bytes is read from the store at once, on its first item
(one read and one check instead of one per item: a 1 MiB range at a random offset is about
a dozen items)."""


async def encode_ranges(
    root: bytes, outboard: BlobOutboard, ranges: ChunkRanges, read: ReadFn, piece: int = PIECE
) -> AsyncIterator[bytes]:
    """The stream for `ranges` (normalized for outboard.size) in pieces of about `piece`
    bytes (at most `piece` plus one item), the size header first. Small items are joined
    into pieces; an encoded subtree of a quarter piece or more goes out as it is, uncopied."""
    check_outboard_size(outboard.size, outboard.pairs)
    encoder = _Encoder(root, outboard, _SpanReader(read, ranges.byte_spans(outboard.size, GROUP)))
    out: list[Buffer] = [SIZE_HEADER.pack(outboard.size)]
    pending = SIZE_HEADER.size
    for item in plan(outboard.size, ranges):
        for part in await encoder.item(item):
            if isinstance(part, bytes) and len(part) >= piece // 4:
                if out:
                    yield b"".join(out)
                    out, pending = [], 0
                yield part
                continue
            out.append(part)
            pending += len(part)
        if pending >= piece:
            yield b"".join(out)
            out, pending = [], 0
    if out:
        yield b"".join(out)


class _SpanReader:
    """`read` for items that come in increasing offset order: a short wanted span is read
    whole on its first item and the items inside it are served from there."""

    def __init__(self, read: ReadFn, spans: list[tuple[int, int]]) -> None:
        self._read = read
        self._spans = spans
        self._held: tuple[int, memoryview] | None = None

    async def __call__(self, start: int, length: int) -> Buffer:
        if self._held is not None:
            at, data = self._held
            if at <= start and start + length <= at + len(data):
                return data[start - at : start - at + length]
        end = self._span_end(start)
        if start + length < end <= start + SPAN_READ_MAX:
            self._held = (start, memoryview(await self._read(start, end - start)))
            return self._held[1][:length]
        self._held = None
        return await self._read(start, length)

    def _span_end(self, start: int) -> int:
        i = bisect.bisect_right(self._spans, (start, MAX_NUMBER))
        if i and self._spans[i - 1][1] > start:
            return self._spans[i - 1][1]
        return start


class _Encoder:
    def __init__(self, root: bytes, outboard: BlobOutboard, read: ReadFn) -> None:
        self.size = outboard.size
        self.pairs = memoryview(outboard.pairs)
        self.read = read
        self.expected: list[Buffer] = [root]  # CVs of the nodes still to send
        self.group: tuple[int, Buffer] | None = None  # the partly sent group being split

    async def item(self, item: Item) -> list[Buffer]:
        if item.kind is Kind.PAIR:
            left: Buffer
            right: Buffer
            if item.pair >= 0:
                at = PAIR * item.pair
                left, right = self.pairs[at : at + 32], self.pairs[at + 32 : at + PAIR]
                what = f"outboard pair {item.pair}"
            else:
                left, right = await self._chunk_cvs(item)
                what = f"group at byte {item.start}"
            check_pair(item, left, right, self.expected, what)
            return [left, right]
        expected = self.expected.pop()
        if item.kind is Kind.DATA:
            data = await self._bytes(item.start, item.length)
            if chunk_group_cv(data, item.start // CHUNK, item.is_root) != expected:
                end = item.start + item.length
                raise BaoError(f"bytes {item.start}-{end} do not hash to their place")
            return [data]
        at = PAIR * item.pair
        pairs = self.pairs[at : at + PAIR * (item.groups - 1)]
        data = await self.read(item.start, item.length)
        try:
            return [encode_subtree(pairs, data, expected, item.is_root)]
        except ValueError as e:
            raise BaoError(f"outboard pairs from {item.pair}: {e}") from e

    async def _chunk_cvs(self, item: Item) -> tuple[bytes, bytes]:
        """The CVs of the two halves of a node inside a group, from the group's bytes."""
        half = left_length(item.length)
        left = await self._bytes(item.start, half)
        right = await self._bytes(item.start + half, item.length - half)
        return (
            chunk_group_cv(left, item.start // CHUNK, False),
            chunk_group_cv(right, (item.start + half) // CHUNK, False),
        )

    async def _bytes(self, start: int, length: int) -> Buffer:
        """Bytes inside one group, reading the whole group once for the items inside it."""
        first = start - start % GROUP
        if self.group is None or self.group[0] != first:
            self.group = (first, await self.read(first, min(GROUP, self.size - first)))
        offset = start - first
        return memoryview(self.group[1])[offset : offset + length]
