"""Bao outboards and encoded range streams: byte-identical to iroh's bao-tree (the vectors in
native/tests/encoded_ranges.txt come from bao-tree's encoder, checked by `make native-test`),
decodable for every range at every boundary, and failing for exactly what was tampered with."""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest
from pytvix_bao import OutboardHasher, outboard, outboard_size

from pytvix.castore.bao import (
    GROUP,
    BaoError,
    BlobOutboard,
    check_outboard,
    group_count,
    verify_groups,
)
from pytvix.castore.bao_decode import RangeDecoder
from pytvix.castore.bao_encode import encode_ranges
from pytvix.castore.bao_plan import encoded_size
from pytvix.castore.bao_ranges import (
    MAX_RANGES,
    ChunkRanges,
    RangeSpec,
    RangeSyntaxError,
)

VECTORS = Path(__file__).resolve().parents[2] / "native" / "tests" / "encoded_ranges.txt"
KIB = 1024
MIB = 1 << 20
SIZES = [0, 1, 1023, 1024, 1025, 16383, 16384, 16385, MIB + 1]


def xof(size: int, seed: int) -> bytes:
    """The test data of the vectors: BLAKE3 XOF of the seed's 8 little-endian bytes."""
    return blake3.blake3(struct.pack("<Q", seed)).digest(length=size)


def spec_of(query: str) -> RangeSpec | None:
    return None if query == "all" else RangeSpec.parse(query)


async def encode(data: bytes, spec: RangeSpec | None, pairs: bytes | None = None) -> bytes:
    root, ob = outboard(data)
    ranges = spec.resolve(len(data)) if spec else ChunkRanges.all(len(data))

    async def read(offset: int, n: int) -> memoryview:
        return memoryview(data)[offset : offset + n]

    board = BlobOutboard(len(data), ob if pairs is None else pairs)
    return b"".join([part async for part in encode_ranges(root, board, ranges, read)])


def decode(root: bytes, spec: RangeSpec | None, stream: bytes, step: int = 1000) -> bytes:
    """Decode in pieces of `step` bytes; the verified bytes, joined (they must be
    contiguous pieces in increasing order)."""
    decoder = RangeDecoder(root, spec)
    got: list[tuple[int, bytes]] = []
    for at in range(0, len(stream), step):
        got += [(o, bytes(b)) for o, b in decoder.feed(stream[at : at + step])]
    decoder.finish()
    assert [o for o, _ in got] == sorted(o for o, _ in got)
    return b"".join(b for _, b in got)


def vectors() -> Iterator[tuple[int, int, str, int, str]]:
    for line in VECTORS.read_text().splitlines():
        if line and not line.startswith("#"):
            size, seed, query, length, digest = line.split()
            yield int(size), int(seed), query, int(length), digest


@pytest.mark.parametrize("size", SIZES)
def test_outboard_sizes_and_root(size: int) -> None:
    data = random.Random(size).randbytes(size)
    root, ob = outboard(data)
    assert root == blake3.blake3(data).digest()
    assert len(ob) == outboard_size(size) == 64 * (group_count(size) - 1)
    check_outboard(root, BlobOutboard(size, ob))


def test_outboard_of_a_multi_gib_sparse_blob() -> None:
    """5 GiB (past 2^32 bytes) of zeros with a marked byte every 256 MiB: the outboard
    streams, its size and root are right, and ranges at the 4 GiB boundary verify."""
    size = 5 << 30
    zeros = bytes(16 * MIB)

    def piece(offset: int, n: int) -> bytes:
        out = bytearray(n)
        for mark in range(-(-offset // (256 * MIB)) * 256 * MIB, offset + n, 256 * MIB):
            out[mark - offset] = 0xA5
        return bytes(out)

    hasher = OutboardHasher()
    plain = blake3.blake3()
    for offset in range(0, size, len(zeros)):
        block = piece(offset, len(zeros)) if offset % (256 * MIB) == 0 else zeros
        hasher.update(block)
        plain.update(block)
    root, ob = hasher.finalize()
    assert root == plain.digest()
    assert len(ob) == 64 * (size // GROUP - 1)
    check_outboard(root, BlobOutboard(size, ob))
    for first in (4 * 65536 - 1, 4 * 65536, size // GROUP - 1):
        data = piece(first * GROUP, GROUP)
        verify_groups(root, size, ob, first, data)
        with pytest.raises(BaoError):
            verify_groups(root, size, ob, first, b"\1" + data[1:])


@pytest.mark.parametrize(("size", "seed", "query", "length", "digest"), list(vectors()))
async def test_encoding_is_bao_trees(
    size: int, seed: int, query: str, length: int, digest: str
) -> None:
    data = xof(size, seed)
    spec = spec_of(query)
    stream = await encode(data, spec)
    header, body = stream[:8], stream[8:]
    assert struct.unpack("<Q", header) == (size,)
    assert (len(body), blake3.blake3(body).hexdigest()) == (length, digest)
    ranges = spec.resolve(size) if spec else ChunkRanges.all(size)
    assert encoded_size(size, ranges) == len(stream)
    # the decoder returns exactly the requested chunks (clamped to the blob)
    expected = b"".join(data[lo:hi] for lo, hi in ranges.byte_spans(size))
    root = blake3.blake3(data).digest()
    assert decode(root, spec, stream, step=777) == expected


@pytest.mark.parametrize("size", [*SIZES, 5 * GROUP + 1000, 3 * MIB + 12345])
async def test_every_boundary_range_verifies(size: int) -> None:
    data = random.Random(size).randbytes(size)
    root = blake3.blake3(data).digest()
    chunks = max(1, -(-size // KIB))
    edges = sorted({0, 1, 15, 16, 17, 31, 32, chunks - 2, chunks - 1, chunks, chunks + 5})
    for a in (e for e in edges if e >= 0):
        for b in (e for e in edges if e >= a):
            spec = RangeSpec.parse(f"{a}-{b}")
            got = decode(root, spec, await encode(data, spec))
            lo = min(a, chunks - 1) * KIB
            assert got == data[lo : min(size, (min(b, chunks - 1) + 1) * KIB)]
    # the last chunk proves the size
    decoder = RangeDecoder(root, RangeSpec.last_chunk())
    decoder.feed(await encode(data, RangeSpec.last_chunk()))
    decoder.finish()
    assert decoder.size_proven
    assert decoder.size == size


def tampered(stream: bytes, at: int) -> bytes:
    return stream[:at] + bytes([stream[at] ^ 1]) + stream[at + 1 :]


async def test_tampering_fails_exactly_the_affected_item() -> None:
    """Group-sized ranges of a 40-group blob, one stream: a flipped data byte fails its
    group's range (earlier ranges arrive verified), a flipped pair fails the ranges below it,
    a wrong size header or another blob's stream fails at once."""
    size = 40 * GROUP + 123
    data = random.Random(7).randbytes(size)
    root = blake3.blake3(data).digest()
    spec = RangeSpec.parse(",".join(f"{16 * g}-{16 * g + 15}" for g in range(0, 40, 3)))
    stream = await encode(data, spec)
    assert decode(root, spec, stream)
    # a data byte of group 9 (the fourth range): the ranges of groups 0, 3 and 6 verify
    at = stream.index(data[9 * GROUP : 9 * GROUP + 64]) + 100
    decoder = RangeDecoder(root, spec)
    bad = tampered(stream, at)
    verified: list[int] = []
    for step in range(0, at - 100, 512):
        verified += [o for o, _ in decoder.feed(bad[step : min(step + 512, at - 100)])]
    assert verified == [0, 3 * GROUP, 6 * GROUP]
    with pytest.raises(BaoError, match=f"bytes {9 * GROUP}-{10 * GROUP}"):
        decoder.feed(bad[at - 100 :])
    # the root pair, right after the header
    with pytest.raises(BaoError, match="pair does not hash"):
        RangeDecoder(root, spec).feed(tampered(stream, 8 + 40))
    # a size header claiming one group more: ranges whose path the lie does not change
    # still verify, but the size is not proven; with the last chunk asked for, it fails
    lying = RangeDecoder(root, spec)
    lying.feed(struct.pack("<Q", size + GROUP) + stream[8:])
    lying.finish()
    assert not lying.size_proven
    with_last = spec + RangeSpec.last_chunk()
    honest = await encode(data, with_last)
    with pytest.raises(BaoError):
        RangeDecoder(root, with_last).feed(struct.pack("<Q", size + GROUP) + honest[8:])
    # another blob of the same size under this digest
    other = await encode(random.Random(8).randbytes(size), spec)
    with pytest.raises(BaoError):
        RangeDecoder(root, spec).feed(other)
    # a stream cut short, or one with bytes after its end
    decoder = RangeDecoder(root, spec)
    decoder.feed(stream[:-1])
    with pytest.raises(BaoError, match="ended early"):
        decoder.finish()
    with pytest.raises(BaoError, match="after the end"):
        RangeDecoder(root, spec).feed(stream + b"x")


async def test_encoder_checks_the_outboard() -> None:
    """A stored outboard with a flipped byte is never sent: the pair is checked first."""
    data = random.Random(3).randbytes(10 * GROUP)
    _, ob = outboard(data)
    bad = bytearray(ob)
    bad[64 * 8 + 5] ^= 1  # the pair of groups 8 | 9
    with pytest.raises(BaoError):
        await encode(data, None, bytes(bad))
    # ranges whose path does not use that pair are still served
    spec = RangeSpec.parse("0-15")
    assert decode(blake3.blake3(data).digest(), spec, await encode(data, spec, bytes(bad)))


def test_range_text() -> None:
    assert RangeSpec.parse("0-15,40,70-").resolve(100 * KIB).text() == "0-15,40,70-99"
    assert RangeSpec.parse("-1").resolve(100 * KIB).text() == "99"
    assert RangeSpec.parse("5000-").resolve(100 * KIB).text() == "99"
    assert RangeSpec.parse("0-0,1,2-3").resolve(100 * KIB).text() == "0-3"
    assert RangeSpec.parse("0-1023", unit=1).resolve(100 * KIB).text() == "0"
    assert RangeSpec.parse("1000-1100", unit=1).resolve(100 * KIB).text() == "0-1"
    assert RangeSpec.parse("-10", unit=1).resolve(100 * KIB).text() == "99"
    assert RangeSpec.parse("-1").resolve(0).text() == "0"
    assert RangeSpec.parse("3-,7").text() == "3-,7"
    for bad in ["", "a", "1-a", "5-3", "1--2", "-", "1,,2", "+1", "1" * 20, "²"]:
        with pytest.raises(RangeSyntaxError):
            RangeSpec.parse(bad)
    RangeSpec.parse(",".join(["1"] * MAX_RANGES))
    with pytest.raises(RangeSyntaxError, match="more than"):
        RangeSpec.parse(",".join(["1"] * (MAX_RANGES + 1)))
