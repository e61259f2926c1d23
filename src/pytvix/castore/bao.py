"""Verified access to any byte range of a blob, with only its BLAKE3 digest trusted (Bao).

A blob's BLAKE3 hash is the root of a binary tree over 16 KiB groups of its bytes (each group
itself a BLAKE3 subtree of 16 chunks of 1 KiB). The *outboard* lists, in pre-order, the pair
of child chaining values (left || right, 64 bytes) of every parent node, as iroh's
`bao-tree` crate writes a pre-order outboard with chunk groups of 16 KiB (chunk_log 4): a
node over k groups has a left child over the largest power of two of groups below k, the
right child over the rest; if a node's pair is number p, its left child's is p + 1 and its
right child's p + L (L: the left child's group count). Blobs of up to 16 KiB have an empty
outboard. An outboard is 64 * (groups - 1) bytes.

`verify_groups` checks the bytes of consecutive groups against the root: every pair on the
way down must hash to its parent, every group to its pair's half. So corrupt data, a corrupt
outboard, or another blob's bytes are noticed for exactly the groups read, before any byte is
used. `check_pairs` checks all pairs of a (sub)tree top-down, which proves an outboard
without its data. The BLAKE3 tree functions come from the `pytvix_bao` extension (native/);
the walks are here (the encoded range streams are in bao_plan, bao_encode, bao_decode).
"""

from __future__ import annotations

from dataclasses import dataclass

from pytvix_bao import chunk_group_cv, group_cvs, outboard_size, parent_cv

from pytvix.buffers import Buffer
from pytvix.castore.workers import run

GROUP = 16 << 10
CHUNKS_PER_GROUP = GROUP // 1024
PAIR = 64


class BaoError(ValueError):
    """Bytes or an outboard that do not hash to the trusted root."""


@dataclass(frozen=True, slots=True)
class BlobOutboard:
    """A blob's size and its pre-order outboard (the pairs only, as iroh stores it)."""

    size: int
    pairs: bytes


def group_count(size: int) -> int:
    return max(1, -(-size // GROUP))


def left_groups(groups: int) -> int:
    """Groups under the left child of a node over `groups` (> 1) groups."""
    return 1 << ((groups - 1).bit_length() - 1)


def check_outboard_size(size: int, outboard: Buffer) -> None:
    if len(outboard) != outboard_size(size):
        raise BaoError(f"outboard of {len(outboard)} bytes for a {size}-byte blob")


def verify_groups(root: bytes, size: int, outboard: Buffer, first: int, data: Buffer) -> None:
    """Check that `data` is groups `first`.. of the blob of `size` bytes whose BLAKE3 hash is
    `root` (it must start at that group and end at a group boundary or at the blob's end);
    BaoError if any byte or any outboard pair on the way does not hash as it should."""
    groups = group_count(size)
    count = group_count(len(data)) if data else 1
    if first < 0 or first + count > groups:
        raise BaoError(f"groups {first}..{first + count} are outside the blob ({groups} groups)")
    if groups == 1:
        if len(data) != size or chunk_group_cv(data, 0, True) != root:
            raise BaoError("the blob's bytes do not hash to its digest")
        return
    check_outboard_size(size, outboard)
    cvs = group_cvs(data, first * CHUNKS_PER_GROUP)
    if len(cvs) != 32 * count:
        raise BaoError("range does not end at a group boundary or the blob's end")
    last = first + count
    # (first group, group count, pair number, expected CV, is root)
    stack: list[tuple[int, int, int, bytes, bool]] = [(0, groups, 0, root, True)]
    view = memoryview(outboard)
    while stack:
        lo, n, pair, expected, is_root = stack.pop()
        if n == 1:
            index = lo - first
            if cvs[32 * index : 32 * index + 32] != expected:
                raise BaoError(f"group {lo} does not hash to its place in the tree")
            continue
        at = PAIR * pair
        left, right = view[at : at + 32], view[at + 32 : at + PAIR]
        if parent_cv(left, right, is_root) != expected:
            raise BaoError(f"outboard pair {pair} does not hash to its parent")
        half = left_groups(n)
        if lo + half > first:  # the left child holds groups we check
            stack.append((lo, half, pair + 1, bytes(left), False))
        if lo + half < last:
            stack.append((lo + half, n - half, pair + half, bytes(right), False))


def group_span(size: int, offset: int, end: int) -> tuple[int, int, int]:
    """(first group, byte start, byte end) of the groups covering [offset, end) of a blob of
    `size` bytes (at least the group holding `offset`; end clamped to the blob)."""
    end = min(max(end, offset + 1), size)
    first = offset // GROUP
    return first, first * GROUP, min(size, -(-end // GROUP) * GROUP)


def check_pairs(expected: bytes, is_root: bool, groups: int, pairs: Buffer) -> None:
    """Check the pre-order pairs of a subtree over `groups` groups top-down against the
    subtree's CV `expected` (the root hash if `is_root`): each pair must hash to the half of
    its parent that names it. BaoError naming the first pair that does not fit."""
    if len(pairs) != PAIR * (groups - 1):
        raise BaoError(f"{len(pairs)} bytes of pairs for a subtree of {groups} groups")
    view = memoryview(pairs)
    # (pair number, groups under the node, expected CV, is root)
    stack: list[tuple[int, int, bytes | memoryview, bool]] = []
    if groups > 1:
        stack.append((0, groups, expected, is_root))
    while stack:
        pair, n, cv, root = stack.pop()
        at = PAIR * pair
        left, right = view[at : at + 32], view[at + 32 : at + PAIR]
        if parent_cv(left, right, root) != cv:
            raise BaoError(f"pair {pair} does not hash to its parent")
        half = left_groups(n)
        if half > 1:
            stack.append((pair + 1, half, left, False))
        if n - half > 1:
            stack.append((pair + half, n - half, right, False))


def check_outboard(root: bytes, outboard: BlobOutboard) -> None:
    """Check a whole outboard against the blob's digest (BaoError if any pair is wrong)."""
    check_outboard_size(outboard.size, outboard.pairs)
    check_pairs(root, True, group_count(outboard.size), outboard.pairs)


INLINE_CHECK = 64 << 10
"""Outboards up to this size (of blobs up to 16 MiB) are checked on the event loop."""


async def check_outboard_async(root: bytes, outboard: BlobOutboard) -> None:
    """check_outboard, off the event loop for large outboards."""
    if len(outboard.pairs) > INLINE_CHECK:
        await run(check_outboard, root, outboard)
    else:
        check_outboard(root, outboard)
