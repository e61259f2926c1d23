"""NixHash and CAHash parsing/rendering."""

from __future__ import annotations

import base64
import contextlib
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytvix.nixcompat import (
    CAFlat,
    CAHash,
    CANar,
    CAText,
    HashAlgo,
    NixHash,
    NixHashError,
    nixbase32,
    parse_ca,
    render_ca,
)
from tests.nixcompat.strategies import ca_hashes, nix_hashes

SHA256_FOO = hashlib.sha256(b"foo").digest()


def test_algo_sizes() -> None:
    assert [(a.value, a.digest_size) for a in HashAlgo] == [
        ("md5", 16),
        ("sha1", 20),
        ("sha256", 32),
        ("sha512", 64),
    ]
    assert HashAlgo.parse("sha512") is HashAlgo.SHA512
    assert str(HashAlgo.MD5) == "md5"
    with pytest.raises(NixHashError, match="unknown hash algorithm 'blake3'"):
        HashAlgo.parse("blake3")
    with pytest.raises(NixHashError):
        HashAlgo.parse("SHA256")


def test_nixhash_validates_length() -> None:
    with pytest.raises(NixHashError, match="sha256 digest must be 32 bytes, got 20"):
        NixHash(HashAlgo.SHA256, bytes(20))
    with pytest.raises(NixHashError):
        NixHash("sha256", bytes(32))  # type: ignore[arg-type]


def test_nixhash_forms() -> None:
    h = NixHash(HashAlgo.SHA256, SHA256_FOO)
    b32 = nixbase32.encode(SHA256_FOO)
    assert h.to_nix_base32_str() == f"sha256:{b32}"
    assert h.to_hex_str() == f"sha256:{SHA256_FOO.hex()}"
    assert h.to_sri_str() == "sha256-" + base64.b64encode(SHA256_FOO).decode()
    b64 = base64.b64encode(SHA256_FOO).decode()
    for text in (
        h.to_nix_base32_str(),
        h.to_hex_str(),
        h.to_sri_str(),
        f"sha256:{b64}",
        f"sha256:{SHA256_FOO.hex().upper()}",
    ):
        assert NixHash.parse(text) == h
    assert NixHash.parse(b32, HashAlgo.SHA256) == h
    assert NixHash.parse(SHA256_FOO.hex(), HashAlgo.SHA256) == h


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sha256", "no algorithm prefix"),
        ("sha257:00", "unknown hash algorithm"),
        ("sha256:00", "length 2 fits no encoding"),
        ("sha256:" + "g" * 64, "bad hex"),
        ("sha256:" + "e" * 52, "not in the alphabet"),
        ("sha256:" + "z" * 52, "leftover"),
        ("sha256-" + "A" * 43 + "B", "base64"),  # non-canonical trailing bits
        ("sha256-!!!", "base64"),
        ("md5-" + base64.b64encode(bytes(32)).decode(), "base64"),
    ],
)
def test_nixhash_parse_errors(text: str, message: str) -> None:
    with pytest.raises(NixHashError, match=message):
        NixHash.parse(text)


def test_nixhash_parse_algo_mismatch() -> None:
    with pytest.raises(NixHashError, match="is sha1, expected sha256"):
        NixHash.parse("sha1:" + "0" * 40, HashAlgo.SHA256)


@given(nix_hashes)
def test_nixhash_round_trip(h: NixHash) -> None:
    assert NixHash.parse(h.to_nix_base32_str()) == h
    assert NixHash.parse(h.to_hex_str()) == h
    assert NixHash.parse(h.to_sri_str()) == h


@given(st.text(max_size=140))
def test_nixhash_random_text(text: str) -> None:
    with contextlib.suppress(NixHashError):
        NixHash.parse(text)


def test_ca_vector() -> None:
    ca = parse_ca("fixed:r:sha1:1ak1ymbmsfx7z8kh09jzkr3a4dvkrfjw")
    assert ca == CANar(
        NixHash(HashAlgo.SHA1, bytes.fromhex("5cba3c77236ae4f9650270a27fbad375551fa60a"))
    )
    assert render_ca(ca) == "fixed:r:sha1:1ak1ymbmsfx7z8kh09jzkr3a4dvkrfjw"


def test_ca_forms() -> None:
    b32 = nixbase32.encode(SHA256_FOO)
    assert parse_ca(f"text:sha256:{b32}") == CAText(SHA256_FOO)
    assert parse_ca(f"fixed:sha256:{b32}") == CAFlat(NixHash(HashAlgo.SHA256, SHA256_FOO))
    assert parse_ca(f"fixed:r:sha256:{b32}") == CANar(NixHash(HashAlgo.SHA256, SHA256_FOO))
    assert render_ca(CAText(SHA256_FOO)) == f"text:sha256:{b32}"
    assert render_ca(CAFlat(NixHash(HashAlgo.SHA256, SHA256_FOO))) == f"fixed:sha256:{b32}"
    assert CAText(SHA256_FOO).hash == NixHash(HashAlgo.SHA256, SHA256_FOO)
    # PATH_INFO's CA: Nar(sha256(32 zero bytes))
    assert render_ca(CANar(NixHash(HashAlgo.SHA256, bytes(32)))) == "fixed:r:sha256:" + "0" * 52


@pytest.mark.parametrize(
    "text",
    [
        "",
        "text:",
        "text:sha1:1ak1ymbmsfx7z8kh09jzkr3a4dvkrfjw",
        "text:sha256:" + "0" * 51,
        "fixed:",
        "fixed:r:",
        "fixed:sha1",
        "fixed:r:sha1:" + "0" * 31,
        "fixed:r:sha1:" + "0" * 40,  # hex is not accepted in a CA field
        "fixed:git:sha1:1ak1ymbmsfx7z8kh09jzkr3a4dvkrfjw",
        "fixed:blake3:1ak1ymbmsfx7z8kh09jzkr3a4dvkrfjw",
        "source:sha256:" + "0" * 52,
        "fixed:sha256:" + "e" * 52,
    ],
)
def test_ca_rejected(text: str) -> None:
    with pytest.raises(NixHashError, match="invalid CA"):
        parse_ca(text)


def test_ca_validation() -> None:
    with pytest.raises(NixHashError):
        CAText(bytes(20))
    with pytest.raises(NixHashError):
        CANar(bytes(20))  # type: ignore[arg-type]
    with pytest.raises(NixHashError):
        CAFlat("sha1:00")  # type: ignore[arg-type]


@given(ca_hashes)
def test_ca_round_trip(ca: CAHash) -> None:
    assert parse_ca(render_ca(ca)) == ca


@given(st.text(max_size=120))
def test_ca_random_text(text: str) -> None:
    with contextlib.suppress(NixHashError):
        parse_ca(text)


@given(st.sampled_from(["text:", "fixed:", "fixed:r:", "text:sha256:", "fixed:sha1:"]), st.text())
def test_ca_random_suffix(prefix: str, text: str) -> None:
    with contextlib.suppress(NixHashError):
        parse_ca(prefix + text)
