"""Inode numbers for content-addressed nodes. Inodes are allocated sequentially from 2 (1 is
the root) and shared by identical content: files by blob digest (the first executable flag
seen wins), symlinks by target, directories by digest. Directories start out "sparse" (digest
and size only) and are populated with their children on first use."""

from __future__ import annotations

from dataclasses import dataclass, field

from pytvix.castore.digests import B3Digest
from pytvix.castore.nodes import DirectoryNode, FileNode, Node, SymlinkNode

ROOT_INODE = 1


@dataclass(slots=True)
class InodeData:
    node: Node
    origin: bytes  # the root this inode was first reached through (for log messages)
    children: list[tuple[bytes, int]] | None = None  # populated directories only
    lookup: dict[bytes, int] = field(default_factory=dict)


class InodeTracker:
    def __init__(self) -> None:
        self._next = ROOT_INODE + 1
        self._data: dict[int, InodeData] = {}
        self._by_blob: dict[B3Digest, int] = {}
        self._by_target: dict[bytes, int] = {}
        self._by_directory: dict[B3Digest, int] = {}

    def get(self, inode: int) -> InodeData | None:
        return self._data.get(inode)

    def put(self, node: Node, origin: bytes) -> int:
        """The inode for `node`, allocating one the first time its content is seen."""
        if isinstance(node, FileNode):
            table: dict[B3Digest, int] | dict[bytes, int] = self._by_blob
            key: bytes = node.digest
        elif isinstance(node, SymlinkNode):
            table, key = self._by_target, node.target
        else:
            table, key = self._by_directory, node.digest
        inode = table.get(key)  # type: ignore[call-overload]
        if inode is None:
            inode = self._next
            self._next += 1
            table[key] = inode  # type: ignore[index]
            self._data[inode] = InodeData(node, origin)
        return inode

    def is_directory(self, inode: int) -> bool:
        data = self._data.get(inode)
        return data is not None and isinstance(data.node, DirectoryNode)

    def __len__(self) -> int:
        return len(self._data)
