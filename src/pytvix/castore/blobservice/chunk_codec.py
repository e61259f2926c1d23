"""Stored chunk bytes: one zstd frame per chunk (upstream's layout), compressed on write and
decompressed and verified against the chunk digest on every read. Shared by the chunking
backends (object store, NATS). Blocking; call from worker threads for large chunks."""

from __future__ import annotations

import threading

import blake3
import zstandard

from pytvix.castore.digests import B3Digest
from pytvix.castore.errors import StorageError

ZSTD_LEVEL = 1
# zstd's fast mode, for chunks that do not compress: at level 1 zstd spends about 190 µs on a
# 256 KiB chunk of random bytes (1.3 GB/s, the most expensive step of a write) to find no
# matches; level -1 gives the same frame size at 13 GB/s. A 16 KiB probe from the middle of
# the chunk (about 6 µs) decides; compressible data keeps level 1.
FAST_LEVEL = -1
PROBE = 16 << 10
INCOMPRESSIBLE = 0.97  # probe frame size / probe size at or above which data counts as such

_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cctx: zstandard.ZstdCompressor | None = getattr(_local, f"cctx{level}", None)
    if cctx is None:
        cctx = zstandard.ZstdCompressor(level=level)
        setattr(_local, f"cctx{level}", cctx)
    return cctx


def compress_chunk(chunk: bytes | memoryview) -> bytes:
    """The chunk as one zstd frame (with its content size); any zstd decoder reads it."""
    cctx = _compressor(ZSTD_LEVEL)
    if len(chunk) >= 4 * PROBE:
        middle = len(chunk) // 2
        probe = memoryview(chunk)[middle : middle + PROBE]
        if len(cctx.compress(probe)) >= PROBE * INCOMPRESSIBLE:
            cctx = _compressor(FAST_LEVEL)
    return cctx.compress(chunk)


def _decompress(frame: bytes | memoryview) -> bytes:
    """Decompress one zstd frame. Frames written by streaming encoders (as upstream's) carry
    no content size; those take the slower streaming path."""
    dctx: zstandard.ZstdDecompressor | None = getattr(_local, "dctx", None)
    if dctx is None:
        dctx = _local.dctx = zstandard.ZstdDecompressor()
    if zstandard.frame_content_size(frame) >= 0:
        return dctx.decompress(frame)
    dobj = dctx.decompressobj()
    out = dobj.decompress(frame)
    if not dobj.eof:
        raise zstandard.ZstdError("truncated zstd frame")
    return out


def decode_chunk(
    frame: bytes | memoryview, digest: B3Digest, expected_size: int | None, where: str
) -> bytes:
    """The chunk's bytes, only if they hash to `digest` (and have `expected_size` when
    given); else StorageError naming `where` (e.g. "chunk b3:... in s3://bucket")."""
    try:
        data = _decompress(frame)
    except zstandard.ZstdError as e:
        raise StorageError(f"{where} is corrupt: {e}") from e
    if blake3.blake3(data).digest() != digest:
        raise StorageError(f"{where} is corrupt: digest mismatch")
    if expected_size is not None and len(data) != expected_size:
        raise StorageError(f"{where} has {len(data)} bytes, the blob index says {expected_size}")
    return data
