"""The use guard shared by the NAR reader and writer: one operation at a time, by the node whose
turn it is, and none after a failure."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

from pytvix.store.nar.errors import NarUsageError

_N = TypeVar("_N")


class UseGuard(Generic[_N]):
    """Serialises the operations of one NAR reader or writer on its nodes.

    `active` is the node whose turn it is (None: the reader or writer itself). An operation
    calls `enter(node)`, which raises `NarUsageError` while another operation runs, after one
    failed, once `close()` was called, or when it is not `node`'s turn (the message then ends in
    `out_of_order(active)`); it then runs its body in `with guard:`. An exception escaping the
    body is recorded, and refuses every later operation: the stream may be left half consumed
    or half written. Exceptions raised between `enter` and the `with` leave the guard usable.
    """

    __slots__ = ("_busy", "_closed", "_failed", "_out_of_order", "_role", "active")

    def __init__(self, role: str, out_of_order: Callable[[_N | None], str], active: _N | None):
        self._role = role  # "reader" or "writer", for messages
        self._out_of_order = out_of_order
        self.active = active
        self._busy = False
        self._failed: BaseException | None = None
        self._closed = False

    def enter(self, node: _N | None) -> UseGuard[_N]:
        """Check that `node` may act now; returns the guard, to run the operation in."""
        if self._busy:
            raise NarUsageError(f"the NAR {self._role} is already in use (concurrent calls)")
        if self._failed is not None:
            raise NarUsageError(f"the NAR {self._role} failed earlier: {self._failed!r}")
        if self._closed:
            raise NarUsageError(f"the NAR {self._role} is closed")
        if self.active is not node:
            raise NarUsageError(self._out_of_order(self.active))
        return self

    def close(self) -> None:
        """Refuse every later operation."""
        self._closed = True

    def __enter__(self) -> None:
        self._busy = True

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._busy = False
        if exc is not None:
            self._failed = exc
