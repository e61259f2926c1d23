"""Nix's base32 encoding (PROTOCOL §7.2).

The alphabet is ``0123456789abcdfghijklmnpqrsvwxyz`` (no ``e o t u``). The input bytes are read
as one little-endian integer and written as big-endian base-32 digits, so the text reads
"reversed" compared to RFC 4648. ``encode(n bytes)`` has ``ceil(8n/5)`` characters.

Both directions work on whole Python integers (``int.from_bytes`` / ``int(text, 32)``) with
precomputed translation tables, so no per-bit loop runs in Python.
"""

from __future__ import annotations

__all__ = [
    "ALPHABET",
    "Nixbase32Error",
    "decode",
    "decode_fixed",
    "decoded_len",
    "encode",
    "encoded_len",
]

ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"

# Two output characters per 10-bit group.
_PAIRS: tuple[str, ...] = tuple(ALPHABET[i >> 5] + ALPHABET[i & 31] for i in range(1024))

# Maps nixbase32 characters to the digits Python's int(..., 32) understands; everything else
# maps to "!", which int() rejects and which decode() looks for first.
_INVALID = ord("!")
_TO_INT32 = bytearray([_INVALID]) * 256
for _i, _c in enumerate(ALPHABET):
    _TO_INT32[ord(_c)] = ord("0123456789abcdefghijklmnopqrstuv"[_i])
_DECODE_TABLE = bytes(_TO_INT32)
del _i, _c, _TO_INT32

# encoded length -> (bit shifts of the 10-bit groups, whether to drop a leading character)
_SHIFTS: dict[int, tuple[tuple[int, ...], bool]] = {}


class Nixbase32Error(ValueError):
    """Text is not a valid nixbase32 encoding."""


def encoded_len(n: int) -> int:
    """Number of nixbase32 characters encoding ``n`` bytes: ``ceil(8n/5)``."""
    return (8 * n + 4) // 5


def decoded_len(n: int) -> int:
    """Number of bytes held by ``n`` nixbase32 characters: ``floor(5n/8)``.

    Only meaningful when ``n`` is a valid encoded length (``encoded_len(decoded_len(n)) == n``).
    """
    return 5 * n // 8


def _shifts(out_len: int) -> tuple[tuple[int, ...], bool]:
    entry = _SHIFTS.get(out_len)
    if entry is None:
        even = out_len + (out_len & 1)
        entry = (tuple(range(5 * even - 10, -1, -10)), bool(out_len & 1))
        _SHIFTS[out_len] = entry
    return entry


def encode(data: bytes) -> str:
    """Encode ``data`` as nixbase32 text of length ``encoded_len(len(data))``."""
    out_len = encoded_len(len(data))
    if out_len == 0:
        return ""
    num = int.from_bytes(data, "little")
    shifts, odd = _shifts(out_len)
    pairs = _PAIRS
    text = "".join([pairs[(num >> s) & 1023] for s in shifts])
    return text[1:] if odd else text


def decode(text: str | bytes) -> bytes:
    """Decode nixbase32 ``text``; the output length is ``decoded_len(len(text))``.

    Raises :class:`Nixbase32Error` if the length is not a valid encoded length, a character is
    outside the alphabet, or the unused high bits of the first character are not zero.
    """
    if isinstance(text, str):
        try:
            raw = text.encode("ascii")
        except UnicodeEncodeError as e:
            raise Nixbase32Error(
                f"invalid nixbase32 {text!r}: non-ASCII character at position {e.start}"
            ) from None
    else:
        raw = bytes(text)
    n_chars = len(raw)
    n = decoded_len(n_chars)
    if encoded_len(n) != n_chars:
        raise Nixbase32Error(
            f"invalid nixbase32 {text!r}: length {n_chars} is not the encoded length of any "
            "byte count"
        )
    if n == 0:
        return b""
    digits = raw.translate(_DECODE_TABLE)
    bad = digits.find(b"!")
    if bad != -1:
        raise Nixbase32Error(
            f"invalid nixbase32 {text!r}: character {raw[bad : bad + 1]!r} at position {bad} "
            "is not in the alphabet"
        )
    num = int(digits, 32)
    if num >> (8 * n):
        raise Nixbase32Error(
            f"invalid nixbase32 {text!r}: non-zero leftover high bits "
            f"(value does not fit in {n} byte(s))"
        )
    return num.to_bytes(n, "little")


def decode_fixed(text: str | bytes, size: int) -> bytes:
    """Decode ``text`` that must encode exactly ``size`` bytes (see :func:`decode`)."""
    if len(text) != encoded_len(size):
        raise Nixbase32Error(
            f"invalid nixbase32 {text!r}: expected {encoded_len(size)} characters "
            f"({size} bytes), got {len(text)}"
        )
    return decode(text)
