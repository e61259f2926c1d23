"""Hashing the NAR of a file tree while it is imported, without rendering it afterwards.

`NarHasher` is an ingest observer: it receives the tree in NAR order (events plus file
contents) and feeds exactly the bytes `nix-store --dump` would produce into sha256, counting
them. Each file is therefore read once for both storing and hashing.
"""

from __future__ import annotations

import hashlib

from pytvix.castore.ingest.walk import DirEnd, DirStart, Event, File, Symlink
from pytvix.store.nar.tokens import (
    TOK_DIR,
    TOK_ENT,
    TOK_EXE,
    TOK_NAR,
    TOK_NOD,
    TOK_PAR,
    TOK_REG,
    TOK_SYM,
    U64,
    ZERO_PADDING,
    encode_string,
)


class NarHasher:
    """sha256 and size of the NAR of the observed tree (see the module docstring)."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.size = 0
        self._depth = 0  # open directories
        self._remaining = 0  # contents still expected for the current file
        self._file_padding = 0
        self._started = False

    def _emit(self, data: bytes) -> None:
        self._sha.update(data)
        self.size += len(data)

    def event(self, event: Event) -> None:
        if self._remaining:
            raise ValueError("a new entry started before the previous file's contents ended")
        if isinstance(event, DirEnd):
            self._depth -= 1
            self._close_node()
            return
        if not self._started:
            self._started = True
            self._emit(TOK_NAR)
        else:
            self._emit(TOK_ENT + encode_string(event.name) + TOK_NOD)
        if isinstance(event, DirStart):
            self._emit(TOK_DIR)
            self._depth += 1
        elif isinstance(event, Symlink):
            self._emit(TOK_SYM + encode_string(event.target))
            self._close_node()
        elif isinstance(event, File):
            self._emit((TOK_EXE if event.executable else TOK_REG) + U64.pack(event.size))
            self._remaining = event.size
            self._file_padding = -event.size & 7
            if not event.size:
                self._end_file()

    def data(self, data: bytes) -> None:
        if len(data) > self._remaining:
            raise ValueError("more file contents than the file's size")
        if data:
            self._emit(data)
            self._remaining -= len(data)
            if not self._remaining:
                self._end_file()

    def _end_file(self) -> None:
        self._emit(ZERO_PADDING[self._file_padding])
        self._close_node()

    def _close_node(self) -> None:
        """`)` of the node, and of its entry unless it is the root."""
        self._emit(TOK_PAR + TOK_PAR if self._depth else TOK_PAR)

    def finish(self) -> tuple[int, bytes]:
        """(nar_size, nar_sha256) once the whole tree was observed."""
        if not self._started or self._depth or self._remaining:
            raise ValueError("the observed tree is incomplete")
        return self.size, self._sha.digest()
