"""Nix store paths: parsing, validation, ordering and content-addressed construction.

A store path basename is ``<nixbase32(20-byte digest)>-<name>``; the absolute form prefixes
``/nix/store/`` (PROTOCOL §7.3). Names are 1..=211 bytes of ``[A-Za-z0-9+\\-._?=]``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from functools import total_ordering
from typing import Final

from . import nixbase32
from .nixhash import CAFlat, CAHash, CANar, CAText, HashAlgo

__all__ = [
    "DIGEST_SIZE",
    "ENCODED_DIGEST_SIZE",
    "MAX_NAME_LEN",
    "STORE_DIR",
    "STORE_DIR_WITH_SLASH",
    "InvalidHashEncoding",
    "InvalidLength",
    "InvalidName",
    "InvalidReferences",
    "MissingDash",
    "MissingStoreDir",
    "StorePath",
    "StorePathError",
    "build_ca_path",
    "build_source_path",
    "build_text_path",
    "compress_hash",
    "validate_name",
]

STORE_DIR: Final = "/nix/store"
STORE_DIR_WITH_SLASH: Final = "/nix/store/"
DIGEST_SIZE: Final = 20
ENCODED_DIGEST_SIZE: Final = 32
MAX_NAME_LEN: Final = 211

_NAME_RE = re.compile(r"[A-Za-z0-9+\-._?=]+")
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+-._?=")


class StorePathError(ValueError):
    """Base class of store path errors."""


class InvalidLength(StorePathError):
    """A digest or basename has the wrong length."""


class InvalidHashEncoding(StorePathError):
    """The 32-character hash part is not valid nixbase32."""


class InvalidName(StorePathError):
    """The name part breaks the naming rules; ``reason`` says which."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"invalid store path name {name!r}: {reason}")
        self.name = name
        self.reason = reason


class MissingDash(StorePathError):
    """No ``-`` separates the hash part from the name."""


class MissingStoreDir(StorePathError):
    """An absolute path does not start with ``/nix/store/``."""


class InvalidReferences(StorePathError):
    """References (or a self-reference) were given where the path type forbids them."""


def _as_str(s: str | bytes) -> str:
    # latin-1 maps bytes 1:1 to code points; anything non-ASCII then fails validation.
    return s.decode("latin-1") if isinstance(s, bytes) else s


def validate_name(name: str | bytes) -> str:
    """Return ``name`` as ``str`` if it is a valid store path name, else raise InvalidName."""
    s = _as_str(name)
    if _NAME_RE.fullmatch(s) is not None and len(s) <= MAX_NAME_LEN:
        return s
    if not s:
        raise InvalidName(s, "name is empty")
    for i, c in enumerate(s):
        if c not in _NAME_CHARS:
            raise InvalidName(s, f"character {c!r} at position {i} is not allowed")
    raise InvalidName(s, f"name is {len(s)} bytes long, at most {MAX_NAME_LEN} are allowed")


@total_ordering
class StorePath:
    """An immutable, hashable, validated store path (20-byte ``digest`` and ``name``).

    Ordering compares the digest bytes from the last byte backwards (the nixbase32 string
    order), then the name.
    """

    __slots__ = ("_digest", "_name")

    _digest: bytes
    _name: str

    def __init__(self, digest: bytes, name: str) -> None:
        if not isinstance(digest, bytes):
            raise InvalidLength(f"store path digest must be bytes, not {type(digest).__name__}")
        if len(digest) != DIGEST_SIZE:
            raise InvalidLength(
                f"store path digest must be {DIGEST_SIZE} bytes, got {len(digest)} "
                f"({digest.hex()!r})"
            )
        object.__setattr__(self, "_digest", digest)
        object.__setattr__(self, "_name", validate_name(name))

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError("StorePath is immutable")

    def __delattr__(self, key: str) -> None:
        raise AttributeError("StorePath is immutable")

    @property
    def digest(self) -> bytes:
        """The 20-byte digest."""
        return self._digest

    @property
    def name(self) -> str:
        """The name part (after the dash)."""
        return self._name

    @classmethod
    def from_basename(cls, s: str | bytes) -> StorePath:
        """Parse ``<32 nixbase32 chars>-<name>``; raises a :class:`StorePathError` subclass."""
        text = _as_str(s)
        if len(text) < ENCODED_DIGEST_SIZE + 2:
            raise InvalidLength(
                f"store path basename {text!r} is too short: {len(text)} characters, need at "
                f"least {ENCODED_DIGEST_SIZE + 2} (hash, dash, name)"
            )
        try:
            digest = nixbase32.decode(text[:ENCODED_DIGEST_SIZE])
        except nixbase32.Nixbase32Error as e:
            raise InvalidHashEncoding(f"store path basename {text!r}: bad hash part: {e}") from None
        if text[ENCODED_DIGEST_SIZE] != "-":
            raise MissingDash(
                f"store path basename {text!r}: expected '-' after the "
                f"{ENCODED_DIGEST_SIZE}-character hash"
            )
        return cls(digest, text[ENCODED_DIGEST_SIZE + 1 :])

    @classmethod
    def from_absolute_path(cls, s: str | bytes) -> StorePath:
        """Parse ``/nix/store/<basename>`` (nothing after the basename)."""
        text = _as_str(s)
        if not text.startswith(STORE_DIR_WITH_SLASH):
            raise MissingStoreDir(f"path {text!r} does not start with {STORE_DIR_WITH_SLASH!r}")
        return cls.from_basename(text[len(STORE_DIR_WITH_SLASH) :])

    @classmethod
    def from_absolute_path_full(cls, s: str | bytes) -> tuple[StorePath, str]:
        """Split ``/nix/store/<basename>[/<rest>]`` into the store path and ``rest``.

        ``rest`` is ``""`` when there is nothing (or only ``/``) after the basename.
        """
        text = _as_str(s)
        if not text.startswith(STORE_DIR_WITH_SLASH):
            raise MissingStoreDir(f"path {text!r} does not start with {STORE_DIR_WITH_SLASH!r}")
        basename, _, rest = text[len(STORE_DIR_WITH_SLASH) :].partition("/")
        return cls.from_basename(basename), rest

    def hash_str(self) -> str:
        """The 32-character nixbase32 hash part."""
        return nixbase32.encode(self._digest)

    def to_absolute_path(self) -> str:
        """``/nix/store/<basename>``."""
        return f"{STORE_DIR_WITH_SLASH}{self}"

    def __str__(self) -> str:
        return f"{nixbase32.encode(self._digest)}-{self._name}"

    def __repr__(self) -> str:
        return f"StorePath({str(self)!r})"

    def __hash__(self) -> int:
        return hash((self._digest, self._name))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StorePath):
            return NotImplemented
        return self._digest == other._digest and self._name == other._name

    def _key(self) -> tuple[bytes, str]:
        return self._digest[::-1], self._name

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, StorePath):
            return NotImplemented
        return self._key() < other._key()

    def __reduce__(self) -> tuple[type[StorePath], tuple[bytes, str]]:
        return StorePath, (self._digest, self._name)


def compress_hash(digest: bytes, size: int) -> bytes:
    """Fold ``digest`` to ``size`` bytes by XOR: ``out[i % size] ^= digest[i]``."""
    if size <= 0:
        raise ValueError(f"compress_hash size must be positive, got {size}")
    out = bytearray(size)
    for i, b in enumerate(digest):
        out[i % size] ^= b
    return bytes(out)


def _path_from_fingerprint(type_: str, inner_digest: bytes, name: str) -> StorePath:
    """``"<type>:sha256:<hex inner>:/nix/store:<name>"``, sha256, folded to 20 bytes."""
    fp = f"{type_}:sha256:{inner_digest.hex()}:{STORE_DIR}:{name}"
    full = hashlib.sha256(fp.encode("ascii")).digest()
    return StorePath(compress_hash(full, DIGEST_SIZE), name)


def _type_with_refs(type_: str, references: Iterable[StorePath], self_reference: bool) -> str:
    # Nix keeps references in a sorted set of absolute paths; sort and de-duplicate likewise.
    refs = sorted({r.to_absolute_path() for r in references})
    parts = [type_, *refs]
    if self_reference:
        parts.append("self")
    return ":".join(parts)


def build_text_path(name: str, content: bytes, references: Iterable[StorePath] = ()) -> StorePath:
    """Store path of a text file (``builtins.toFile`` / ``nix-store --add`` of text)."""
    name = validate_name(name)
    return _path_from_fingerprint(
        _type_with_refs("text", references, False), hashlib.sha256(content).digest(), name
    )


def build_source_path(
    name: str, nar_sha256: bytes, references: Iterable[StorePath] = ()
) -> StorePath:
    """Store path of a NAR-sha256 content-addressed path (``tvix-store import``)."""
    name = validate_name(name)
    if len(nar_sha256) != 32:
        raise InvalidLength(f"NAR sha256 digest must be 32 bytes, got {len(nar_sha256)}")
    return _path_from_fingerprint(_type_with_refs("source", references, False), nar_sha256, name)


def build_ca_path(
    name: str,
    ca: CAHash,
    references: Iterable[StorePath] = (),
    self_reference: bool = False,
) -> StorePath:
    """Store path for the content address ``ca`` (PROTOCOL §7.3).

    Text uses ``text[:refs]`` (no self reference allowed); a NAR sha256 uses
    ``source[:refs][:self]``; any other fixed hash uses ``output:out`` over
    ``fixed:out:[r:]<algo>:<hex>:`` and allows neither references nor a self reference
    (raises :class:`InvalidReferences`).
    """
    name = validate_name(name)
    if isinstance(ca, CAText):
        if self_reference:
            raise InvalidReferences(f"text path {name!r} cannot refer to itself")
        return _path_from_fingerprint(_type_with_refs("text", references, False), ca.digest, name)
    if isinstance(ca, CANar) and ca.hash.algo is HashAlgo.SHA256:
        return _path_from_fingerprint(
            _type_with_refs("source", references, self_reference), ca.hash.digest, name
        )
    if not isinstance(ca, CANar | CAFlat):
        raise TypeError(f"not a CAHash: {ca!r}")
    if self_reference or any(True for _ in references):
        raise InvalidReferences(
            f"fixed-output path {name!r} ({'recursive ' if isinstance(ca, CANar) else ''}"
            f"{ca.hash.algo.value}) cannot have references"
        )
    recursive = "r:" if isinstance(ca, CANar) else ""
    inner = hashlib.sha256(
        f"fixed:out:{recursive}{ca.hash.algo.value}:{ca.hash.digest.hex()}:".encode("ascii")
    ).digest()
    return _path_from_fingerprint("output:out", inner, name)
