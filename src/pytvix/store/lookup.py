"""Resolving store path arguments: `/nix/store/<hash>-<name>[/sub/path]`, `<hash>-<name>[/...]`
or just the 32-character hash, looked up by digest, then walked inside the tree (without
following symlinks)."""

from __future__ import annotations

from dataclasses import dataclass

from pytvix.castore.directoryservice import DirectoryService
from pytvix.castore.nodes import DirectoryNode, Node
from pytvix.castore.path import PathComponent, split_path
from pytvix.nixcompat import nixbase32
from pytvix.nixcompat.store_path import (
    ENCODED_DIGEST_SIZE,
    STORE_DIR_WITH_SLASH,
    StorePath,
    StorePathError,
)
from pytvix.store.path_info import PathInfo
from pytvix.store.pathinfoservice import PathInfoService


class StorePathLookupError(Exception):
    """A store path argument is malformed or names nothing in the store."""


@dataclass(frozen=True)
class PathArg:
    digest: bytes
    name: str | None  # None when only the hash was given
    subpath: tuple[PathComponent, ...]

    @property
    def display(self) -> str:
        head = nixbase32.encode(self.digest) + (f"-{self.name}" if self.name else "")
        sub = "/".join(c.decode("utf-8", "backslashreplace") for c in self.subpath)
        return STORE_DIR_WITH_SLASH + head + (f"/{sub}" if sub else "")


def parse_path_arg(text: str) -> PathArg:
    """Parse an argument naming a store path (absolute, basename or hash) and a sub path."""
    rest = text[len(STORE_DIR_WITH_SLASH) :] if text.startswith(STORE_DIR_WITH_SLASH) else text
    head, _, sub = rest.partition("/")
    try:
        subpath = tuple(split_path(sub))
        if len(head) == ENCODED_DIGEST_SIZE:
            return PathArg(nixbase32.decode(head), None, subpath)
        store_path = StorePath.from_basename(head)
    except (StorePathError, ValueError) as e:
        raise StorePathLookupError(
            f"{text!r} is not a store path (expected /nix/store/<hash>-<name>, "
            f"<hash>-<name> or the 32-character hash): {e}"
        ) from e
    return PathArg(store_path.digest, store_path.name, subpath)


async def find_path_info(path_infos: PathInfoService, arg: PathArg) -> PathInfo:
    info = await path_infos.get(arg.digest)
    if info is None:
        raise StorePathLookupError(f"{arg.display}: no such store path in the store")
    if arg.name is not None and info.store_path.name != arg.name:
        raise StorePathLookupError(
            f"{arg.display}: no such store path (the store has {info.store_path} for that hash)"
        )
    return info


async def resolve_subpath(
    directories: DirectoryService, root: Node, subpath: tuple[PathComponent, ...], where: str
) -> Node:
    """The node at `subpath` below `root`; symlinks along the way are not followed."""
    node = root
    walked: list[str] = []
    for component in subpath:
        if not isinstance(node, DirectoryNode):
            raise StorePathLookupError(f"{where}: {'/'.join(walked) or '.'} is not a directory")
        directory = await directories.get(node.digest)
        if directory is None:
            raise StorePathLookupError(
                f"{where}: directory {node.digest} is missing from the store"
            )
        child = directory.get(component)
        walked.append(component.decode("utf-8", "backslashreplace"))
        if child is None:
            raise StorePathLookupError(f"{where}: no such file or directory")
        node = child
    return node
