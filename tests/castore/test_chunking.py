"""StreamChunker: cut points depend on the bytes only, never on how the stream was fed."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


@pytest.mark.parametrize("avg", [0, 511, 512 << 20])
def test_average_size_out_of_range(avg: int) -> None:
    with pytest.raises(ValueError, match="avg_chunk_size"):
        StreamChunker(avg)


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
