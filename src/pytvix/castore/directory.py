"""Directory: an immutable, validated, name-sorted map of entries with a blake3 digest."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from operator import itemgetter

import blake3

from pytvix.castore.canonical import encode_directory
from pytvix.castore.digests import B3Digest
from pytvix.castore.errors import DuplicateName, SizeOverflow
from pytvix.castore.nodes import U64_MAX, DirectoryNode, FileNode, Node, SymlinkNode
from pytvix.castore.path import PathComponent


def tvix_size(entries: Iterable[tuple[bytes, Node]]) -> int:
    """The size tvix records in a parent's DirectoryNode for a directory with these entries:
    `2 * len(entries) + sum(child directory sizes)` (PROTOCOL.md §2.5; the proto comments
    document `len + sum`, but ingestion and closure validation upstream use this formula, and
    every directory digest above the leaves depends on it). Raises SizeOverflow past u64."""
    total = 0
    for _, node in entries:
        total += 2 + node.size if isinstance(node, DirectoryNode) else 2
    if total > U64_MAX:
        raise SizeOverflow()
    return total


class Directory:
    """Entries sorted by name (byte-wise), names unique across all node kinds.

    Construction validates names (PathComponent) and uniqueness and checks that the size fits
    u64. The canonical encoding and digest are computed once, on first use.
    """

    __slots__ = ("_digest", "_encoded", "_entries", "_names", "_size")

    _entries: tuple[tuple[PathComponent, Node], ...]
    _names: list[bytes]
    _size: int
    _encoded: bytes | None
    _digest: B3Digest | None

    def __init__(self, entries: Iterable[tuple[bytes, Node]] = ()) -> None:
        self._set(sorted(((PathComponent(n), node) for n, node in entries), key=_entry_name))

    @classmethod
    def from_named(cls, entries: list[tuple[PathComponent, Node]]) -> Directory:
        """Build from entries whose names are already PathComponents (in any order); still
        checks uniqueness and size. The fast path used when decoding received directories."""
        directory = cls.__new__(cls)
        entries.sort(key=_entry_name)
        directory._set(entries)
        return directory

    def _set(self, items: list[tuple[PathComponent, Node]]) -> None:
        names = [n for n, _ in items]
        for i in range(1, len(names)):
            if names[i] == names[i - 1]:
                raise DuplicateName(bytes(names[i]))
        self._entries = tuple(items)
        self._names = names  # type: ignore[assignment]
        self._size = tvix_size(items)
        self._encoded = None
        self._digest = None

    def _adopt_encoding(self, encoded: bytes, digest: B3Digest) -> None:
        """Cache an encoding known to be canonical: bytes whose blake3 equals a digest computed
        from a canonical encoding are, by collision resistance, that encoding."""
        self._encoded = encoded
        self._digest = digest

    # --- reading ---

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[tuple[PathComponent, Node]]:
        """All entries in name order (the three kinds interleaved)."""
        return iter(self._entries)

    def entries(self) -> tuple[tuple[PathComponent, Node], ...]:
        return self._entries

    def get(self, name: bytes) -> Node | None:
        i = bisect.bisect_left(self._names, name)
        if i < len(self._names) and self._names[i] == name:
            return self._entries[i][1]
        return None

    def directories(self) -> Iterator[tuple[PathComponent, DirectoryNode]]:
        for name, node in self._entries:
            if isinstance(node, DirectoryNode):
                yield name, node

    def files(self) -> Iterator[tuple[PathComponent, FileNode]]:
        for name, node in self._entries:
            if isinstance(node, FileNode):
                yield name, node

    def symlinks(self) -> Iterator[tuple[PathComponent, SymlinkNode]]:
        for name, node in self._entries:
            if isinstance(node, SymlinkNode):
                yield name, node

    def size(self) -> int:
        """The tvix size (see `tvix_size`)."""
        return self._size

    def encode(self) -> bytes:
        """Canonical protobuf encoding (what the digest is computed over)."""
        if self._encoded is None:
            self._encoded = encode_directory(self._entries)
        return self._encoded

    def digest(self) -> B3Digest:
        if self._digest is None:
            self._digest = B3Digest(blake3.blake3(self.encode()).digest())
        return self._digest

    def as_node(self) -> DirectoryNode:
        """The DirectoryNode a parent uses to point at this directory."""
        return DirectoryNode(self.digest(), self._size)

    # --- deriving ---

    def with_entry(self, name: bytes, node: Node) -> Directory:
        """A new Directory with one more entry (DuplicateName if the name exists)."""
        return Directory((*self._entries, (name, node)))

    # --- identity ---

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Directory):
            return NotImplemented
        return self._entries == other._entries

    def __hash__(self) -> int:
        return hash(self.digest())

    def __repr__(self) -> str:
        return f"Directory({self.digest()}, {len(self._entries)} entries)"


_entry_name = itemgetter(0)
