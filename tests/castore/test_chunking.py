"""StreamChunker: cut points depend on the bytes only, never on how the stream was fed, and
are those of upstream's chunker (the fastcdc crate's FastCDC 2020, normalization level 1)."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyfastcdc.cy import FastCDC

from pytvix.castore.blobservice.chunking import StreamChunker, immutable_piece

AVG = 1024  # small average: many chunks from little data


def chunk_stream(data: bytes, splits: list[int]) -> list[bytes]:
    chunker = StreamChunker(AVG)
    out, start = [], 0
    for end in [*sorted(splits), len(data)]:
        out += chunker.feed(data[start:end])
        start = end
    out += chunker.finish()
    return [bytes(c) for c in out]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    size=st.integers(0, 40_000),
    split_fractions=st.lists(st.floats(0, 1), max_size=8),
)
def test_cuts_do_not_depend_on_feeding(seed: int, size: int, split_fractions: list[float]) -> None:
    data = random.Random(seed).randbytes(size)
    whole = chunk_stream(data, [])
    fed = chunk_stream(data, [int(f * size) for f in split_fractions])
    assert fed == whole
    assert b"".join(whole) == data
    chunker = StreamChunker(AVG)
    assert all(len(c) <= chunker.max_size for c in whole)
    assert all(len(c) >= chunker.min_size for c in whole[:-1])


def test_feeding_several_pieces_at_once_equals_one_by_one() -> None:
    data = random.Random(1).randbytes(50_000)
    pieces = [data[i : i + 3000] for i in range(0, len(data), 3000)]
    chunker = StreamChunker(AVG)
    at_once = [bytes(c) for c in [*chunker.feed(*pieces), *chunker.finish()]]
    assert at_once == chunk_stream(data, list(range(3000, len(data), 3000)))


def test_chunks_are_read_only_views() -> None:
    chunker = StreamChunker(AVG)
    chunks = [*chunker.feed(random.Random(2).randbytes(20_000)), *chunker.finish()]
    assert len(chunks) > 1
    with pytest.raises(TypeError):
        chunks[0][0] = 1


def test_single_chunk_only_below_the_minimum() -> None:
    chunker = StreamChunker(AVG)
    assert chunker.is_single_chunk(chunker.min_size)
    assert not chunker.is_single_chunk(chunker.min_size + 1)
    chunker.feed(b"x")
    assert not chunker.is_single_chunk(0)


@pytest.mark.parametrize("avg", [0, 511, (2 << 20) + 1])
def test_average_size_out_of_range(avg: int) -> None:
    with pytest.raises(ValueError, match="avg_chunk_size"):
        StreamChunker(avg)


# The fastcdc crate's gear table: the first 8 bytes (big-endian) of the MD5 of 64 copies of
# each byte value.
GEAR = [int.from_bytes(hashlib.md5(bytes([i]) * 64).digest()[:8], "big") for i in range(256)]
# The crate's masks by number of bits (log2 of the average, +1 before and -1 after it).
MASKS = {
    9: 0x0000019000353000,
    11: 0x0000D90003530000,
    17: 0x0000D90703537000,
    19: 0x0000D91707537000,
}
U64 = (1 << 64) - 1


def reference_cut(data: bytes, avg: int) -> int:
    """Length of the next chunk per FastCDC 2020, rolling one byte at a time: the gear hash
    starts at the (even-rounded) minimum, a stricter mask applies before the average and a
    looser one after; the chunk ends before the byte whose hash matches."""
    min_size, max_size = avg // 2, avg * 2
    remaining = len(data)
    if remaining <= min_size:
        return remaining
    center = avg
    if remaining > max_size:
        remaining = max_size
    elif remaining < center:
        center = remaining
    bits = avg.bit_length() - 1
    mask_s, mask_l = MASKS[bits + 1], MASKS[bits - 1]
    h = 0
    for k in range(min_size // 2 * 2, remaining // 2 * 2):
        h = ((h << 1) + GEAR[data[k]]) & U64
        if h & (mask_s if k < center // 2 * 2 else mask_l) == 0:
            return k
    return remaining


def reference_chunks(data: bytes, avg: int) -> list[bytes]:
    out, start = [], 0
    while start < len(data):
        length = reference_cut(data[start : start + 2 * avg], avg)
        out.append(data[start : start + length])
        start += length
    return out


@pytest.mark.parametrize(("avg", "size"), [(1024, 200_000), (256 << 10, 3 << 20)])
def test_cut_points_equal_an_independent_fastcdc_2020(avg: int, size: int) -> None:
    data = random.Random(avg).randbytes(size)
    chunker = StreamChunker(avg)
    ours = [bytes(c) for c in [*chunker.feed(data), *chunker.finish()]]
    assert len(ours) > 5
    assert ours == reference_chunks(data, avg)


def test_gear_hash_matches_the_crates_own_vector() -> None:
    """The crate's test: 10 KiB of zeros, min 64, avg 256, max 1024 -> ten 1 KiB chunks, each
    with gear hash 14169102344523991076 (pins the compiled chunker we rely on)."""
    chunks = list(FastCDC(256, min_size=64, max_size=1024).cut_buf(bytes(10240)))
    assert [c.length for c in chunks] == [1024] * 10
    assert {c.gear_hash for c in chunks} == {14169102344523991076}


def test_immutable_piece_copies_only_what_may_change() -> None:
    data = bytes(range(16))
    assert immutable_piece(data) is data
    view = memoryview(data)[2:10]
    assert immutable_piece(view) is view
    words = memoryview(data).cast("I")  # 4 items, 16 bytes: the piece counts bytes
    assert len(immutable_piece(words)) == 16
    mutable = bytearray(data)
    piece = immutable_piece(mutable)
    mutable[0] = 99
    assert piece == data
    assert immutable_piece(memoryview(mutable)) == bytes(mutable)
