"""The NAR wire format (PROTOCOL.md §4.1-§4.2): strings, fixed token blocks, limits, name rules.

A NAR string is a u64 little-endian length, the bytes, then zero padding to a multiple of 8.
The token blocks are runs of such strings that always appear together, so a reader can match
and a writer can emit each of them in one operation.
"""

from __future__ import annotations

import enum
import struct

from pytvix.castore.nodes import MAX_TARGET_LEN, symlink_target_problem
from pytvix.castore.path import MAX_NAME_LEN
from pytvix.castore.path import name_problem as castore_name_problem

__all__ = [
    "MAX_NAME_LEN",
    "MAX_TARGET_LEN",
    "TOK_DIR",
    "TOK_ENT",
    "TOK_EXE",
    "TOK_NAR",
    "TOK_NOD",
    "TOK_PAR",
    "TOK_REG",
    "TOK_SYM",
    "U64",
    "ZERO_PADDING",
    "NodeKind",
    "encode_string",
    "name_problem",
    "nar_string_len",
    "pad_len",
    "target_problem",
]

U64 = struct.Struct("<Q")
"""Packs and unpacks NAR integers (u64, little endian)."""

ZERO_PADDING: tuple[bytes, ...] = tuple(bytes(n) for n in range(8))
"""`ZERO_PADDING[n]` is n zero bytes (the valid padding of length n)."""


def pad_len(n: int) -> int:
    """Number of zero bytes that follow `n` bytes of string data."""
    return -n & 7


def nar_string_len(n: int) -> int:
    """Encoded size of a NAR string with `n` data bytes: 8 + n rounded up to a multiple of 8."""
    return 8 + ((n + 7) & ~7)


def encode_string(data: bytes) -> bytes:
    """Encode `data` as a NAR string (length, bytes, zero padding)."""
    return U64.pack(len(data)) + data + ZERO_PADDING[-len(data) & 7]


def _block(*strings: bytes) -> bytes:
    return b"".join(encode_string(s) for s in strings)


TOK_NAR = _block(b"nix-archive-1", b"(", b"type")
"""Archive magic and the root node's opening: `nix-archive-1 ( type` (56 bytes)."""
TOK_SYM = _block(b"symlink", b"target")
"""`symlink target`, followed by the target string (32 bytes)."""
TOK_REG = _block(b"regular", b"contents")
"""`regular contents`, followed by the contents string (32 bytes)."""
TOK_EXE = _block(b"regular", b"executable", b"", b"contents")
"""`regular executable "" contents`, followed by the contents string (64 bytes)."""
TOK_DIR = _block(b"directory")
"""`directory`, followed by entries and `)` (24 bytes)."""
TOK_ENT = _block(b"entry", b"(", b"name")
"""`entry ( name`, followed by the name string (48 bytes)."""
TOK_NOD = _block(b"node", b"(", b"type")
"""`node ( type`, after an entry's name (48 bytes)."""
TOK_PAR = _block(b")")
"""`)`, closing a node or an entry (16 bytes)."""


class NodeKind(enum.Enum):
    """The kinds of node a NAR holds; each value is the token block that follows a node's
    `type` (a regular file is either `REGULAR` or `EXECUTABLE`)."""

    SYMLINK = TOK_SYM
    REGULAR = TOK_REG
    EXECUTABLE = TOK_EXE
    DIRECTORY = TOK_DIR


def name_problem(name: bytes) -> str | None:
    """Why `name` is not a valid directory entry name, or None (the castore rules)."""
    problem = castore_name_problem(name)
    return None if problem is None else f"entry name {problem}"


def target_problem(target: bytes) -> str | None:
    """Why `target` is not a valid symlink target, or None (the castore rules)."""
    problem = symlink_target_problem(target)
    return None if problem is None else f"symlink target {problem}"
