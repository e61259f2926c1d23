"""Chunk frames: any zstd decoder reads them, compressible data is compressed (level 1),
incompressible data is not inflated, and decoding verifies digest and size."""

from __future__ import annotations

import os

import pytest
import zstandard

from pytvix.castore.blobservice.chunk_codec import (
    PROBE,
    compress_chunk,
    decode_chunk,
    encode_chunk,
    raw_frame,
)
from pytvix.castore.digests import B3Digest
from pytvix.castore.errors import StorageError

TEXT = b"".join(b"line %d of a rather repetitive text file\n" % i for i in range(20000))


@pytest.mark.parametrize(
    "chunk", [b"", b"tiny", os.urandom(PROBE), os.urandom(256 << 10), TEXT], ids=len
)
def test_round_trip_with_a_standard_decoder(chunk: bytes) -> None:
    frame = compress_chunk(chunk)
    assert zstandard.ZstdDecompressor().decompress(frame) == chunk
    assert decode_chunk(frame, B3Digest.of(chunk), len(chunk), "chunk") == chunk


def test_compressible_data_is_compressed_and_random_data_is_not_inflated() -> None:
    assert len(compress_chunk(TEXT)) < len(TEXT) // 4
    noise = os.urandom(256 << 10)
    assert len(compress_chunk(noise)) <= len(noise) + 64


def test_decode_rejects_wrong_digest_size_and_garbage() -> None:
    frame = compress_chunk(b"hello")
    with pytest.raises(StorageError, match="digest mismatch"):
        decode_chunk(frame, B3Digest.of(b"other"), None, "chunk x")
    with pytest.raises(StorageError, match="blob index says 6"):
        decode_chunk(frame, B3Digest.of(b"hello"), 6, "chunk x")
    with pytest.raises(StorageError, match="chunk x is corrupt"):
        decode_chunk(b"not zstd", B3Digest.of(b"hello"), None, "chunk x")


@pytest.mark.parametrize("size", [0, 1, 255, 128 << 10, (128 << 10) + 1, 300_000, 1 << 20])
def test_raw_frames_are_standard_zstd(size: int) -> None:
    data = os.urandom(size)
    frame = b"".join(raw_frame(data))
    assert zstandard.ZstdDecompressor().decompress(frame) == data
    streaming = zstandard.ZstdDecompressor().decompressobj()
    assert streaming.decompress(frame) == data
    assert streaming.eof
    assert zstandard.frame_content_size(frame) == size
    if 256 <= size <= 512 << 10:  # zstd's own encoding of such input (up to the default
        # maximum chunk size; above, zstd switches to a window descriptor), byte for byte
        assert frame == zstandard.ZstdCompressor(level=-1).compress(data)


def test_incompressible_chunks_are_framed_around_their_own_bytes() -> None:
    noise = os.urandom(256 << 10)
    parts = encode_chunk(noise)
    payloads = [p for p in parts if isinstance(p, memoryview)]
    assert [len(p) for p in payloads] == [128 << 10, 128 << 10]
    assert all(p.obj is noise for p in payloads)  # views, not copies
    assert b"".join(parts) == compress_chunk(noise)
    assert encode_chunk(TEXT) == [compress_chunk(TEXT)]  # compressible: one compressed part
