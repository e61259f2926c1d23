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

    `active` is the node whose turn it is (None: the reader or writer itself, once the root
    node is complete). An operation first calls `enter(node)`, which raises `NarUsageError`
    while another operation is inside the guard, after one failed, once `close()` was called,
    or when it is not `node`'s turn (saying that NAR nodes must be `verb` in order, and
    `waiting_for(active)`).

    Every await of the operation, and everything whose failure leaves the stream half consumed
    or half written, must then run in `with guard:` (which may nest). An exception escaping it
    is recorded and refuses every later operation; exceptions raised outside it (argument
    checks) leave the guard usable.
    """

    __slots__ = ("_closed", "_depth", "_failed", "_role", "_verb", "_waiting_for", "active")

    def __init__(
        self, role: str, verb: str, waiting_for: Callable[[_N], str], active: _N | None
    ) -> None:
        self._role = role  # "reader" or "writer"
        self._verb = verb  # "consumed" or "written"
        self._waiting_for = waiting_for
        self.active = active
        self._depth = 0  # nested `with guard:` blocks being run
        self._failed: BaseException | None = None
        self._closed = False

    def enter(self, node: _N | None) -> UseGuard[_N]:
        """Check that `node` may act now; returns the guard, to run the operation in."""
        if self._depth:
            raise NarUsageError(f"the NAR {self._role} is already in use (concurrent calls)")
        if self._failed is not None:
            raise NarUsageError(f"the NAR {self._role} failed earlier: {self._failed!r}")
        if self._closed:
            raise NarUsageError(f"the NAR {self._role} is closed")
        if self.active is not node:
            raise NarUsageError(self._out_of_order())
        return self

    def _out_of_order(self) -> str:
        active = self.active
        what = "the root node is already complete" if active is None else self._waiting_for(active)
        return f"NAR nodes must be {self._verb} in order, depth first: {what}"

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Refuse every later operation."""
        self._closed = True

    def __enter__(self) -> None:
        self._depth += 1

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._depth -= 1
        if exc is not None:
            self._failed = exc
