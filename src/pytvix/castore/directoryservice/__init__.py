"""DirectoryService: Directory messages by digest, closures up leaves-first and down root-first.

Contract shared by every backend (checked by `pytvix.testing.contract`):
- `get(d)` returns the Directory whose digest is `d` (verified), or None.
- `put(dir)` stores one directory whose subdirectories (if any) are already stored.
- `get_recursive(root)` yields the root first, then each descendant exactly once, each only
  after a directory referencing it; nothing if the root is unknown.
- `put_multiple_start()` returns a putter: `put()` each directory leaves first, `close()`
  validates the closure (PROTOCOL.md §2.8), persists it atomically and returns the root digest.
  Nothing is persisted if validation fails.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.directoryservice.graph import ClosureError, LeavesToRootValidator
from pytvix.castore.directoryservice.traverse import breadth_first

__all__ = [
    "ClosureError",
    "ClosureStore",
    "DirectoryPutter",
    "DirectoryService",
    "EncodedClosureSource",
    "ValidatingPutter",
    "put_closure",
]


class DirectoryPutter(ABC):
    """Receives one closure, leaves first."""

    @abstractmethod
    async def put(self, directory: Directory) -> None:
        """Add the next directory; may raise ClosureError early."""

    @abstractmethod
    async def close(self) -> B3Digest:
        """Validate and persist the closure; returns the root digest."""


class DirectoryService(ABC):
    """See the module docstring for the contract."""

    @abstractmethod
    async def get(self, digest: B3Digest) -> Directory | None: ...

    async def put(self, directory: Directory) -> B3Digest:
        """Store one directory. Like a closure of one, it may not reference subdirectories
        (upload those as a closure with `put_multiple_start`)."""
        return await put_closure(self, [directory])

    @abstractmethod
    def get_recursive(self, root: B3Digest) -> AsyncIterator[Directory]: ...

    @abstractmethod
    def put_multiple_start(self) -> DirectoryPutter: ...

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources. Idempotent."""


PersistFn = Callable[[Sequence[Directory]], Awaitable[None]]


class ValidatingPutter(DirectoryPutter):
    """Validates with LeavesToRootValidator and hands the closure, in leaves-to-root order,
    to `persist` exactly once, at close. Nothing is persisted if validation fails."""

    def __init__(self, persist: PersistFn) -> None:
        self._persist = persist
        self._validator = LeavesToRootValidator()
        self._root: B3Digest | None = None

    async def put(self, directory: Directory) -> None:
        if self._root is not None:
            raise ClosureError("putter already closed")
        self._validator.add(directory)

    async def close(self) -> B3Digest:
        if self._root is None:
            closure = self._validator.finalize()
            await self._persist(closure)
            self._root = closure[-1].digest()
        return self._root


@runtime_checkable
class EncodedClosureSource(Protocol):
    """A backend that can stream a closure as verified canonical bytes (root first, each
    directory once), so a server can send them without decoding and re-encoding."""

    def get_recursive_encoded(self, root: B3Digest) -> AsyncIterator[bytes]: ...


class ClosureStore(DirectoryService):
    """Base for backends that look directories up one by one and persist whole validated
    closures: subclasses implement `get` and `persist_closure`."""

    @abstractmethod
    async def persist_closure(self, closure: Sequence[Directory]) -> None:
        """Store a validated closure (leaves to root) atomically."""

    def put_multiple_start(self) -> DirectoryPutter:
        return ValidatingPutter(self.persist_closure)

    def get_recursive(self, root: B3Digest) -> AsyncIterator[Directory]:
        return breadth_first(self.get, root)


async def put_closure(service: DirectoryService, directories: Sequence[Directory]) -> B3Digest:
    """Upload directories (leaves first) through a putter; returns the root digest."""
    putter = service.put_multiple_start()
    for directory in directories:
        await putter.put(directory)
    return await putter.close()
