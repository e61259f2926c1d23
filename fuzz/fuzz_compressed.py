"""Compressed upload streams: DecompressingSource only raises CompressionError (output capped)."""

from __future__ import annotations

import bz2
import lzma
import zlib

import zstandard

from fuzz._async import run
from pytvix.store.nar.compression import CompressionError, DecompressingSource

CODECS = ("xz", "bzip2", "gzip", "zstd")
PIECES = (1, 7, 64, 4096, 1 << 20)
OUTPUT_CAP = 4 << 20
"""Read at most this much decompressed output per input (a bomb must not exhaust memory)."""


class _Source:
    """The compressed bytes, handed out in reads of at most `piece` bytes (as a network)."""

    def __init__(self, data: bytes, piece: int) -> None:
        self._data = data
        self._pos = 0
        self._piece = piece

    async def read(self, n: int, /) -> bytes:
        n = min(n, self._piece)
        chunk = self._data[self._pos : self._pos + n]
        self._pos += len(chunk)
        return chunk


def select(data: bytes) -> tuple[str, int, bytes]:
    """Input framing: byte 0 chooses the codec (low 2 bits) and the read size; the rest is the
    compressed stream."""
    if not data:
        return CODECS[0], PIECES[-1], b""
    return CODECS[data[0] & 3], PIECES[(data[0] >> 2) % len(PIECES)], data[1:]


def reference(codec: str, stream: bytes) -> tuple[bytes | None, bool]:
    """What the codec's own decoder makes of `stream`: (the output if it is a single complete
    stream without trailing bytes and within the cap, else None; whether a complete stream is
    followed by more bytes)."""
    try:
        if codec == "zstd":
            # uncapped, but inputs are at most -max_len bytes (zstd expands ~32000x at most)
            zd = zstandard.ZstdDecompressor().decompressobj()
            out = zd.decompress(stream)
            eof, rest = zd.eof, zd.unused_data
        elif codec == "gzip":
            z = zlib.decompressobj(wbits=31)
            out = z.decompress(stream, OUTPUT_CAP + 1)
            eof, rest = z.eof, z.unused_data
        else:
            d = lzma.LZMADecompressor() if codec == "xz" else bz2.BZ2Decompressor()
            out = d.decompress(stream, OUTPUT_CAP + 1)
            eof, rest = d.eof, d.unused_data
    except (lzma.LZMAError, OSError, zlib.error, zstandard.ZstdError, EOFError, ValueError):
        return None, False
    complete = eof and not rest and len(out) <= OUTPUT_CAP
    return (out if complete else None), bool(eof and rest)


async def _read(source: DecompressingSource) -> bytes:
    parts = []
    total = 0
    while total < OUTPUT_CAP and (data := await source.read(1 << 16)):
        parts.append(data)
        total += len(data)
    return b"".join(parts)


def _decompress(codec: str, piece: int, stream: bytes) -> bytes | None:
    """The (capped) output, or None for CompressionError."""
    try:
        return run(_read(DecompressingSource(_Source(stream, piece), codec)))
    except CompressionError:
        return None


def _lying_zstd_size(codec: str, stream: bytes, accepted: bytes | None) -> bool:
    if codec != "zstd" or accepted is None:
        return False
    try:
        size = zstandard.get_frame_parameters(stream).content_size
    except zstandard.ZstdError:
        return False
    return size != zstandard.CONTENTSIZE_UNKNOWN and size != len(accepted)


def test_one_input(data: bytes) -> None:
    """Decompress (capped) in the chosen and in one read; same verdict, and a complete single
    stream yields exactly what the codec's reference decoder gives."""
    codec, piece, stream = select(data)
    out = _decompress(codec, piece, stream)
    whole = _decompress(codec, 1 << 20, stream) if piece != 1 << 20 else out
    expected, trailing = reference(codec, stream)
    if out is None or whole is None:
        # KNOWN (open), both tracked by tests/store/nar/test_fuzz_regressions.py (xfail): bytes
        # after the end of the stream are ignored or rejected depending on the reads; a zstd
        # frame declaring a content size it does not have may pass when fed in small reads
        known = trailing or _lying_zstd_size(codec, stream, out if whole is None else whole)
        assert (out is None and whole is None) or known, (codec, piece, out, whole)
    else:
        n = min(len(out), len(whole))
        assert out[:n] == whole[:n], (codec, piece)
        assert n >= OUTPUT_CAP or len(out) == len(whole), (codec, piece, len(out), len(whole))
    if expected is not None:
        assert out == expected, (codec, piece, len(out or b""), len(expected))
