"""Errors raised by the NAR reader and writer.

* `NarError` (a `ValueError`): the NAR being read is malformed; `NarTruncatedError` when it
  ends early. Both carry `offset`, the byte offset in the NAR where the problem is.
* `NarWriteError` (a `ValueError`): the writer was handed inconsistent data (contents shorter or
  longer than the declared size, an invalid or misordered name, an invalid symlink target).
  `kind` mirrors upstream's io error kind: `"unexpected_eof"` or `"invalid_input"`.
* `NarUsageError` (a `RuntimeError`): the caller broke the sequential, depth-first protocol
  (e.g. asked a directory for its next entry before finishing the previous child).
"""

from __future__ import annotations

from typing import Literal

WriteErrorKind = Literal["unexpected_eof", "invalid_input"]


class NarError(ValueError):
    """The NAR stream is malformed at byte `offset`."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(f"{message} at byte offset {offset}")
        self.offset = offset
        self.message = message


class NarTruncatedError(NarError):
    """The NAR stream ended before the archive was complete (upstream: UnexpectedEof)."""


class NarWriteError(ValueError):
    """The data given to the writer contradicts the NAR being written, at output `offset`."""

    def __init__(self, kind: WriteErrorKind, offset: int, message: str) -> None:
        super().__init__(f"{message} at byte offset {offset}")
        self.kind: WriteErrorKind = kind
        self.offset = offset
        self.message = message


class NarUsageError(RuntimeError):
    """The reader or writer was used out of order, concurrently, or after a failure."""
