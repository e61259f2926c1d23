"""nixbase32 encoding (PROTOCOL §7.2, VECTORS §6)."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytvix.nixcompat import nixbase32
from pytvix.nixcompat.nixbase32 import Nixbase32Error


def test_vectors_encode_decode(vectors: dict[str, Any]) -> None:
    assert len(vectors["nixbase32"]) == 5
    for v in vectors["nixbase32"]:
        data = bytes.fromhex(v["hex"])
        assert nixbase32.encode(data) == v["nixbase32"]
        assert nixbase32.decode(v["nixbase32"]) == data
        assert nixbase32.decode(v["nixbase32"].encode()) == data


def test_invalid_vectors(vectors: dict[str, Any]) -> None:
    assert {v["text"] for v in vectors["nixbase32_invalid"]} == {"zz", "c0", "0", "0zz"}
    for v in vectors["nixbase32_invalid"]:
        with pytest.raises(Nixbase32Error):
            nixbase32.decode(v["text"])
        with pytest.raises(Nixbase32Error):
            nixbase32.decode_fixed(v["text"], v["bytes"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("zz", "leftover high bits"),
        ("c0", "leftover high bits"),
        ("0", "length 1"),
        ("0zz", "length 3"),
        ("0e", "'e' at position 1"),
        ("u0", "'u' at position 0"),
        ("0A", "'A' at position 1"),
        ("0\u00e9", "non-ASCII"),
        ("0 ", "' ' at position 1"),
        ("-1", "'-' at position 0"),
        ("0_", "'_' at position 1"),
    ],
)
def test_invalid_messages(text: str, message: str) -> None:
    with pytest.raises(Nixbase32Error, match=message):
        nixbase32.decode(text)


def test_error_is_value_error() -> None:
    assert issubclass(Nixbase32Error, ValueError)


@pytest.mark.parametrize(("n", "chars"), [(0, 0), (1, 2), (16, 26), (20, 32), (32, 52), (64, 103)])
def test_lengths(n: int, chars: int) -> None:
    assert nixbase32.encoded_len(n) == chars
    assert nixbase32.decoded_len(chars) == n
    assert len(nixbase32.encode(bytes(n))) == chars


def test_zero_digest_is_all_zeros() -> None:
    assert nixbase32.encode(bytes(20)) == "0" * 32
    assert nixbase32.encode(bytes(32)) == "0" * 52


def test_max_value() -> None:
    # All-ones: the first character carries only the leftover bits that are set.
    for n in range(1, 70):
        text = nixbase32.encode(b"\xff" * n)
        assert nixbase32.decode(text) == b"\xff" * n
        assert text[1:] == "z" * (len(text) - 1)


def test_decode_fixed() -> None:
    digest = bytes.fromhex("8a12321522fd91efbd60ebb2481af88580f61600")
    assert nixbase32.decode_fixed("00bgd045z0d4icpbc2yyz4gx48ak44la", 20) == digest
    with pytest.raises(Nixbase32Error, match="expected 52 characters"):
        nixbase32.decode_fixed("00bgd045z0d4icpbc2yyz4gx48ak44la", 32)


@given(st.binary(max_size=200))
def test_round_trip(data: bytes) -> None:
    text = nixbase32.encode(data)
    assert len(text) == nixbase32.encoded_len(len(data))
    assert set(text) <= set(nixbase32.ALPHABET)
    assert nixbase32.decode(text) == data


@given(st.binary(min_size=1, max_size=64), st.binary(min_size=1, max_size=64))
def test_order_matches_reversed_bytes(a: bytes, b: bytes) -> None:
    if len(a) != len(b):
        return
    assert (nixbase32.encode(a) < nixbase32.encode(b)) == (a[::-1] < b[::-1])


@given(st.text(max_size=120))
def test_random_text_only_raises_nixbase32_error(text: str) -> None:
    try:
        data = nixbase32.decode(text)
    except Nixbase32Error:
        return
    assert nixbase32.encode(data) == text


@given(st.text(alphabet=nixbase32.ALPHABET, max_size=120))
def test_random_alphabet_text(text: str) -> None:
    try:
        data = nixbase32.decode(text)
    except Nixbase32Error:
        return
    assert nixbase32.encode(data) == text


@given(st.binary(max_size=120))
def test_random_bytes_only_raise_nixbase32_error(raw: bytes) -> None:
    with contextlib.suppress(Nixbase32Error):
        nixbase32.decode(raw)
