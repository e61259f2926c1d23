"""Content-defined chunking of a byte stream (FastCDC, compiled backend).

A cut point depends only on the bytes from the chunk start up to `max_size` after it, so a
chunk is final as soon as `max_size` bytes beyond its start are buffered (or the stream ended).
Cut points differ from upstream's fastcdc crate; chunks are still verified by their own digest,
so this only affects dedup across implementations (see DESIGN.md).
"""

from __future__ import annotations

from fastcdc import fastcdc as _fastcdc

DEFAULT_AVG_CHUNK_SIZE = 256 * 1024
_MIN_AVG, _MAX_AVG = 512, 256 * 1024 * 1024  # fastcdc: max (2*avg) >= 1024, avg <= 256 MiB


class StreamChunker:
    """Splits a stream fed with `feed()` into chunks of avg ~`avg_size` (min avg/2, max 2·avg).

    `feed(data)` returns the chunks that became final; `finish()` returns the rest. Chunks are
    `bytes`; their concatenation is exactly the input.
    """

    def __init__(self, avg_size: int = DEFAULT_AVG_CHUNK_SIZE) -> None:
        if not _MIN_AVG <= avg_size <= _MAX_AVG:
            raise ValueError(f"avg_chunk_size {avg_size} out of range [{_MIN_AVG}, {_MAX_AVG}]")
        self.avg_size = avg_size
        self.min_size = avg_size // 2
        self.max_size = avg_size * 2
        self._buf = bytearray()

    def is_single_chunk(self, total: int) -> bool:
        """Whether a stream of `total` bytes (nothing fed yet) is always exactly one chunk."""
        return not self._buf and total <= self.min_size

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        self._buf += data
        if len(self._buf) < 2 * self.max_size:
            return []
        return self._cut(final=False)

    def finish(self) -> list[bytes]:
        return self._cut(final=True) if self._buf else []

    def _cut(self, *, final: bool) -> list[bytes]:
        buf = self._buf
        view = memoryview(buf)
        out: list[bytes] = []
        consumed = 0
        try:
            for chunk in _fastcdc(view, self.min_size, self.avg_size, self.max_size, fat=False):
                if not final and len(buf) - chunk.offset < self.max_size:
                    break
                out.append(bytes(view[chunk.offset : chunk.offset + chunk.length]))
                consumed = chunk.offset + chunk.length
        finally:
            view.release()
        del buf[:consumed]
        return out
