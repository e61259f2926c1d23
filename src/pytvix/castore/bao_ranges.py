"""Which parts of a blob an encoded range stream carries: chunk ranges, as iroh's bao-tree
counts them (1024-byte BLAKE3 chunks from the start of the blob).

A `RangeSpec` is what a request asks for, parsed from its text form; `resolve(size)` turns it
into the normalized `ChunkRanges` the stream is built from (bao-tree's `truncate_ranges`):
with `last = max(1, ceil(size / 1024)) - 1`, a requested chunk at or past `last` stands for
`last`, so asking for anything past the end returns the last chunk (which proves the size).

Text forms (the `chunks=` and `bytes=` query values of the HTTP castore, README "Protocol
notes"): comma-separated inclusive ranges `A-B`, single numbers `A`, open ranges `A-` (to the
end) and suffixes `-N` (the last N chunks or bytes). Byte ranges are rounded outward to
whole chunks.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

CHUNK = 1024
MAX_RANGES = 64
"""Ranges a request may list (bounds the work one request causes)."""
MAX_NUMBER = (1 << 63) - 1
_OPEN = -1  # an end that runs to the end of the blob


class RangeSyntaxError(ValueError):
    """A range list that does not parse."""


def chunk_count(size: int) -> int:
    """Chunks of a blob of `size` bytes, counting an empty blob as one (empty) chunk."""
    return max(1, -(-size // CHUNK))


@dataclass(frozen=True, slots=True)
class ChunkRanges:
    """Sorted, disjoint, non-adjacent half-open chunk ranges of one blob."""

    ranges: tuple[tuple[int, int], ...]

    @classmethod
    def normalized(cls, ranges: list[tuple[int, int]], size: int) -> ChunkRanges:
        """`ranges` clamped to the blob as bao-tree does, sorted and merged."""
        last = chunk_count(size) - 1
        out: list[tuple[int, int]] = []
        for a, b in sorted((min(a, last), min(b, last + 1)) for a, b in ranges):
            if a >= b:
                continue
            if out and out[-1][1] >= a:
                out[-1] = (out[-1][0], max(out[-1][1], b))
            else:
                out.append((a, b))
        return cls(tuple(out))

    @classmethod
    def all(cls, size: int) -> ChunkRanges:
        return cls(((0, chunk_count(size)),))

    def touches(self, start: int, end: int) -> bool:
        """Whether any chunk of [start, end) is wanted."""
        i = bisect.bisect_right(self.ranges, (start, MAX_NUMBER))
        if i and self.ranges[i - 1][1] > start:
            return True
        return i < len(self.ranges) and self.ranges[i][0] < end

    def covers(self, start: int, end: int) -> bool:
        """Whether every chunk of [start, end) is wanted."""
        i = bisect.bisect_right(self.ranges, (start, MAX_NUMBER))
        return bool(i) and self.ranges[i - 1][0] <= start and end <= self.ranges[i - 1][1]

    def byte_spans(self, size: int, align: int = CHUNK) -> list[tuple[int, int]]:
        """The blob's bytes these chunks hold, widened to multiples of `align` (clamped to
        the blob), merged."""
        out: list[tuple[int, int]] = []
        for a, b in self.ranges:
            lo = a * CHUNK // align * align
            hi = min(size, -(-b * CHUNK // align) * align)
            if out and out[-1][1] >= lo:
                out[-1] = (out[-1][0], max(out[-1][1], hi))
            else:
                out.append((lo, hi))
        return out

    def text(self) -> str:
        """The canonical text form (`A-B` inclusive, `A` for one chunk)."""
        return ",".join(str(a) if b == a + 1 else f"{a}-{b - 1}" for a, b in self.ranges)


@dataclass(frozen=True, slots=True)
class RangeSpec:
    """Requested ranges before the blob's size is known: (first, last inclusive or -1 for
    open) pairs, or suffix lengths (first == -1), in chunks or bytes."""

    items: tuple[tuple[int, int], ...]
    unit: int = CHUNK  # 1 for byte ranges

    @classmethod
    def parse(cls, text: str, unit: int = CHUNK) -> RangeSpec:
        """Parse the text form; RangeSyntaxError if it is malformed or lists more than
        MAX_RANGES ranges."""
        parts = text.split(",")
        if len(parts) > MAX_RANGES:
            raise RangeSyntaxError(f"more than {MAX_RANGES} ranges")
        items = []
        for part in parts:
            first, dash, last = part.partition("-")
            if not dash:
                n = _number(first)
                items.append((n, n))
            elif not first:
                items.append((_OPEN, _number(last)))  # suffix: the last N
            else:
                a = _number(first)
                b = _number(last) if last else _OPEN
                if b != _OPEN and b < a:
                    raise RangeSyntaxError(f"range {part!r} ends before it starts")
                items.append((a, b))
        return cls(tuple(items), unit)

    @classmethod
    def chunks(cls, start: int, end: int | None = None) -> RangeSpec:
        """Chunks [start, end) (to the end of the blob if `end` is None)."""
        return cls(((start, _OPEN if end is None else end - 1),))

    @classmethod
    def last_chunk(cls) -> RangeSpec:
        return cls(((_OPEN, 1),))

    def __add__(self, other: RangeSpec) -> RangeSpec:
        if self.unit != other.unit:
            raise ValueError("cannot join chunk and byte ranges")
        return RangeSpec(self.items + other.items, self.unit)

    def resolve(self, size: int) -> ChunkRanges:
        """The chunk ranges these stand for in a blob of `size` bytes."""
        total = chunk_count(size) if self.unit == CHUNK else size
        ranges = []
        for a, b in self.items:
            if a == _OPEN:  # a suffix of b units
                if b == 0:
                    continue
                lo, hi = max(0, total - b), total
            else:
                lo, hi = a, (max(total, a + 1) if b == _OPEN else b + 1)
            if self.unit != CHUNK:
                lo, hi = lo // CHUNK, -(-hi // CHUNK)
            ranges.append((lo, max(hi, lo + 1)))
        return ChunkRanges.normalized(ranges, size)

    def text(self) -> str:
        """The text form (as parse reads it)."""
        out = []
        for a, b in self.items:
            if a == _OPEN:
                out.append(f"-{b}")
            elif b == _OPEN:
                out.append(f"{a}-")
            else:
                out.append(str(a) if a == b else f"{a}-{b}")
        return ",".join(out)


def _number(text: str) -> int:
    if not text.isdigit() or not text.isascii() or len(text) > 19:
        raise RangeSyntaxError(f"not a range bound: {text!r}")
    value = int(text)
    if value > MAX_NUMBER:
        raise RangeSyntaxError(f"range bound too large: {text!r}")
    return value
