"""Streaming (de)compression of NARs as Nix binary caches use them: none, xz, bzip2, gzip and
zstd. Sources wrap a compressed ByteSource and yield decompressed bytes, a bounded piece at a
time, decompressed on the worker pool (the codecs release the GIL). Decompression uses the
stdlib's incremental decoders (lzma, bz2, zlib) and `backports.zstd` (the stdlib's
`compression.zstd` of Python 3.14), all of which take an output limit per call."""

from __future__ import annotations

import bz2
import hashlib
import lzma
import zlib
from collections.abc import Callable
from typing import Protocol

import zstandard
from backports.zstd import ZstdDecompressor, ZstdError, get_frame_info

from pytvix.castore.workers import run
from pytvix.store.nar.io import ByteSink, ByteSource

READ_PIECE = 1 << 20  # compressed bytes read from the source at a time
OUT_PIECE = 1 << 20  # decompressed bytes produced per decompression call (the memory bound)
OFFLOAD = 64 << 10  # compress pieces at least this large off the event loop

COMPRESSIONS = ("none", "xz", "bzip2", "gzip", "zstd")
SUFFIXES = {
    ".nar": "none",
    ".nar.xz": "xz",
    ".nar.bz2": "bzip2",
    ".nar.gz": "gzip",
    ".nar.zst": "zstd",
}


class CompressionError(ValueError):
    pass


class DecompressedTooLarge(CompressionError):
    """The decompressed stream is larger than the configured limit (a decompression bomb, or
    a NAR larger than the operator allows)."""


class _Decompressor(Protocol):
    """The stdlib's incremental interface (lzma, bz2, zstd): at most `max_length` bytes out
    per call; the input not yet used is kept inside until `needs_input` is True again."""

    @property
    def eof(self) -> bool: ...
    @property
    def needs_input(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


class _GzipDecompressor:
    """zlib's gzip decoder behind the same interface as lzma's."""

    def __init__(self) -> None:
        self._zlib = zlib.decompressobj(wbits=31)

    @property
    def eof(self) -> bool:
        return self._zlib.eof

    @property
    def needs_input(self) -> bool:
        return not self._zlib.unconsumed_tail

    @property
    def unused_data(self) -> bytes:
        return self._zlib.unused_data

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        pending = self._zlib.unconsumed_tail
        return self._zlib.decompress(pending + data if pending else data, max(max_length, 0))


class _ZstdDecompressor:
    """libzstd's streaming decoder, plus the check it skips in one case (a frame whose empty
    last block arrives in a separate call): the output size equals the frame's declared
    content size, when it declares one."""

    HEADER = 18  # a zstd frame header is at most this long

    def __init__(self) -> None:
        self._zstd = ZstdDecompressor()
        self._header = b""
        self._produced = 0

    @property
    def eof(self) -> bool:
        return self._zstd.eof

    @property
    def needs_input(self) -> bool:
        return self._zstd.needs_input

    @property
    def unused_data(self) -> bytes:
        return self._zstd.unused_data

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        if len(self._header) < self.HEADER:
            self._header += data[: self.HEADER - len(self._header)]
        out = self._zstd.decompress(data, max_length)
        self._produced += len(out)
        if self._zstd.eof:
            declared = get_frame_info(self._header).decompressed_size
            if declared is not None and declared != self._produced:
                raise ZstdError(f"frame declares {declared} bytes, holds {self._produced}")
        return out


def _decompressor(compression: str) -> _Decompressor | None:
    if compression == "none":
        return None
    if compression == "xz":
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    if compression == "bzip2":
        return bz2.BZ2Decompressor()
    if compression == "gzip":
        return _GzipDecompressor()
    if compression == "zstd":
        return _ZstdDecompressor()
    raise CompressionError(f"unsupported compression {compression!r}")


_CODEC_ERRORS = (lzma.LZMAError, OSError, zlib.error, ZstdError, EOFError)


class HashingSource:
    """Passes a source through, computing sha256 and size of the bytes read (the FileHash
    and FileSize of a compressed NAR)."""

    def __init__(self, source: ByteSource) -> None:
        self._source = source
        self.sha256 = hashlib.sha256()
        self.size = 0

    async def read(self, n: int, /) -> bytes:
        data = await self._source.read(n)
        self.sha256.update(data)
        self.size += len(data)
        return data


class DecompressingSource:
    """A ByteSource of the decompressed contents of `source`, one compressed stream.

    Memory is bounded by a constant (READ_PIECE in, OUT_PIECE out) however much the data
    expands, time is linear in the output, and more than `limit` decompressed bytes raise
    DecompressedTooLarge. Bytes after the end of the stream are an error, whichever read
    they arrive in; so is a stream that ends early.
    """

    def __init__(self, source: ByteSource, compression: str, limit: int | None = None) -> None:
        self._source = source
        self._decompressor = _decompressor(compression)
        self._compression = compression
        self._limit = limit
        self._produced = 0
        self._buffer = b""
        self._pos = 0
        self._done = False

    async def read(self, n: int, /) -> bytes:
        if self._pos >= len(self._buffer):
            self._buffer, self._pos = await self._next_piece(), 0
        data = self._buffer[self._pos : self._pos + n]
        self._pos += len(data)
        return data

    async def _next_piece(self) -> bytes:
        """The next decompressed bytes (b"" at the end), checked against the limit."""
        decompressor = self._decompressor
        if self._done:
            return b""
        if decompressor is None:
            out = await self._source.read(READ_PIECE)
            self._done = not out
            return self._count(out)
        while True:
            if decompressor.eof:
                await self._check_nothing_follows(decompressor)
                self._done = True
                return b""
            data = b""
            if decompressor.needs_input:
                data = await self._source.read(READ_PIECE)
                if not data:
                    raise CompressionError(f"truncated {self._compression} data")
            try:
                out = await run(decompressor.decompress, data, OUT_PIECE)
            except _CODEC_ERRORS as e:
                raise CompressionError(f"corrupt {self._compression} data: {e}") from e
            if out:
                return self._count(out)

    def _count(self, out: bytes) -> bytes:
        self._produced += len(out)
        if self._limit is not None and self._produced > self._limit:
            raise DecompressedTooLarge(
                f"the {self._compression} data decompresses to more than {self._limit} bytes"
            )
        return out

    async def _check_nothing_follows(self, decompressor: _Decompressor) -> None:
        if decompressor.unused_data or await self._source.read(1):
            raise CompressionError(f"data after the end of the {self._compression} stream")


class ZstdSink:
    """A ByteSink compressing what it is given with zstd into `inner`; call `finish()`
    after the last write."""

    def __init__(self, inner: ByteSink, level: int = 3) -> None:
        self._inner = inner
        self._compressor = zstandard.ZstdCompressor(level=level).compressobj()

    async def write(self, data: bytes | bytearray | memoryview, /) -> None:
        chunk = bytes(data)
        compress: Callable[[bytes], bytes] = self._compressor.compress
        out = await run(compress, chunk) if len(chunk) >= OFFLOAD else compress(chunk)
        if out:
            await self._inner.write(out)

    async def finish(self) -> None:
        await self._inner.write(self._compressor.flush())
