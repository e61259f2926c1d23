"""The byte containers passed around without copying."""

from __future__ import annotations

from collections.abc import Sequence

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
