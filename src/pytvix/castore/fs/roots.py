"""What the file system shows at its root: named root nodes from somewhere (for tvix-store,
store paths from the PathInfoService)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from pytvix.castore.nodes import Node


class RootNodes(Protocol):
    """Named root nodes. Names are single path components; lookups may fail with a
    StorageError (the file system then answers EIO)."""

    async def get(self, name: bytes) -> Node | None:
        """The root node called `name`, or None."""
        ...

    def list(self) -> AsyncIterator[tuple[bytes, Node]]:
        """All root nodes (only used when listing the root is enabled)."""
        ...

    def describe(self, name: bytes) -> str:
        """How to name a root in log messages (for tvix-store: the store path)."""
        ...
