"""The shape of an encoded range stream (bao-tree `encode_ranges`, 16 KiB groups): which
items follow the 8-byte size header, in order, for a blob of a given size and the chunk
ranges asked for. The encoder (bao_encode) and the decoder (bao_decode) walk the same plan,
so they agree by construction; README "Protocol notes" states the rules.

From the root, in pre-order, only nodes whose chunks intersect the ranges:
- a node over more than one group: its pair (left CV || right CV), then its children;
- a group entirely wanted, or a single chunk: its bytes;
- a group partly wanted: its chunk-level subtree by the same rule (pairs of chunk CVs).
A subtree of at most `bulk` bytes that is wanted entirely is one BULK item: its pairs and
groups interleaved in pre-order, exactly as the rule above lays them out, handled in one
step (its pairs are also one contiguous run of the pre-order outboard).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

from pytvix_bao import parent_cv

from pytvix.buffers import Buffer
from pytvix.castore.bao import GROUP, PAIR, BaoError, group_count
from pytvix.castore.bao_ranges import CHUNK, ChunkRanges

BULK_MAX = 1 << 20
"""Largest wholly wanted subtree handled as one BULK item."""


class Kind(Enum):
    PAIR = "pair"
    DATA = "data"
    BULK = "bulk"


@dataclass(frozen=True, slots=True)
class Item:
    """One step of the stream: a node of `length` bytes at byte `start` of the blob."""

    kind: Kind
    start: int
    length: int
    is_root: bool
    pair: int  # the node's pair in the outboard (nodes over several groups), else -1
    left: bool = False  # PAIR: whether items of the left child follow
    right: bool = False  # PAIR: whether items of the right child follow

    @property
    def groups(self) -> int:
        return group_count(self.length)

    @property
    def encoded_length(self) -> int:
        if self.kind is Kind.PAIR:
            return PAIR
        if self.kind is Kind.DATA:
            return self.length
        return PAIR * (self.groups - 1) + self.length


def left_length(length: int) -> int:
    """Bytes under the left child of a node of `length` (> 1024) bytes: the largest power
    of two of chunks below its chunk count (whole groups above the group level)."""
    chunks = -(-length // CHUNK)
    return CHUNK << ((chunks - 1).bit_length() - 1)


def plan(size: int, ranges: ChunkRanges, bulk: int = BULK_MAX) -> Iterator[Item]:
    """The items of the stream for `ranges` of a blob of `size` bytes, in order."""
    stack = [(0, size, True, 0 if size > GROUP else -1)]
    while stack:
        start, length, is_root, pair = stack.pop()
        first = start // CHUNK
        end = -(-(start + max(length, 1)) // CHUNK)
        if not ranges.touches(first, end):
            continue
        whole = ranges.covers(first, end)
        if length <= CHUNK or (length <= GROUP and whole):
            yield Item(Kind.DATA, start, length, is_root, -1)
            continue
        if whole and length <= bulk:
            yield Item(Kind.BULK, start, length, is_root, pair)
            continue
        half = left_length(length)
        # pairs of the outboard exist for nodes over more than one group
        left_pair = pair + 1 if half > GROUP else -1
        right_pair = pair + half // GROUP if length - half > GROUP else -1
        mid = (start + half) // CHUNK
        left = ranges.touches(first, mid)
        right = ranges.touches(mid, end)
        yield Item(Kind.PAIR, start, length, is_root, pair, left, right)
        if right:
            stack.append((start + half, length - half, False, right_pair))
        if left:
            stack.append((start, half, False, left_pair))


def check_pair(item: Item, left: Buffer, right: Buffer, expected: list[Buffer], what: str) -> None:
    """Check the CVs of a PAIR item against the CV its parent named (popped off `expected`),
    then push the CVs its children must hash to, the left one on top (its items come first).
    BaoError naming `what` if they do not fit."""
    if parent_cv(left, right, item.is_root) != expected.pop():
        raise BaoError(f"{what} does not hash to its parent")
    if item.right:
        expected.append(right)
    if item.left:
        expected.append(left)


def encoded_size(size: int, ranges: ChunkRanges) -> int:
    """Bytes of the stream, size header included."""
    return 8 + sum(item.encoded_length for item in plan(size, ranges, bulk=size))
