"""Nix hashes (``algo`` + digest) and content-address descriptors (``CAHash``).

Text forms of a :class:`NixHash`: ``algo:<nixbase32>``, ``algo:<hex>``, ``algo:<base64>`` and
SRI ``algo-<base64>``. Narinfo ``CA:`` forms (PROTOCOL §4.8): ``text:sha256:<nixbase32>``,
``fixed:r:<algo>:<nixbase32>`` (NAR hash) and ``fixed:<algo>:<nixbase32>`` (flat file hash).
"""

from __future__ import annotations

import base64
import binascii
import enum
from dataclasses import dataclass

from . import nixbase32

__all__ = [
    "CAFlat",
    "CAHash",
    "CANar",
    "CAText",
    "HashAlgo",
    "NixHash",
    "NixHashError",
    "parse_ca",
    "render_ca",
]


class NixHashError(ValueError):
    """A hash or content-address string/value is malformed."""


class HashAlgo(enum.Enum):
    """Hash algorithms Nix knows; the value is the name used in text forms."""

    MD5 = "md5"
    SHA1 = "sha1"
    SHA256 = "sha256"
    SHA512 = "sha512"

    @property
    def digest_size(self) -> int:
        """Digest length in bytes."""
        return _DIGEST_SIZES[self]

    @classmethod
    def parse(cls, name: str) -> HashAlgo:
        """The algorithm called ``name`` (lowercase); raises :class:`NixHashError`."""
        try:
            return cls(name)
        except ValueError:
            raise NixHashError(
                f"unknown hash algorithm {name!r} (expected md5, sha1, sha256 or sha512)"
            ) from None

    def __str__(self) -> str:
        return self.value


_DIGEST_SIZES = {HashAlgo.MD5: 16, HashAlgo.SHA1: 20, HashAlgo.SHA256: 32, HashAlgo.SHA512: 64}

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _b64_len(n: int) -> int:
    return 4 * ((n + 2) // 3)


def _decode_b64(text: str, size: int, what: str) -> bytes:
    """Strict, canonical, padded standard base64 of exactly ``size`` bytes."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise NixHashError(f"invalid base64 in {what}") from None
    if len(data) != size or base64.b64encode(data).decode("ascii") != text:
        raise NixHashError(f"invalid base64 in {what}: expected canonical base64 of {size} bytes")
    return data


@dataclass(frozen=True, slots=True)
class NixHash:
    """A digest together with its algorithm; ``len(digest) == algo.digest_size``."""

    algo: HashAlgo
    digest: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.algo, HashAlgo):
            raise NixHashError(f"algo must be a HashAlgo, not {self.algo!r}")
        if not isinstance(self.digest, bytes):
            raise NixHashError(f"digest must be bytes, not {type(self.digest).__name__}")
        if len(self.digest) != self.algo.digest_size:
            raise NixHashError(
                f"{self.algo.value} digest must be {self.algo.digest_size} bytes, "
                f"got {len(self.digest)}"
            )

    def to_nix_base32_str(self) -> str:
        """``"<algo>:<nixbase32 digest>"``."""
        return f"{self.algo.value}:{nixbase32.encode(self.digest)}"

    def to_hex_str(self) -> str:
        """``"<algo>:<lowercase hex digest>"``."""
        return f"{self.algo.value}:{self.digest.hex()}"

    def to_sri_str(self) -> str:
        """``"<algo>-<base64 digest>"`` (Subresource Integrity form)."""
        return f"{self.algo.value}-{base64.b64encode(self.digest).decode('ascii')}"

    @classmethod
    def parse(cls, text: str, algo: HashAlgo | None = None) -> NixHash:
        """Parse ``algo:<nixbase32|hex|base64>`` or SRI ``algo-<base64>``.

        If ``algo`` is given, ``text`` may also be a bare digest encoding, and a prefixed
        algorithm must agree with it. The encoding is told apart by length (the lengths never
        collide). Raises :class:`NixHashError`.
        """
        if ":" in text:
            name, rest = text.split(":", 1)
            parsed_algo: HashAlgo | None = HashAlgo.parse(name)
        elif "-" in text:
            name, rest = text.split("-", 1)
            sri_algo = HashAlgo.parse(name)
            _check_algo(text, sri_algo, algo)
            return cls(sri_algo, _decode_b64(rest, sri_algo.digest_size, f"SRI hash {text!r}"))
        else:
            parsed_algo, rest = None, text
        if parsed_algo is None:
            if algo is None:
                raise NixHashError(f"hash {text!r} has no algorithm prefix")
            parsed_algo = algo
        _check_algo(text, parsed_algo, algo)
        return cls(parsed_algo, _decode_digest(rest, parsed_algo, text))


def _check_algo(text: str, found: HashAlgo, expected: HashAlgo | None) -> None:
    if expected is not None and found is not expected:
        raise NixHashError(f"hash {text!r} is {found.value}, expected {expected.value}")


def _decode_digest(rest: str, algo: HashAlgo, text: str) -> bytes:
    size = algo.digest_size
    if len(rest) == nixbase32.encoded_len(size):
        try:
            return nixbase32.decode(rest)
        except nixbase32.Nixbase32Error as e:
            raise NixHashError(f"invalid hash {text!r}: {e}") from None
    if len(rest) == 2 * size:
        if not _HEX_DIGITS.issuperset(rest):
            raise NixHashError(f"invalid hash {text!r}: bad hex digit")
        return bytes.fromhex(rest)
    if len(rest) == _b64_len(size):
        return _decode_b64(rest, size, f"hash {text!r}")
    raise NixHashError(
        f"invalid hash {text!r}: length {len(rest)} fits no encoding of a {algo.value} digest"
    )


@dataclass(frozen=True, slots=True)
class CAText:
    """Text content address: ``digest`` is the sha256 of the file contents (32 bytes)."""

    digest: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.digest, bytes) or len(self.digest) != 32:
            raise NixHashError("CAText digest must be 32 bytes (sha256)")

    @property
    def hash(self) -> NixHash:
        """The digest as a sha256 :class:`NixHash`."""
        return NixHash(HashAlgo.SHA256, self.digest)


@dataclass(frozen=True, slots=True)
class CAFlat:
    """Flat fixed-output content address: ``hash`` is over the file contents."""

    hash: NixHash

    def __post_init__(self) -> None:
        if not isinstance(self.hash, NixHash):
            raise NixHashError("CAFlat.hash must be a NixHash")


@dataclass(frozen=True, slots=True)
class CANar:
    """Recursive content address: ``hash`` is over the NAR serialisation."""

    hash: NixHash

    def __post_init__(self) -> None:
        if not isinstance(self.hash, NixHash):
            raise NixHashError("CANar.hash must be a NixHash")


CAHash = CAText | CAFlat | CANar


def render_ca(ca: CAHash) -> str:
    """The narinfo ``CA:`` value: ``text:sha256:…``, ``fixed:r:<algo>:…`` or ``fixed:<algo>:…``."""
    if isinstance(ca, CAText):
        return f"text:sha256:{nixbase32.encode(ca.digest)}"
    if isinstance(ca, CANar):
        return f"fixed:r:{ca.hash.to_nix_base32_str()}"
    return f"fixed:{ca.hash.to_nix_base32_str()}"


def parse_ca(text: str) -> CAHash:
    """Parse a narinfo ``CA:`` value (nixbase32 digests only); raises :class:`NixHashError`."""
    if text.startswith("text:"):
        rest = text[len("text:") :]
        if not rest.startswith("sha256:"):
            raise NixHashError(f"invalid CA {text!r}: text content addresses must use sha256")
        return CAText(_decode_ca_digest(rest[len("sha256:") :], HashAlgo.SHA256, text))
    if text.startswith("fixed:"):
        rest = text[len("fixed:") :]
        recursive = rest.startswith("r:")
        if recursive:
            rest = rest[len("r:") :]
        name, sep, b32 = rest.partition(":")
        if not sep:
            raise NixHashError(f"invalid CA {text!r}: expected <algo>:<nixbase32 digest>")
        try:
            algo = HashAlgo.parse(name)
        except NixHashError as e:
            raise NixHashError(f"invalid CA {text!r}: {e}") from None
        nh = NixHash(algo, _decode_ca_digest(b32, algo, text))
        return CANar(nh) if recursive else CAFlat(nh)
    raise NixHashError(f"invalid CA {text!r}: expected a text: or fixed: prefix")


def _decode_ca_digest(b32: str, algo: HashAlgo, text: str) -> bytes:
    try:
        return nixbase32.decode_fixed(b32, algo.digest_size)
    except nixbase32.Nixbase32Error as e:
        raise NixHashError(f"invalid CA {text!r}: {e}") from None
