"""Stored chunk bytes: one zstd frame per chunk (upstream's layout), compressed on write and
decompressed and verified against the chunk digest on every read. Shared by the chunking
backends (object store, NATS). Blocking; call from worker threads for large chunks."""

from __future__ import annotations

import threading

import blake3
import zstandard

from pytvix.buffers import Buffer
from pytvix.castore.digests import B3Digest
from pytvix.castore.errors import StorageError

ZSTD_LEVEL = 1
# Chunks that do not compress: zstd spends as long on random bytes to find no matches as on
# compressible ones, and then stores them as raw blocks, a copy of the chunk behind 3-byte
# block headers. Those chunks are framed as raw blocks directly, around the chunk's own bytes
# (nothing compressed, nothing copied). A cheap 16 KiB probe from the middle of the chunk
# decides; compressible data keeps level 1.
PROBE = 16 << 10
INCOMPRESSIBLE = 0.97  # probe frame size / probe size at or above which data counts as such

# zstd frame format (RFC 8878 §3.1.1): magic, a frame header descriptor saying "single
# segment, content size in 4 (or 8) bytes, no checksum, no dictionary", the content size;
# then blocks of at most 128 KiB, each behind a 3-byte header (last-block bit, type 0 = raw,
# size).
_MAGIC = b"\x28\xb5\x2f\xfd"
_SINGLE_SEGMENT_FCS4 = 0xA0
_SINGLE_SEGMENT_FCS8 = 0xE0
_MAX_BLOCK = 128 << 10


_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cctx: zstandard.ZstdCompressor | None = getattr(_local, f"cctx{level}", None)
    if cctx is None:
        cctx = zstandard.ZstdCompressor(level=level)
        setattr(_local, f"cctx{level}", cctx)
    return cctx


def encode_chunk(chunk: Buffer) -> list[Buffer]:
    """The chunk as one zstd frame (with its content size) that any zstd decoder reads, in
    parts to be written in order: compressed (one part), or, if the chunk does not compress,
    raw blocks whose payloads are views of `chunk` itself (keep it unchanged until written)."""
    cctx = _compressor(ZSTD_LEVEL)
    if len(chunk) >= 4 * PROBE:
        middle = len(chunk) // 2
        probe = memoryview(chunk)[middle : middle + PROBE]
        if len(cctx.compress(probe)) >= PROBE * INCOMPRESSIBLE:
            return raw_frame(chunk)
    return [cctx.compress(chunk)]


def compress_chunk(chunk: Buffer) -> bytes:
    """encode_chunk() as one buffer."""
    parts = encode_chunk(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)  # type: ignore[return-value]


def raw_frame(chunk: Buffer) -> list[Buffer]:
    """A zstd frame storing `chunk` uncompressed: header, then raw blocks (RFC 8878)."""
    size = len(chunk)
    if size < 1 << 32:
        header = _MAGIC + bytes([_SINGLE_SEGMENT_FCS4]) + size.to_bytes(4, "little")
    else:
        header = _MAGIC + bytes([_SINGLE_SEGMENT_FCS8]) + size.to_bytes(8, "little")
    view = memoryview(chunk)
    parts: list[Buffer] = [header]
    for start in range(0, size, _MAX_BLOCK):
        block = view[start : start + _MAX_BLOCK]
        last = start + _MAX_BLOCK >= size
        parts.append((len(block) << 3 | last).to_bytes(3, "little"))
        parts.append(block)
    if not size:  # one empty raw block, as zstd writes for empty input
        parts.append((1).to_bytes(3, "little"))
    return parts


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
