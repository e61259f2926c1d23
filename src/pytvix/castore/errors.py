"""The castore error hierarchy.

Service errors (`InvalidRequestError`, `StorageError`) are what backends raise; the gRPC layer
maps them to status codes in one place. Validation errors (`ValidateNodeError`,
`DirectoryError`) are raised while building domain types from untrusted input and carry the
offending name or value. "Not found" is never an exception: services return None.
"""

from __future__ import annotations


def show_bytes(value: bytes) -> str:
    """Render a name or target for messages: quoted, non-UTF-8 bytes escaped."""
    text = value.decode("utf-8", "backslashreplace").replace('"', '\\"')
    return f'"{text}"'


class CastoreError(Exception):
    """Base class of errors raised by castore services."""


class InvalidRequestError(CastoreError):
    """The caller asked for something invalid (maps to INVALID_ARGUMENT)."""


class StorageError(CastoreError):
    """The backend failed or holds inconsistent data (maps to DATA_LOSS / INTERNAL)."""


# --- node validation -------------------------------------------------------------------------


class ValidateNodeError(ValueError):
    """A single node is invalid, independent of its name."""


class InvalidDigestLen(ValidateNodeError):
    def __init__(self, length: int) -> None:
        super().__init__(f"invalid digest length: {length}")
        self.length = length


class InvalidSymlinkTarget(ValidateNodeError):
    def __init__(self, target: bytes, reason: str) -> None:
        super().__init__(f"invalid symlink target {show_bytes(target[:64])}: {reason}")
        self.target = target
        self.reason = reason


class InvalidNodeSize(ValidateNodeError):
    def __init__(self, size: int) -> None:
        super().__init__(f"invalid size {size}: must fit an unsigned 64-bit integer")
        self.size = size


# --- directory validation --------------------------------------------------------------------


class DirectoryError(ValueError):
    """A Directory (or a named/anonymous node) failed validation."""


class DuplicateName(DirectoryError):
    def __init__(self, name: bytes) -> None:
        super().__init__(f"{show_bytes(name)} is a duplicate name")
        self.name = name


class InvalidNode(DirectoryError):
    def __init__(self, name: bytes, cause: ValidateNodeError) -> None:
        super().__init__(f"invalid node with name {show_bytes(name)}: {cause}")
        self.name = name
        self.cause = cause


class SizeOverflow(DirectoryError):
    def __init__(self) -> None:
        super().__init__("Total size exceeds u64::MAX")


class InvalidName(DirectoryError):
    def __init__(self, name: bytes, reason: str) -> None:
        super().__init__(f"invalid name {show_bytes(name[:300])}: {reason}")
        self.name = name
        self.reason = reason


class WrongSorting(DirectoryError):
    def __init__(self, name: bytes) -> None:
        super().__init__(f"{show_bytes(name)} is not sorted")
        self.name = name


class NoNodeSet(DirectoryError):
    def __init__(self) -> None:
        super().__init__("no node set")


class NameInAnonymousNode(DirectoryError):
    def __init__(self) -> None:
        super().__init__("name is not allowed on an anonymous node")
