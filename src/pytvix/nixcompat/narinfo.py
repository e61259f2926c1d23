"""The ``.narinfo`` text format of Nix binary caches (PROTOCOL §4.8) and its fingerprint (§7.5).

Parsing is strict: every line is ``Key: value`` (exactly one space after the first colon), lines
end with ``\\n`` (the last one may omit it; ``\\r`` is not stripped), known keys may appear at
most once (``Sig`` is repeatable), unknown keys are ignored. Rendering always uses the canonical
order and nixbase32 hashes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from . import nixbase32
from .nixhash import CAHash, parse_ca, render_ca
from .signing import Signature, SigningKey, VerifyingKey
from .store_path import STORE_DIR_WITH_SLASH, StorePath

__all__ = [
    "NarInfo",
    "NarInfoError",
    "fingerprint",
    "parse_narinfo",
    "render_narinfo",
]

U64_MAX: Final = 2**64 - 1
_SHA256_B32_LEN: Final = 52
_SHA256_HEX_LEN: Final = 64
_HEX_LOWER: Final = frozenset("0123456789abcdef")
_DIGITS: Final = frozenset("0123456789")
_REQUIRED: Final = ("StorePath", "URL", "NarHash", "NarSize", "References")


class NarInfoError(ValueError):
    """A narinfo text or value is invalid; the message names the line and key."""


def fingerprint(
    store_path: StorePath, nar_sha256: bytes, nar_size: int, references: Iterable[StorePath]
) -> bytes:
    """``1;<path>;sha256:<nixbase32 nar hash>;<nar size>;<comma-joined reference paths>``.

    References are used in the given order (PROTOCOL §7.5).
    """
    if len(nar_sha256) != 32:
        raise ValueError(f"NAR sha256 must be 32 bytes, got {len(nar_sha256)}")
    refs = ",".join(r.to_absolute_path() for r in references)
    return (
        f"1;{store_path.to_absolute_path()};sha256:{nixbase32.encode(nar_sha256)};{nar_size};{refs}"
    ).encode("ascii")


def _check_text(what: str, value: object, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value or "\n" in value:
        raise NarInfoError(f"{what} must be a non-empty single-line string, got {value!r}")


def _check_u64(what: str, value: object, optional: bool) -> None:
    if value is None and optional:
        return
    if type(value) is not int or not 0 <= value <= U64_MAX:
        raise NarInfoError(f"{what} must be an integer in 0..2**64-1, got {value!r}")


@dataclass(frozen=True)
class NarInfo:
    """Every field of a narinfo (PROTOCOL §4.8).

    ``compression`` is ``None`` when the line is absent (which Nix reads as bzip2, see
    :attr:`effective_compression`). ``deriver`` carries the name *without* ``.drv``.
    ``nar_hash_was_hex`` records a hex ``NarHash`` on input; it is not part of equality.
    Lists passed for ``references``/``signatures`` are stored as tuples.
    """

    store_path: StorePath
    url: str
    nar_hash: bytes
    nar_size: int
    references: tuple[StorePath, ...] = ()
    compression: str | None = None
    file_hash: bytes | None = None
    file_size: int | None = None
    deriver: StorePath | None = None
    system: str | None = None
    signatures: tuple[Signature, ...] = ()
    ca: CAHash | None = None
    nar_hash_was_hex: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.store_path, StorePath):
            raise NarInfoError(f"store_path must be a StorePath, got {self.store_path!r}")
        _check_text("url", self.url, optional=False)
        _check_text("compression", self.compression, optional=True)
        _check_text("system", self.system, optional=True)
        if not isinstance(self.nar_hash, bytes) or len(self.nar_hash) != 32:
            raise NarInfoError("nar_hash must be 32 bytes (sha256)")
        if self.file_hash is not None and (
            not isinstance(self.file_hash, bytes) or len(self.file_hash) != 32
        ):
            raise NarInfoError("file_hash must be 32 bytes (sha256) or None")
        _check_u64("nar_size", self.nar_size, optional=False)
        _check_u64("file_size", self.file_size, optional=True)
        refs = tuple(self.references)
        if not all(isinstance(r, StorePath) for r in refs):
            raise NarInfoError("references must all be StorePath values")
        object.__setattr__(self, "references", refs)
        sigs = tuple(self.signatures)
        if not all(isinstance(s, Signature) for s in sigs):
            raise NarInfoError("signatures must all be Signature values")
        object.__setattr__(self, "signatures", sigs)
        if self.deriver is not None and not isinstance(self.deriver, StorePath):
            raise NarInfoError(f"deriver must be a StorePath or None, got {self.deriver!r}")

    @property
    def effective_compression(self) -> str:
        """The compression to undo: ``bzip2`` if the line was absent, else its value."""
        return "bzip2" if self.compression is None else self.compression

    def fingerprint(self) -> bytes:
        """The signed fingerprint of this narinfo (PROTOCOL §7.5)."""
        return fingerprint(self.store_path, self.nar_hash, self.nar_size, self.references)

    def verify(self, keys: Iterable[VerifyingKey]) -> bool:
        """True if at least one signature verifies with one of ``keys``."""
        keys = tuple(keys)
        if not keys or not self.signatures:
            return False
        fp = self.fingerprint()
        return any(k.verify(fp, s) for s in self.signatures for k in keys)

    def with_signature(self, key: SigningKey) -> NarInfo:
        """A copy with a signature by ``key`` over the fingerprint appended."""
        sig = key.sign(self.fingerprint())
        return dataclasses.replace(self, signatures=(*self.signatures, sig))

    def render(self) -> str:
        """Same as :func:`render_narinfo`."""
        return render_narinfo(self)


def render_narinfo(info: NarInfo) -> str:
    """The narinfo text, lines in PROTOCOL §4.8 order, each ``\\n``-terminated."""
    lines = [
        f"StorePath: {info.store_path.to_absolute_path()}",
        f"URL: {info.url}",
    ]
    if info.compression is not None:
        lines.append(f"Compression: {info.compression}")
    if info.file_hash is not None:
        lines.append(f"FileHash: sha256:{nixbase32.encode(info.file_hash)}")
    if info.file_size is not None:
        lines.append(f"FileSize: {info.file_size}")
    lines.append(f"NarHash: sha256:{nixbase32.encode(info.nar_hash)}")
    lines.append(f"NarSize: {info.nar_size}")
    if info.references:
        lines.append("References: " + " ".join(str(r) for r in info.references))
    else:
        lines.append("References: ")
    if info.deriver is not None:
        lines.append(f"Deriver: {info.deriver}.drv")
    if info.system is not None:
        lines.append(f"System: {info.system}")
    lines.extend(f"Sig: {s}" for s in info.signatures)
    if info.ca is not None:
        lines.append(f"CA: {render_ca(info.ca)}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- parsing


def _parse_u64(value: str) -> int:
    if not value or not _DIGITS.issuperset(value):
        raise ValueError(f"{value!r} is not an unsigned decimal integer")
    if len(value.lstrip("0")) > 20 or int(value) > U64_MAX:
        raise ValueError(f"{value!r} does not fit in 64 bits")
    return int(value)


def _parse_non_empty(value: str) -> str:
    if not value:
        raise ValueError("value is empty")
    return value


def _parse_sha256_b32(value: str) -> bytes:
    if not value.startswith("sha256:"):
        raise ValueError(f"{value!r} does not start with 'sha256:'")
    return nixbase32.decode_fixed(value[len("sha256:") :], 32)


def _parse_references(value: str) -> tuple[StorePath, ...]:
    if not value:
        return ()
    return tuple(StorePath.from_basename(part) for part in value.split(" "))


def _parse_deriver(value: str) -> StorePath:
    if not value.endswith(".drv"):
        raise ValueError(f"{value!r} does not end in '.drv'")
    if value.startswith(STORE_DIR_WITH_SLASH):
        raise ValueError(f"{value!r} must be a basename, not an absolute path")
    return StorePath.from_basename(value[: -len(".drv")])


_KNOWN_KEYS: Final = frozenset(
    {"StorePath", "URL", "Compression", "FileHash", "FileSize", "NarHash", "NarSize"}
    | {"References", "Deriver", "System", "CA"}
)


def _parse_nar_hash(value: str) -> tuple[bytes, bool]:
    """``sha256:`` + 52 nixbase32 chars or 64 lowercase hex chars; returns (digest, was_hex)."""
    if not value.startswith("sha256:"):
        raise ValueError(f"{value!r} does not start with 'sha256:'")
    digest = value[len("sha256:") :]
    if len(digest) == _SHA256_HEX_LEN:
        if not _HEX_LOWER.issuperset(digest):
            raise ValueError(f"{digest!r} is not lowercase hex")
        return bytes.fromhex(digest), True
    if len(digest) == _SHA256_B32_LEN:
        return nixbase32.decode(digest), False
    raise ValueError(
        f"digest {digest!r} has length {len(digest)}, expected 52 (nixbase32) or 64 (hex)"
    )


class _Fields:
    """Accumulates parsed values while reading a narinfo."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.store_path: StorePath | None = None
        self.url: str | None = None
        self.compression: str | None = None
        self.file_hash: bytes | None = None
        self.file_size: int | None = None
        self.nar_hash: bytes | None = None
        self.nar_hash_was_hex = False
        self.nar_size: int | None = None
        self.references: tuple[StorePath, ...] | None = None
        self.deriver: StorePath | None = None
        self.system: str | None = None
        self.signatures: list[Signature] = []
        self.ca: CAHash | None = None

    def set(self, key: str, value: str) -> None:
        """Parse ``value`` for the known, not yet seen ``key``."""
        match key:
            case "StorePath":
                self.store_path = StorePath.from_absolute_path(value)
            case "URL":
                self.url = _parse_non_empty(value)
            case "Compression":
                self.compression = _parse_non_empty(value)
            case "FileHash":
                self.file_hash = _parse_sha256_b32(value)
            case "FileSize":
                self.file_size = _parse_u64(value)
            case "NarHash":
                self.nar_hash, self.nar_hash_was_hex = _parse_nar_hash(value)
            case "NarSize":
                self.nar_size = _parse_u64(value)
            case "References":
                self.references = _parse_references(value)
            case "Deriver":
                self.deriver = _parse_deriver(value)
            case "System":
                self.system = _parse_non_empty(value)
            case "CA":
                self.ca = parse_ca(value)
            case _:  # pragma: no cover - callers only pass _KNOWN_KEYS
                raise AssertionError(key)

    def build(self) -> NarInfo:
        if (
            self.store_path is None
            or self.url is None
            or self.nar_hash is None
            or self.nar_size is None
            or self.references is None
        ):
            missing = [k for k in _REQUIRED if k not in self.seen]
            raise NarInfoError(f"missing required key(s): {', '.join(missing)}")
        return NarInfo(
            store_path=self.store_path,
            url=self.url,
            compression=self.compression,
            file_hash=self.file_hash,
            file_size=self.file_size,
            nar_hash=self.nar_hash,
            nar_size=self.nar_size,
            references=self.references,
            deriver=self.deriver,
            system=self.system,
            signatures=tuple(self.signatures),
            ca=self.ca,
            nar_hash_was_hex=self.nar_hash_was_hex,
        )


def parse_narinfo(text: str | bytes) -> NarInfo:
    """Parse narinfo ``text`` strictly (PROTOCOL §4.8); raises :class:`NarInfoError` only."""
    if not isinstance(text, str):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise NarInfoError(f"narinfo is not valid UTF-8: {e}") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()

    fields = _Fields()
    for lineno, line in enumerate(lines, start=1):
        key, sep, rest = line.partition(":")
        if not sep:
            raise NarInfoError(f"line {lineno}: expected 'Key: value', no ':' in {line!r}")
        if not rest.startswith(" "):
            raise NarInfoError(
                f"line {lineno} ({key}): expected exactly one space after ':' in {line!r}"
            )
        value = rest[1:]
        if key != "Sig" and key not in _KNOWN_KEYS:
            continue  # unknown keys are ignored
        if key in fields.seen:
            raise NarInfoError(f"line {lineno} ({key}): duplicate key {key!r}")
        try:
            if key == "Sig":
                fields.signatures.append(Signature.parse(value))
            else:
                fields.seen.add(key)
                fields.set(key, value)
        except ValueError as e:  # every field error derives from ValueError
            raise NarInfoError(f"line {lineno} ({key}): invalid value {value!r}: {e}") from e
    return fields.build()
