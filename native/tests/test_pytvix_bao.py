"""pytvix_bao against the blake3 package, and the outboard layout of README.md."""

from __future__ import annotations

import random

import blake3
import pytest
import pytvix_bao as bao

KIB = 1024
MIB = 1024 * KIB
GROUP = 16 * KIB
SIZES = [
    0,
    1,
    1023,
    1024,
    1025,
    16383,
    16384,
    16385,
    2 * GROUP,
    3 * GROUP - 1,
    5 * GROUP + 1000,
    7 * GROUP + 1,
    100_000,
    MIB + 1,
    3 * MIB + 12_345,
]


def data(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def rebuild(size: int, ob: bytes, d: bytes) -> bytes:
    """Root hash from the pre-order outboard as README.md lays it out, checking every
    pair against CVs recomputed from the data."""
    groups = max(1, -(-size // GROUP))
    cvs = bao.group_cvs(d, 0)
    pos = 0

    def node(first: int, n: int, is_root: bool) -> bytes:
        nonlocal pos
        if n == 1:
            lo = first * GROUP
            return bao.chunk_group_cv(d[lo : lo + GROUP], first * 16, is_root)
        pair = ob[pos : pos + 64]
        pos += 64
        left_n = 1 << ((n - 1).bit_length() - 1)  # largest power of two < n
        left = node(first, left_n, False)
        right = node(first + left_n, n - left_n, False)
        assert pair == left + right
        if n == 2 and not is_root:
            assert cvs[first * 32 : first * 32 + 32] == left
        return bao.parent_cv(left, right, is_root)

    root = node(0, groups, True)
    assert pos == len(ob)
    return root


@pytest.mark.parametrize("size", SIZES)
def test_outboard_layout_and_root(size: int) -> None:
    d = data(size, size)
    root, ob = bao.outboard(d)
    assert root == blake3.blake3(d).digest()
    assert len(ob) == bao.outboard_size(size) == 64 * (max(1, -(-size // GROUP)) - 1)
    assert rebuild(size, ob, d) == root
    assert (root, ob) == bao.outboard(d, max_threads=bao.AUTO) == bao.outboard(d, max_threads=2)


@pytest.mark.parametrize("size", [s for s in SIZES if s > 0])
def test_streaming_odd_splits(size: int) -> None:
    d = data(size, size + 1)
    expected = bao.outboard(d)
    rng = random.Random(size)
    for max_threads in (1, bao.AUTO):
        h = bao.OutboardHasher(max_threads=max_threads)
        pos = 0
        while pos < size:
            step = rng.choice([1, 7, 1023, 1025, GROUP - 1, GROUP, GROUP + 1, 200_001, MIB + 3])
            h.update(d[pos : pos + step])
            pos += step
        assert len(h) == size
        assert h.finalize() == expected


def test_buffer_kinds_and_finalize_is_not_destructive() -> None:
    d = data(5 * GROUP + 3, 9)
    h = bao.OutboardHasher()
    h.update(memoryview(d)[:GROUP])
    h.update(bytearray(d[GROUP : 3 * GROUP]))
    first = h.finalize()
    assert first == bao.outboard(d[: 3 * GROUP])
    assert h.finalize() == first
    h.update(memoryview(d)[3 * GROUP :])
    assert h.finalize() == bao.outboard(d)
    with pytest.raises(BufferError):
        h.update(memoryview(d)[::2])


def test_top_pair_recomputes_root() -> None:
    d = data(7 * GROUP + 1, 3)  # 8 groups: left = groups 0..4, right = 4..8
    root, ob = bao.outboard(d)
    left, right = ob[:32], ob[32:64]
    assert bao.parent_cv(left, right, True) == root
    assert bao.chunk_group_cv(d[: 4 * GROUP], 0, False) == left
    assert bao.chunk_group_cv(d[4 * GROUP :], 64, False) == right
    assert bao.parent_cv(memoryview(ob)[:32], ob[32:64], False) != root


def test_group_cvs_agree_with_chunk_group_cv() -> None:
    d = data(10 * GROUP + 777, 4)
    for start_group, n_bytes in [(0, len(d)), (3, 4 * GROUP), (4, 2 * GROUP + 5), (9, 1)]:
        part = d[start_group * GROUP : start_group * GROUP + n_bytes]
        cvs = bao.group_cvs(part, start_group * 16)
        expected = b"".join(
            bao.chunk_group_cv(part[i : i + GROUP], start_group * 16 + i // 1024, False)
            for i in range(0, len(part), GROUP)
        )
        assert cvs == expected
    assert bao.group_cvs(b"", 16) == b""


def test_chunk_level_cvs() -> None:
    # a partially requested group is verified chunk by chunk (see README.md)
    d = data(GROUP, 5)
    chunks = [bao.chunk_group_cv(d[i * KIB : (i + 1) * KIB], i, False) for i in range(16)]
    while len(chunks) > 2:
        pairs = zip(chunks[::2], chunks[1::2], strict=True)
        chunks = [bao.parent_cv(left, right, False) for left, right in pairs]
    assert bao.parent_cv(chunks[0], chunks[1], True) == blake3.blake3(d).digest()
    assert bao.chunk_group_cv(d[:KIB], 0, True) == blake3.blake3(d[:KIB]).digest()


def test_pre_order_navigation() -> None:
    """README.md: in a subtree of n groups whose pair is at index p, the left child's pair
    is at p + 1 and the right child's at p + L (L = largest power of two below n)."""
    d = data(37 * GROUP + 5, 6)
    _, ob = bao.outboard(d)
    cvs = bao.group_cvs(d, 0)
    for group in range(38):
        p, first, n = 0, 0, 38
        while True:
            left_n = 1 << ((n - 1).bit_length() - 1)
            pair = ob[64 * p : 64 * p + 64]
            if group < first + left_n:
                p, n = p + 1, left_n
                side = pair[:32]
            else:
                p, first, n = p + left_n, first + left_n, n - left_n
                side = pair[32:]
            if n == 1:
                assert side == cvs[32 * group : 32 * group + 32]
                break


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="never empty"):
        bao.chunk_group_cv(b"", 16, False)  # an empty subtree is only ever the root
    with pytest.raises(ValueError, match="at most 16384 bytes"):
        bao.chunk_group_cv(b"x" * (GROUP + 1), 16, False)  # too long for chunk 16
    with pytest.raises(ValueError, match="starts at chunk 0"):
        bao.chunk_group_cv(b"x", 16, True)  # a root starts at chunk 0
    with pytest.raises(ValueError, match="32 bytes"):
        bao.parent_cv(b"x" * 31, b"y" * 32, False)
    with pytest.raises(ValueError, match="multiple of 16"):
        bao.group_cvs(b"x", 8)
    with pytest.raises(ValueError, match="max_threads"):
        bao.OutboardHasher(max_threads=0)


def test_large_streamed() -> None:
    d = data(64 * MIB + 1, 64)
    h = bao.OutboardHasher()
    view = memoryview(d)
    for pos in range(0, len(d), MIB):
        h.update(view[pos : pos + MIB])
    root, ob = h.finalize()
    assert root == blake3.blake3(d, max_threads=blake3.blake3.AUTO).digest()
    assert len(ob) == 64 * 4096
    assert (root, ob) == bao.outboard(d, max_threads=bao.AUTO)
    # the top pair: left = first 64 MiB (4096 groups), right = the last byte
    assert ob[:32] == bao.chunk_group_cv(d[: 64 * MIB], 0, False)
    assert ob[32:64] == bao.group_cvs(d[64 * MIB :], 64 * 1024)
