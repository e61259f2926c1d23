"""Compressed upload streams: DecompressingSource only raises CompressionError (output limited)."""

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
"""The decompression limit (DecompressedTooLarge beyond): a bomb must not exhaust memory."""


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


def reference(codec: str, stream: bytes) -> bytes | None:
    """What the codec's own decoder makes of `stream`: the output if it is exactly one
    complete stream (nothing after it) of at most OUTPUT_CAP bytes, else None."""
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
            d = lzma.LZMADecompressor(lzma.FORMAT_XZ) if codec == "xz" else bz2.BZ2Decompressor()
            out = d.decompress(stream, OUTPUT_CAP + 1)
            eof, rest = d.eof, d.unused_data
    except (lzma.LZMAError, OSError, zlib.error, zstandard.ZstdError, EOFError, ValueError):
        return None
    return out if eof and not rest and len(out) <= OUTPUT_CAP else None


async def _read(source: DecompressingSource) -> bytes:
    parts = []
    while data := await source.read(1 << 16):
        parts.append(data)
    return b"".join(parts)


def _decompress(codec: str, piece: int, stream: bytes) -> bytes | type[CompressionError]:
    """The output (at most OUTPUT_CAP bytes, the source's limit), or the error type."""
    try:
        return run(_read(DecompressingSource(_Source(stream, piece), codec, OUTPUT_CAP)))
    except CompressionError as e:
        return type(e)


def test_one_input(data: bytes) -> None:
    """Decompress in the chosen reads and in one; the same verdict, which is the reference
    decoder's output for exactly one complete stream within the cap and an error otherwise."""
    codec, piece, stream = select(data)
    out = _decompress(codec, piece, stream)
    whole = _decompress(codec, 1 << 20, stream) if piece != 1 << 20 else out
    assert out == whole, (codec, piece, out if isinstance(out, type) else len(out), whole)
    expected = reference(codec, stream)
    if expected is None:
        assert isinstance(out, type), (codec, piece, len(out))
    else:
        assert out == expected, (codec, piece, out)
