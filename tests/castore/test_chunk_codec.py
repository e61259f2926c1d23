"""Chunk frames: any zstd decoder reads them, compressible data is compressed (level 1),
incompressible data is not inflated, and decoding verifies digest and size."""

from __future__ import annotations

import os

import pytest
import zstandard

from pytvix.castore.blobservice.chunk_codec import PROBE, compress_chunk, decode_chunk
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
