"""Inode numbers for content-addressed nodes. Inodes are allocated sequentially from 2 (1 is
the root) and shared by identical nodes: files by blob digest and executable bit (the mode is
part of the inode, so the same bytes as an executable and as a plain file are two inodes;
upstream keys by digest alone and shows whichever mode it saw first), symlinks by target,
directories by digest. Directories start out "sparse" (digest and size only) and are populated
with their children on first use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from pytvix.castore.digests import B3Digest
from pytvix.castore.nodes import DirectoryNode, FileNode, Node, SymlinkNode

ROOT_INODE = 1

K = TypeVar("K")


@dataclass(slots=True)
class InodeData:
    node: Node
    origin: bytes  # the root this inode was first reached through (for log messages)
    children: list[tuple[bytes, int]] | None = None  # populated directories only
    parent: int = ROOT_INODE  # the directory this inode was first reached from (for "..")
    lookup: dict[bytes, int] = field(default_factory=dict)


class InodeTracker:
    def __init__(self) -> None:
        self._next = ROOT_INODE + 1
        self._data: dict[int, InodeData] = {}
        self._by_file: dict[tuple[B3Digest, bool], int] = {}
        self._by_target: dict[bytes, int] = {}
        self._by_directory: dict[B3Digest, int] = {}

    def get(self, inode: int) -> InodeData | None:
        return self._data.get(inode)

    def put(self, node: Node, origin: bytes, parent: int = ROOT_INODE) -> int:
        """The inode for `node`, allocating one the first time such a node is seen."""
        if isinstance(node, FileNode):
            return self._find_or_add(
                self._by_file, (node.digest, node.executable), node, origin, parent
            )
        if isinstance(node, SymlinkNode):
            return self._find_or_add(self._by_target, node.target, node, origin, parent)
        return self._find_or_add(self._by_directory, node.digest, node, origin, parent)

    def _find_or_add(
        self, table: dict[K, int], key: K, node: Node, origin: bytes, parent: int
    ) -> int:
        inode = table.get(key)
        if inode is None:
            inode = self._next
            self._next += 1
            table[key] = inode
            self._data[inode] = InodeData(node, origin, parent=parent)
        return inode

    def is_directory(self, inode: int) -> bool:
        data = self._data.get(inode)
        return data is not None and isinstance(data.node, DirectoryNode)

    def __len__(self) -> int:
        return len(self._data)
