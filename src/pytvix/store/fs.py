"""Store paths as the roots of the FUSE file system: a root entry is looked up by parsing its
name as a store path basename and fetching the PathInfo by digest only (the name part is not
compared, as upstream)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from pytvix.castore.nodes import Node
from pytvix.nixcompat.store_path import STORE_DIR_WITH_SLASH, StorePath, StorePathError
from pytvix.store.pathinfoservice import PathInfoService


class StorePathRoots:
    def __init__(self, path_infos: PathInfoService) -> None:
        self.path_infos = path_infos

    async def get(self, name: bytes) -> Node | None:
        try:
            store_path = StorePath.from_basename(name)
        except StorePathError:
            return None
        info = await self.path_infos.get(store_path.digest)
        return None if info is None else info.node

    async def list(self) -> AsyncIterator[tuple[bytes, Node]]:
        async for info in self.path_infos.list():
            yield str(info.store_path).encode(), info.node

    def describe(self, name: bytes) -> str:
        return STORE_DIR_WITH_SLASH + name.decode("utf-8", "backslashreplace")
