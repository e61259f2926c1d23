"""Content-defined chunking of a byte stream: FastCDC 2020 with normalization level 1 and the
default gear table, min = avg/2 and max = 2·avg, as upstream configures the fastcdc crate, so
the same bytes are cut at the same points as there. pyfastcdc ports the crate's v2020 module
as it is today (upstream pins crate 3.1.0; no upstream binary was at hand to compare bytes);
tests/castore/test_chunking.py checks it against an independent reference of the algorithm.

A cut point depends only on the bytes from the chunk start up to `max_size` after it, so a
chunk is final as soon as `max_size` bytes beyond its start are buffered (or the stream ended).
The cutting runs without the GIL, so other threads hash and store chunks meanwhile.
"""

from __future__ import annotations

from pyfastcdc.cy import FastCDC  # the compiled one: never the slow pure-Python fallback

DEFAULT_AVG_CHUNK_SIZE = 256 * 1024
# The crate's limits (min in [64, 1 MiB], avg in [256, 4 MiB], max in [1 KiB, 16 MiB]) with
# min = avg/2 and max = 2·avg.
_MIN_AVG, _MAX_AVG = 512, 2 * 1024 * 1024

# Input pieces, immutable for as long as the chunker or a chunk cut from them is alive.
Piece = bytes | memoryview


def immutable_piece(data: bytes | bytearray | memoryview) -> Piece:
    """`data` itself if nobody can change it (bytes, or a read-only view of bytes), else a
    copy: what may be kept after a write() returns."""
    if isinstance(data, bytes):
        return data
    if (
        isinstance(data, memoryview)
        and data.readonly
        and isinstance(data.obj, bytes)
        and data.c_contiguous
    ):
        return data if data.format == "B" else data.cast("B")  # len() counts bytes
    return bytes(data)


class StreamChunker:
    """Splits a stream fed with `feed()` into chunks of avg ~`avg_size` (min avg/2, max 2·avg).

    `feed(*pieces)` returns the chunks that became final; `finish()` returns the rest. Their
    concatenation is exactly the input. Chunks are read-only memoryviews into one copy of the
    input (each byte is copied once, however it is cut), so fed pieces must not change
    afterwards: pass `bytes`, or a copy.
    """

    def __init__(self, avg_size: int = DEFAULT_AVG_CHUNK_SIZE) -> None:
        if not _MIN_AVG <= avg_size <= _MAX_AVG:
            raise ValueError(f"avg_chunk_size {avg_size} out of range [{_MIN_AVG}, {_MAX_AVG}]")
        self.avg_size = avg_size
        self.min_size = avg_size // 2
        self.max_size = avg_size * 2
        # per instance: pyfastcdc does not promise that a FastCDC object is thread-safe
        self._cdc = FastCDC(
            avg_size, min_size=self.min_size, max_size=self.max_size, normalized_chunking=1
        )
        self._pieces: list[Piece] = []
        self._buffered = 0

    def is_single_chunk(self, total: int) -> bool:
        """Whether a stream of `total` bytes (nothing fed yet) is always exactly one chunk."""
        return not self._buffered and total <= self.min_size

    def feed(self, *pieces: Piece) -> list[memoryview]:
        for piece in pieces:
            if len(piece):
                self._pieces.append(piece)
                self._buffered += len(piece)
        if self._buffered < 2 * self.max_size:
            return []
        return self._cut(final=False)

    def finish(self) -> list[memoryview]:
        return self._cut(final=True) if self._buffered else []

    def _cut(self, *, final: bool) -> list[memoryview]:
        pieces = self._pieces
        buf = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        view = memoryview(buf).toreadonly()
        out: list[memoryview] = []
        consumed = 0
        for chunk in self._cdc.cut_buf(view):
            if not final and len(view) - chunk.offset < self.max_size:
                break
            consumed = chunk.offset + chunk.length
            out.append(view[chunk.offset : consumed])
        rest = view[consumed:]
        self._pieces = [rest] if len(rest) else []
        self._buffered = len(rest)
        return out
