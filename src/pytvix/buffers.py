"""The byte containers passed around without copying."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence

Buffer = bytes | bytearray | memoryview
"""Contiguous bytes: data read, written, hashed or sent as is."""

Parts = Sequence[Buffer]
"""One object's bytes in pieces, in order (written with one writev, joined only if need be)."""


def as_parts(data: Buffer | Parts) -> Parts:
    return [data] if isinstance(data, bytes | bytearray | memoryview) else data


def joined(data: Buffer | Parts) -> Buffer:
    """The bytes as one buffer (a copy only if they came in several parts)."""
    if isinstance(data, bytes | bytearray | memoryview):
        return data
    return data[0] if len(data) == 1 else b"".join(data)


def split_parts(parts: Parts, size: int) -> Iterator[list[memoryview]]:
    """The bytes of `parts` regrouped into runs of `size` bytes (the last may be shorter), as
    views: nothing is copied."""
    run: list[memoryview] = []
    room = size
    for part in parts:
        view = memoryview(part).cast("B")
        while view:
            piece, view = view[:room], view[room:]
            run.append(piece)
            room -= len(piece)
            if not room:
                yield run
                run, room = [], size
    if run:
        yield run


class ByteQueue:
    """Bytes received in pieces, taken out in the sizes their reader needs: `take(n)` returns
    a view when the bytes lie in one piece (no copy), else joins them (one copy)."""

    def __init__(self) -> None:
        self._pieces: deque[memoryview] = deque()
        self.size = 0  # bytes held

    def append(self, data: Buffer) -> None:
        if data:
            self._pieces.append(memoryview(data))
            self.size += len(data)

    def peek(self, n: int) -> Buffer:
        """Up to `n` of the next bytes, left in place."""
        if not self._pieces:
            return b""
        if len(self._pieces[0]) >= n:
            return self._pieces[0][:n]
        return b"".join(self._pieces)[:n]

    def take(self, n: int) -> Buffer:
        """The next `n` bytes (at most `size`)."""
        if n <= 0:
            return b""
        self.size -= n
        first = self._pieces[0]
        if len(first) >= n:
            if len(first) == n:
                return self._pieces.popleft()
            self._pieces[0] = first[n:]
            return first[:n]
        parts = []
        while n:
            view = self._pieces[0]
            if len(view) <= n:
                parts.append(self._pieces.popleft())
            else:
                parts.append(view[:n])
                self._pieces[0] = view[n:]
            n -= len(parts[-1])
        return b"".join(parts)
