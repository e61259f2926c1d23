"""ed25519 signatures and keys (PROTOCOL §7.4, VECTORS §5-§6)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from pytvix.nixcompat import InvalidKey, Signature, SignatureError, SigningKey, VerifyingKey
from pytvix.nixcompat._ed25519 import (
    GROUP_ORDER,
    decode_point,
    is_canonical_scalar,
    is_small_order,
    order_divides_8,
)
from pytvix.nixcompat.signing import verify_strict

EXAMPLE_SECRET = (
    "cache.example.com-1:cCta2MEsRNuYCgWYyeRXLyfoFpKhQJKn8gLMeXWAb7vIpRKKo/3JoxJ24OYa3DxT2JVV38KjK"
    "/1ywHWuMe2JEw=="
)
EXAMPLE_PUBLIC = "cache.example.com-1:yKUSiqP9yaMSduDmGtw8U9iVVd/Coyv9csB1rjHtiRM="

# Canonical encodings of the eight points of order dividing 8.
SMALL_ORDER_POINTS = [
    "0100000000000000000000000000000000000000000000000000000000000000",  # identity
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # order 2
    "0000000000000000000000000000000000000000000000000000000000000000",  # order 4
    "0000000000000000000000000000000000000000000000000000000000000080",  # order 4
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",  # order 8
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",  # order 8
]
IDENTITY = bytes.fromhex(SMALL_ORDER_POINTS[0])


@pytest.fixture
def test_key(vectors: dict[str, Any]) -> SigningKey:
    return SigningKey.parse(vectors["signing"]["secret_key"])


def test_signing_vector(vectors: dict[str, Any]) -> None:
    v = vectors["signing"]
    sk = SigningKey.parse(v["secret_key"])
    assert sk.name == "do.not.use"
    assert str(sk) == v["secret_key"]
    vk = VerifyingKey.parse(v["public_key"])
    assert sk.verifying_key() == vk
    assert str(vk) == v["public_key"]
    fp = v["fingerprint"].encode()
    sig = sk.sign(fp)
    assert str(sig) == v["signature"]
    assert Signature.parse(v["signature"]) == sig
    assert vk.verify(fp, sig)


def test_wrong_name_fails(vectors: dict[str, Any]) -> None:
    v = vectors["signing"]
    vk = VerifyingKey.parse(v["public_key"])
    sig = Signature.parse(v["signature"])
    fp = v["fingerprint"].encode()
    renamed = Signature("cache.nixos.org-2", sig.data)
    assert not vk.verify(fp, renamed)
    # the raw check ignores names
    assert verify_strict(vk.key, fp, renamed.data)
    other_name = VerifyingKey("other", vk.key)
    assert not other_name.verify(fp, sig)


def test_tampered_fails(vectors: dict[str, Any]) -> None:
    v = vectors["signing"]
    vk = VerifyingKey.parse(v["public_key"])
    sig = Signature.parse(v["signature"])
    fp = v["fingerprint"].encode()
    assert not vk.verify(fp + b"x", sig)
    assert not vk.verify(fp.replace(b";0;", b";1;"), sig)
    flipped = bytearray(sig.data)
    flipped[5] ^= 1
    assert not vk.verify(fp, Signature(sig.name, bytes(flipped)))
    other = VerifyingKey.parse(EXAMPLE_PUBLIC)
    assert not VerifyingKey(vk.name, other.key).verify(fp, sig)


def test_example_key_material() -> None:
    sk = SigningKey.parse(EXAMPLE_SECRET)
    vk = VerifyingKey.parse(EXAMPLE_PUBLIC)
    assert sk.verifying_key() == vk
    assert str(sk) == EXAMPLE_SECRET
    raw = base64.b64decode(EXAMPLE_SECRET.split(":", 1)[1])
    assert sk.seed == raw[:32]
    assert vk.key == raw[32:]
    assert vk.verify(b"hello", sk.sign(b"hello"))
    assert "cCta2" not in repr(sk)  # the secret is not shown


def test_generate() -> None:
    sk = SigningKey.generate("my-cache.example.org-1")
    assert SigningKey.parse(str(sk)).verifying_key() == sk.verifying_key()
    assert sk.verifying_key().verify(b"fp", sk.sign(b"fp"))
    assert SigningKey.generate("x").seed != SigningKey.generate("x").seed


def test_secret_key_public_half_must_match() -> None:
    raw = base64.b64decode(EXAMPLE_SECRET.split(":", 1)[1])
    bad = bytearray(raw)
    bad[40] ^= 1
    text = "k:" + base64.b64encode(bytes(bad)).decode()
    with pytest.raises(InvalidKey, match="does not match the seed"):
        SigningKey.parse(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nocolon", "missing ':'"),
        ("k:" + base64.b64encode(bytes(32)).decode(), "64 bytes"),
        ("k:" + base64.b64encode(bytes(65)).decode(), "64 bytes"),
        ("k:!!!!", "64 bytes"),
        (":" + base64.b64encode(bytes(64)).decode(), "invalid key name"),
        ("a b:" + base64.b64encode(bytes(64)).decode(), "invalid key name"),
    ],
)
def test_secret_key_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidKey, match=message):
        SigningKey.parse(text)


def test_secret_key_tolerates_trailing_newline() -> None:
    assert str(SigningKey.parse(EXAMPLE_SECRET + "\n")) == EXAMPLE_SECRET


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nocolon", "missing ':'"),
        ("k:" + base64.b64encode(bytes(31)).decode(), "32 bytes"),
        ("k:" + base64.b64encode(bytes(33)).decode(), "32 bytes"),
        ("k:" + base64.b64encode(bytes(32)).decode().rstrip("="), "32 bytes"),
        (":" + base64.b64encode(bytes(32)).decode(), "invalid key name"),
        ("a_b:" + base64.b64encode(bytes(32)).decode(), "invalid key name"),
        # y = 2 is not the y coordinate of any curve point
        ("k:" + base64.b64encode((2).to_bytes(32, "little")).decode(), "not a valid ed25519"),
    ],
)
def test_public_key_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidKey, match=message):
        VerifyingKey.parse(text)
    assert issubclass(InvalidKey, ValueError)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nocolon", "missing ':'"),
        ("k:" + base64.b64encode(bytes(63)).decode(), "64 bytes"),
        ("k:" + base64.b64encode(bytes(65)).decode(), "64 bytes"),
        ("k:" + base64.b64encode(bytes(64)).decode() + "\n", "64 bytes"),
        ("k:" + base64.b64encode(bytes(64)).decode().replace("==", "=="[:1]), "64 bytes"),
        ("k:" + base64.b64encode(bytes(64)).decode()[:-3] + "B==", "64 bytes"),  # trailing bits
        (":" + base64.b64encode(bytes(64)).decode(), "invalid signature name"),
        ("a/b:" + base64.b64encode(bytes(64)).decode(), "invalid signature name"),
        ("a:b:" + base64.b64encode(bytes(64)).decode(), "64 bytes"),
    ],
)
def test_signature_parse_errors(text: str, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        Signature.parse(text)
    assert issubclass(SignatureError, ValueError)


def test_signature_constructor() -> None:
    with pytest.raises(SignatureError, match="64 bytes, got 2"):
        Signature("k", b"\xbe\xef")
    with pytest.raises(SignatureError, match="invalid signature name"):
        Signature("", bytes(64))
    sig = Signature("cache.nixos.org-1", bytes(64))
    assert str(sig) == "cache.nixos.org-1:" + "A" * 86 + "=="
    assert Signature.parse(str(sig)) == sig


@given(
    st.text("abcXYZ019-.", min_size=1, max_size=20),
    st.binary(min_size=64, max_size=64),
)
def test_signature_round_trip(name: str, data: bytes) -> None:
    sig = Signature(name, data)
    assert Signature.parse(str(sig)) == sig


@given(st.text(max_size=120))
def test_random_text_only_raises_declared_errors(text: str) -> None:
    with contextlib.suppress(SignatureError):
        Signature.parse(text)
    with contextlib.suppress(InvalidKey):
        VerifyingKey.parse(text)
    with contextlib.suppress(InvalidKey):
        SigningKey.parse(text)


# ------------------------------------------------------------------ strict verification


@pytest.mark.parametrize("hex_point", SMALL_ORDER_POINTS)
def test_small_order_points(hex_point: str) -> None:
    encoded = bytes.fromhex(hex_point)
    point = decode_point(encoded)
    assert point is not None
    assert order_divides_8(point)
    assert is_small_order(encoded)


def test_small_order_non_canonical_encodings() -> None:
    # y = p + 1 encodes the identity non-canonically; y = p encodes y = 0 (order 4).
    p = 2**255 - 19
    for y in (p + 1, p):
        encoded = y.to_bytes(32, "little")
        point = decode_point(encoded)
        assert point is not None
        assert order_divides_8(point)
        assert is_small_order(encoded)


def test_regular_points_are_not_small_order(test_key: SigningKey) -> None:
    base_point = bytes.fromhex("5866666666666666666666666666666666666666666666666666666666666666")
    keys = [base_point, test_key.verifying_key().key, VerifyingKey.parse(EXAMPLE_PUBLIC).key]
    keys += [SigningKey.generate(f"k{i}").verifying_key().key for i in range(20)]
    for key in keys:
        point = decode_point(key)
        assert point is not None
        assert not order_divides_8(point)
        assert not is_small_order(key)


@given(st.binary(min_size=32, max_size=32))
def test_fast_small_order_check_matches_generic(encoded: bytes) -> None:
    point = decode_point(encoded)
    if point is not None:
        assert is_small_order(encoded) == order_divides_8(point)


def test_decode_point_matches_cryptography() -> None:
    # Points we decode are the public keys cryptography derives, and x's sign bit is honoured.
    for i in range(10):
        key = SigningKey.generate(f"k{i}").verifying_key().key
        point = decode_point(key)
        assert point is not None
        x, y, _, _ = point
        raw = int.from_bytes(key, "little")
        assert y == raw & ((1 << 255) - 1)
        assert x & 1 == raw >> 255


def test_undecodable_point() -> None:
    assert decode_point((2).to_bytes(32, "little")) is None
    assert not is_small_order((2).to_bytes(32, "little"))
    assert decode_point(b"short") is None
    assert not is_small_order(b"short")
    # An undecodable R never verifies.
    sk = SigningKey.generate("k")
    sig = sk.sign(b"m").data
    assert not verify_strict(sk.verifying_key().key, b"m", (2).to_bytes(32, "little") + sig[32:])


def test_identity_public_key_rejected() -> None:
    """OpenSSL accepts (A = identity, R = identity, S = 0) for any message; strict does not."""
    sig = IDENTITY + bytes(32)
    Ed25519PublicKey.from_public_bytes(IDENTITY).verify(sig, b"any message")  # accepted
    weak = VerifyingKey("weak", IDENTITY)
    assert not weak.verify(b"any message", Signature("weak", sig))
    assert not verify_strict(IDENTITY, b"any message", sig)


def _clamped_scalar(seed: bytes) -> int:
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a


def test_small_order_r_rejected(test_key: SigningKey) -> None:
    """With R = identity and S = k*a, [S]B = R + [k]A holds: OpenSSL accepts, strict rejects."""
    vk = test_key.verifying_key()
    msg = b"forged"
    k = int.from_bytes(hashlib.sha512(IDENTITY + vk.key + msg).digest(), "little") % GROUP_ORDER
    s = k * _clamped_scalar(test_key.seed) % GROUP_ORDER
    sig = IDENTITY + s.to_bytes(32, "little")
    Ed25519PublicKey.from_public_bytes(vk.key).verify(sig, msg)  # accepted by cryptography
    assert not vk.verify(msg, Signature(vk.name, sig))


def test_non_canonical_s_rejected(test_key: SigningKey) -> None:
    vk = test_key.verifying_key()
    sig = test_key.sign(b"msg")
    s = int.from_bytes(sig.data[32:], "little")
    assert is_canonical_scalar(sig.data[32:])
    bad = sig.data[:32] + (s + GROUP_ORDER).to_bytes(32, "little")
    assert not is_canonical_scalar(bad[32:])
    with pytest.raises(InvalidSignature):
        Ed25519PublicKey.from_public_bytes(vk.key).verify(bad, b"msg")
    assert not vk.verify(b"msg", Signature(vk.name, bad))


def test_verify_strict_bad_lengths() -> None:
    assert not verify_strict(bytes(31), b"", bytes(64))
    assert not verify_strict(bytes(32), b"", bytes(63))
