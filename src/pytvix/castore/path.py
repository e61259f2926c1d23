"""Names of directory entries (PathComponent) and relative castore paths."""

from __future__ import annotations

from collections.abc import Iterator

from pytvix.castore.errors import InvalidName

MAX_NAME_LEN = 255


def name_problem(name: bytes) -> str | None:
    """Why `name` is not a valid entry name, or None. Checked in upstream's order:
    empty, `..`, `.`, too long, NUL, slash."""
    if not name:
        return "is empty"
    if name == b"..":
        return "is '..'"
    if name == b".":
        return "is '.'"
    if len(name) > MAX_NAME_LEN:
        return f"is {len(name)} bytes long (at most {MAX_NAME_LEN} allowed)"
    if b"\0" in name:
        return "contains a NUL byte"
    if b"/" in name:
        return "contains '/'"
    return None


class PathComponent(bytes):
    """A validated name of a directory entry: 1..=255 bytes, not `.`/`..`, no NUL, no `/`.
    Any other bytes are allowed (no UTF-8 requirement)."""

    __slots__ = ()

    def __new__(cls, value: bytes) -> PathComponent:
        if type(value) is cls:
            return value
        # fast path for the common case; name_problem() explains the rejections
        if not (
            0 < len(value) <= MAX_NAME_LEN
            and b"/" not in value
            and b"\x00" not in value
            and value not in {b".", b".."}
        ):
            raise InvalidName(bytes(value), name_problem(value) or "invalid")
        return bytes.__new__(cls, value)


def split_path(path: bytes | str) -> Iterator[PathComponent]:
    """The components of a relative castore path `a/b/c` (empty components from repeated or
    trailing slashes are skipped; `.`/`..` are rejected, never resolved)."""
    raw = path.encode() if isinstance(path, str) else path
    for part in raw.split(b"/"):
        if part:
            yield PathComponent(part)
