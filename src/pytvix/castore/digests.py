"""B3Digest: a validated 32-byte blake3 digest."""

from __future__ import annotations

import base64
import binascii

import blake3

from pytvix.castore.errors import InvalidDigestLen

B3_LEN = 32


class B3Digest(bytes):
    """Exactly 32 bytes. Behaves as `bytes` (hashable, usable as a key); `str()` gives
    `b3:` + standard base64, the form tvix uses in logs, errors and xattrs."""

    __slots__ = ()

    def __new__(cls, value: bytes | bytearray | memoryview) -> B3Digest:
        if len(value) != B3_LEN:
            raise InvalidDigestLen(len(value))
        return bytes.__new__(cls, value)

    @classmethod
    def of(cls, data: bytes | bytearray | memoryview) -> B3Digest:
        """blake3 of `data`."""
        return cls(blake3.blake3(data).digest())

    @classmethod
    def from_hex(cls, text: str) -> B3Digest:
        return cls(bytes.fromhex(text))

    @classmethod
    def parse(cls, text: str) -> B3Digest:
        """Parse `b3:<base64>` (as printed by `str()`) or 64 hex characters."""
        if text.startswith("b3:"):
            try:
                return cls(base64.b64decode(text[3:], validate=True))
            except binascii.Error as e:
                raise ValueError(f"invalid base64 in digest {text!r}") from e
        if len(text) == 2 * B3_LEN:
            try:
                return cls.from_hex(text)
            except ValueError as e:
                raise ValueError(f"invalid hex digest {text!r}") from e
        raise ValueError(f"not a blake3 digest: {text!r} (expected b3:<base64> or 64 hex chars)")

    def __str__(self) -> str:
        return "b3:" + base64.b64encode(self).decode()

    def __repr__(self) -> str:
        return f"B3Digest({self})"


EMPTY_BLOB_DIGEST = B3Digest.of(b"")
