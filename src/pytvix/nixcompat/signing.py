"""Nix ed25519 signatures and keys (PROTOCOL §7.4).

Text forms: signature ``name:base64(64 bytes)``, public key ``name:base64(32 bytes)``, secret key
``name:base64(32-byte seed || 32-byte public key)``. A key only verifies signatures carrying its
own name, and verification is "strict" like ed25519-dalek's ``verify_strict``: small-order public
keys and signature ``R`` values, and non-canonical ``S`` scalars, are rejected.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ._ed25519 import decode_point, is_canonical_scalar, is_small_order

__all__ = [
    "InvalidKey",
    "Signature",
    "SignatureError",
    "SigningKey",
    "VerifyingKey",
    "verify_strict",
]

SIGNATURE_SIZE = 64
PUBLIC_KEY_SIZE = 32
SEED_SIZE = 32


class SignatureError(ValueError):
    """A signature string or value is malformed."""


class InvalidKey(ValueError):
    """A public or secret key string or value is malformed."""


def _name_ok(name: str) -> bool:
    return bool(name) and all(c.isalnum() or c in "-." for c in name)


def _b64decode(text: str, size: int) -> bytes | None:
    """Strict canonical padded base64 of exactly ``size`` bytes, else ``None``."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    if len(data) != size or base64.b64encode(data).decode("ascii") != text:
        return None
    return data


def _parse_named(text: str, size: int, what: str, error: type[ValueError]) -> tuple[str, bytes]:
    """Split ``name:base64`` into the name and exactly `size` decoded bytes."""
    name, sep, b64 = text.partition(":")
    if not sep:
        raise error(f"invalid {what} {text!r}: missing ':' after the key name")
    data = _b64decode(b64, size)
    if data is None:
        raise error(f"invalid {what} {text!r}: expected canonical base64 of {size} bytes")
    return name, data


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True, slots=True)
class Signature:
    """A named 64-byte ed25519 signature; ``str()`` gives ``name:base64``."""

    name: str
    data: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _name_ok(self.name):
            raise SignatureError(
                f"invalid signature name {self.name!r}: must be non-empty and contain only "
                "alphanumerics, '-' and '.'"
            )
        if not isinstance(self.data, bytes) or len(self.data) != SIGNATURE_SIZE:
            size = len(self.data) if isinstance(self.data, bytes) else type(self.data).__name__
            raise SignatureError(
                f"signature {self.name!r} must be {SIGNATURE_SIZE} bytes, got {size}"
            )

    @classmethod
    def parse(cls, text: str) -> Signature:
        """Parse ``name:base64(64 bytes)``; raises :class:`SignatureError`."""
        return cls(*_parse_named(text, SIGNATURE_SIZE, "signature", SignatureError))

    def __str__(self) -> str:
        return f"{self.name}:{_b64(self.data)}"


def verify_strict(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Strict ed25519 verification of a raw 64-byte ``signature`` over ``message``."""
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    r, s = signature[:32], signature[32:]
    if not is_canonical_scalar(s) or is_small_order(public_key) or is_small_order(r):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class VerifyingKey:
    """A named ed25519 public key; ``str()`` gives ``name:base64(32 bytes)``."""

    name: str
    key: bytes
    _weak: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _name_ok(self.name):
            raise InvalidKey(
                f"invalid key name {self.name!r}: must be non-empty and contain only "
                "alphanumerics, '-' and '.'"
            )
        if not isinstance(self.key, bytes) or len(self.key) != PUBLIC_KEY_SIZE:
            raise InvalidKey(f"public key {self.name!r} must be {PUBLIC_KEY_SIZE} bytes")
        if decode_point(self.key) is None:
            raise InvalidKey(f"public key {self.name!r} is not a valid ed25519 point")
        object.__setattr__(self, "_weak", is_small_order(self.key))

    @classmethod
    def parse(cls, text: str) -> VerifyingKey:
        """Parse ``name:base64(32 bytes)``; raises :class:`InvalidKey`."""
        return cls(*_parse_named(text, PUBLIC_KEY_SIZE, "public key", InvalidKey))

    def __str__(self) -> str:
        return f"{self.name}:{_b64(self.key)}"

    def verify(self, fingerprint: bytes, sig: Signature) -> bool:
        """True iff ``sig`` has this key's name and strictly verifies over ``fingerprint``."""
        if sig.name != self.name or self._weak:
            return False
        return verify_strict(self.key, fingerprint, sig.data)


class SigningKey:
    """A named ed25519 secret key in Nix's ``name:base64(seed || public key)`` format."""

    __slots__ = ("_private", "_public", "_seed", "name")

    name: str
    _seed: bytes
    _public: bytes
    _private: Ed25519PrivateKey

    def __init__(self, name: str, seed: bytes) -> None:
        if not isinstance(name, str) or not _name_ok(name):
            raise InvalidKey(
                f"invalid key name {name!r}: must be non-empty and contain only "
                "alphanumerics, '-' and '.'"
            )
        if not isinstance(seed, bytes) or len(seed) != SEED_SIZE:
            raise InvalidKey(f"secret key {name!r}: seed must be {SEED_SIZE} bytes")
        self.name = name
        self._seed = seed
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        self._public = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @classmethod
    def parse(cls, text: str) -> SigningKey:
        """Parse ``name:base64(seed || public)``; the public half must match the seed."""
        name, sep, b64 = text.strip().partition(":")
        if not sep:
            raise InvalidKey("invalid secret key: missing ':' after the key name")
        data = _b64decode(b64, SEED_SIZE + PUBLIC_KEY_SIZE)
        if data is None:
            raise InvalidKey(
                f"invalid secret key {name!r}: expected canonical base64 of "
                f"{SEED_SIZE + PUBLIC_KEY_SIZE} bytes (seed and public key)"
            )
        key = cls(name, data[:SEED_SIZE])
        if key._public != data[SEED_SIZE:]:
            raise InvalidKey(f"invalid secret key {name!r}: public half does not match the seed")
        return key

    @classmethod
    def generate(cls, name: str) -> SigningKey:
        """A fresh random key called ``name``."""
        seed = Ed25519PrivateKey.generate().private_bytes_raw()
        return cls(name, seed)

    @property
    def seed(self) -> bytes:
        """The 32-byte secret seed."""
        return self._seed

    def __str__(self) -> str:
        return f"{self.name}:{_b64(self._seed + self._public)}"

    def __repr__(self) -> str:
        return f"SigningKey(name={self.name!r}, public={_b64(self._public)!r})"

    def verifying_key(self) -> VerifyingKey:
        """The matching public key, with the same name."""
        return VerifyingKey(self.name, self._public)

    def sign(self, fingerprint: bytes) -> Signature:
        """Sign ``fingerprint`` (ed25519 is deterministic)."""
        return Signature(self.name, self._private.sign(fingerprint))
