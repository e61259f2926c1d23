"""Parsing the names in nar-bridge URLs."""

from __future__ import annotations

import base64
import binascii

from pytvix.castore.errors import DirectoryError
from pytvix.castore.nodes import Node
from pytvix.castore.proto import decode_node
from pytvix.nixcompat import nixbase32
from pytvix.store.nar.compression import SUFFIXES

MAX_NODE_BYTES = 4096


class NotFound(Exception):
    """The URL names nothing this bridge serves (404)."""


class BadRequest(Exception):
    """The URL or body is malformed (400)."""


def narinfo_digest(name: str) -> bytes:
    """`<32 nixbase32 chars>.narinfo` -> the 20-byte store path digest (NotFound otherwise)."""
    stem, dot, ext = name.partition(".")
    if ext != "narinfo" or not dot or len(stem) != 32:
        raise NotFound(name)
    try:
        return nixbase32.decode(stem)
    except ValueError as e:
        raise NotFound(name) from e


def nar_upload_name(name: str) -> tuple[bytes, str]:
    """`<52 nixbase32 chars>.nar[.xz|.bz2|.gz|.zst]` -> (sha256, compression); ValueError."""
    stem, dot, suffix = name.partition(".")
    compression = SUFFIXES.get(dot + suffix)
    if compression is None or len(stem) != 52:
        raise ValueError(f"not a NAR upload name: {name!r}")
    return nixbase32.decode(stem), compression


def castore_node(encoded: str) -> tuple[Node, bool]:
    """`<b64url(Node)>[.zst]` -> (anonymous root node, compressed?). NotFound for bytes that
    do not decode, BadRequest for oversized or invalid nodes (upstream's split)."""
    compressed = encoded.endswith(".zst")
    if compressed:
        encoded = encoded[: -len(".zst")]
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as e:
        raise NotFound(encoded) from e
    if len(raw) > MAX_NODE_BYTES:
        raise BadRequest("node too large")
    try:
        _, node = decode_node(raw, anonymous=True)
    except DirectoryError as e:
        if "not a valid Node message" in str(e):
            raise NotFound(encoded) from e
        raise BadRequest(f"invalid root node: {e}") from e
    return node, compressed
