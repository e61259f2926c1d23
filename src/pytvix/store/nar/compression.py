"""Streaming (de)compression of NARs as Nix binary caches use them: none, xz, bzip2, gzip and
zstd. Sources wrap a compressed ByteSource and yield decompressed bytes; large pieces are
decompressed on the worker pool (the codecs release the GIL)."""

from __future__ import annotations

import bz2
import hashlib
import lzma
import zlib
from collections.abc import Callable
from typing import Protocol

import zstandard

from pytvix.castore.workers import run
from pytvix.store.nar.io import ByteSink, ByteSource

READ_PIECE = 1 << 20
OFFLOAD = 64 << 10  # decompress pieces at least this large off the event loop

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


class _Decompressor(Protocol):
    def decompress(self, data: bytes) -> bytes: ...


def _decompressor(compression: str) -> _Decompressor | None:
    if compression == "none":
        return None
    if compression == "xz":
        return lzma.LZMADecompressor()
    if compression == "bzip2":
        return bz2.BZ2Decompressor()
    if compression == "gzip":
        return zlib.decompressobj(wbits=31)
    if compression == "zstd":
        return zstandard.ZstdDecompressor().decompressobj()
    raise CompressionError(f"unsupported compression {compression!r}")


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
    """A ByteSource of the decompressed contents of `source`."""

    def __init__(self, source: ByteSource, compression: str) -> None:
        self._source = source
        self._decompressor = _decompressor(compression)
        self._compression = compression
        self._buffer = b""
        self._eof = False

    async def read(self, n: int, /) -> bytes:
        if self._decompressor is None:
            return await self._source.read(n)
        while not self._buffer and not self._eof:
            compressed = await self._source.read(READ_PIECE)
            if not compressed:
                self._eof = True
                self._check_finished()
                break
            try:
                if len(compressed) >= OFFLOAD:
                    self._buffer = await run(self._decompressor.decompress, compressed)
                else:
                    self._buffer = self._decompressor.decompress(compressed)
            except (lzma.LZMAError, OSError, zlib.error, zstandard.ZstdError, EOFError) as e:
                raise CompressionError(f"corrupt {self._compression} data: {e}") from e
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def _check_finished(self) -> None:
        eof = getattr(self._decompressor, "eof", True)
        if not eof:
            raise CompressionError(f"truncated {self._compression} data")


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
