"""Nodes of the castore Merkle DAG. Nodes carry no name: names come from the Directory that
contains them, or from the PathInfo (store path basename) for root nodes."""

from __future__ import annotations

from dataclasses import dataclass

from pytvix.castore.digests import B3Digest
from pytvix.castore.errors import InvalidNodeSize, InvalidSymlinkTarget

U64_MAX = (1 << 64) - 1
MAX_TARGET_LEN = 4095


@dataclass(frozen=True, slots=True)
class DirectoryNode:
    """Points to a Directory by digest. `size` is the tvix size of that directory
    (`Directory.size()`); the renderer ignores it, the closure validator checks it."""

    digest: B3Digest
    size: int

    def __post_init__(self) -> None:
        if type(self.digest) is not B3Digest:
            object.__setattr__(self, "digest", B3Digest(self.digest))
        if not 0 <= self.size <= U64_MAX:
            raise InvalidNodeSize(self.size)


@dataclass(frozen=True, slots=True)
class FileNode:
    """A regular file: blob digest, content length and the executable bit."""

    digest: B3Digest
    size: int
    executable: bool = False

    def __post_init__(self) -> None:
        if type(self.digest) is not B3Digest:
            object.__setattr__(self, "digest", B3Digest(self.digest))
        if not 0 <= self.size <= U64_MAX:
            raise InvalidNodeSize(self.size)


def symlink_target_problem(target: bytes) -> str | None:
    """Why `target` is not a valid symlink target, or None."""
    if not target:
        return "is empty"
    if len(target) > MAX_TARGET_LEN:
        return f"is {len(target)} bytes long (at most {MAX_TARGET_LEN} allowed)"
    if b"\0" in target:
        return "contains a NUL byte"
    return None


@dataclass(frozen=True, slots=True)
class SymlinkNode:
    """A symbolic link: 1..=4095 bytes, no NUL; anything else (absolute, `..`, non-UTF-8)."""

    target: bytes

    def __post_init__(self) -> None:
        problem = symlink_target_problem(self.target)
        if problem is not None:
            raise InvalidSymlinkTarget(bytes(self.target), problem)


Node = DirectoryNode | FileNode | SymlinkNode
