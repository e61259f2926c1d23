"""Byte containers: regrouping parts into runs of a size without copying."""

from __future__ import annotations

import pytest

from pytvix.buffers import split_parts


@pytest.mark.parametrize("size", [1, 3, 4, 7, 100])
def test_split_parts_regroups_exactly(size: int) -> None:
    parts = [b"abc", bytearray(b""), memoryview(b"defgh"), b"i" * 9]
    runs = list(split_parts(parts, size))
    assert b"".join(b"".join(run) for run in runs) == b"abcdefgh" + b"i" * 9
    assert all(sum(len(p) for p in run) == size for run in runs[:-1])
    assert 0 < sum(len(p) for p in runs[-1]) <= size


def test_split_parts_does_not_copy() -> None:
    data = bytearray(b"x" * 10)
    [first, second] = split_parts([data], 5)
    data[0] = ord("y")
    data[7] = ord("z")
    assert bytes(first[0]) == b"yxxxx"
    assert bytes(second[0]) == b"xxzxx"
    assert list(split_parts([], 5)) == []
