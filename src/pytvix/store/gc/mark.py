"""Marking: everything the kept roots reach (their directories, and the blobs of their files),
and, for size-based retention, what each store path's closure holds."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pytvix.castore.digests import B3Digest
from pytvix.castore.directoryservice import DirectoryService
from pytvix.castore.nodes import DirectoryNode, FileNode, Node
from pytvix.castore.progress import Progress, no_progress
from pytvix.store.path_info import PathInfo


@dataclass
class LiveSet:
    directories: set[B3Digest] = field(default_factory=set)
    blobs: set[B3Digest] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.directories) + len(self.blobs)


async def mark(
    infos: Iterable[PathInfo], directories: DirectoryService, progress: Progress = no_progress
) -> LiveSet:
    """The directories and blobs the path infos reach. A closure already marked through
    another path is not walked again."""
    live = LiveSet()
    for info in infos:
        await mark_node(info.node, directories, live)
        progress("roots", 1)
    return live


async def mark_node(node: Node, directories: DirectoryService, live: LiveSet) -> None:
    if isinstance(node, FileNode):
        live.blobs.add(node.digest)
    elif isinstance(node, DirectoryNode) and node.digest not in live.directories:
        async for directory in directories.get_recursive(node.digest):
            live.directories.add(directory.digest())
            for _, file in directory.files():
                live.blobs.add(file.digest)


@dataclass
class ClosureSizes:
    """Per store path, the objects its closure holds, and each object's size."""

    objects: dict[bytes, set[bytes]] = field(default_factory=dict)
    sizes: dict[bytes, int] = field(default_factory=dict)


async def closure_sizes(infos: Iterable[PathInfo], directories: DirectoryService) -> ClosureSizes:
    out = ClosureSizes()
    for info in infos:
        held: set[bytes] = set()
        node = info.node
        if isinstance(node, FileNode):
            held.add(node.digest)
            out.sizes[node.digest] = node.size
        elif isinstance(node, DirectoryNode):
            async for directory in directories.get_recursive(node.digest):
                digest = directory.digest()
                held.add(digest)
                out.sizes[digest] = len(directory.encode())
                for _, file in directory.files():
                    held.add(file.digest)
                    out.sizes[file.digest] = file.size
        out.objects[info.store_path.digest] = held
    return out
