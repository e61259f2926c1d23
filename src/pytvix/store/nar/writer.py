"""Streaming NAR writer (PROTOCOL.md §4.1, §4.3).

`NarWriter(sink)` is the slot for the root node: call exactly one of `symlink`, `file` or
`directory` on it, fill directories depth first through `entry(name)` and `close()`, then
`close()` the writer. Tokens are gathered in a buffer and handed to the sink in pieces of at
least `buffer_size` bytes (the last piece on `close()`); file content chunks at least that
large are passed through unbuffered. The writer never mutates a buffer after handing it out.

Invalid names or targets, misordered entries and contents whose length differs from the
declared size raise `NarWriteError` (`kind` "invalid_input", or "unexpected_eof" for short
contents). Name and target errors are raised before anything is written and leave the writer
usable; a contents length mismatch leaves a partial NAR, so the writer refuses further use.
Out-of-order calls raise `NarUsageError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import cast

from pytvix.store.nar.errors import NarWriteError, WriteErrorKind
from pytvix.store.nar.guard import UseGuard
from pytvix.store.nar.io import Bytes, ByteSink, ByteSource
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
    name_problem,
    target_problem,
)

DEFAULT_BUFFER_SIZE = 64 * 1024
"""The writer hands data to its sink in pieces of at least this size (but the last)."""

CONTENT_READ_SIZE = 256 * 1024
"""What the writer asks a ByteSource for at a time, unless told otherwise."""
_MAX_SIZE = 2**64 - 1
_PAR2 = TOK_PAR + TOK_PAR

Contents = Bytes | ByteSource | AsyncIterable[Bytes]
"""File contents: the bytes themselves, a `ByteSource`, or an async iterable of chunks."""


class NarWriter:
    """Writes one NAR to `sink`; it is also the slot for the root node."""

    __slots__ = ("_buf", "_enter", "_flushed", "_guard", "_limit", "_read_size", "_root", "_sink")

    def __init__(
        self,
        sink: ByteSink,
        *,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        read_size: int = CONTENT_READ_SIZE,
    ) -> None:
        self._sink = sink
        self._limit = buffer_size
        self._read_size = read_size
        self._buf = bytearray(TOK_NAR)
        self._flushed = 0
        self._root = NarNodeWriter(self, None)
        self._guard: UseGuard[NarNodeWriter | NarDirectoryWriter] = UseGuard(
            "writer", "written", self._waiting_for, self._root
        )
        self._enter = self._guard.enter  # checks that a node (None: the writer) may write now

    @property
    def bytes_written(self) -> int:
        """NAR bytes produced so far (handed to the sink or still buffered)."""
        return self._flushed + len(self._buf)

    async def symlink(self, target: bytes) -> None:
        """Write the root node as a symlink."""
        await self._root.symlink(target)

    async def file(self, executable: bool, size: int, contents: Contents) -> None:
        """Write the root node as a regular file (see `NarNodeWriter.file`)."""
        await self._root.file(executable, size, contents)

    async def directory(self) -> NarDirectoryWriter:
        """Write the root node as a directory; fill and close the returned writer."""
        return await self._root.directory()

    async def close(self) -> None:
        """Flush everything to the sink; the root node must be complete. Idempotent."""
        if self._guard.closed:
            return
        self._enter(None)
        await self._flush()
        self._guard.close()

    # --- internals ---------------------------------------------------------------------------

    def _waiting_for(self, active: NarNodeWriter | NarDirectoryWriter) -> str:
        if active is self._root:
            return "the root node has not been written yet"
        if isinstance(active, NarDirectoryWriter):
            return "the current subdirectory must be closed first"
        return "the node of the last entry must be written first"

    def _error(self, kind: WriteErrorKind, message: str) -> NarWriteError:
        return NarWriteError(kind, self.bytes_written, message)

    async def _write(self, data: bytearray | memoryview) -> None:
        """Hand `data` to the sink, in the guard: a failed write leaves a partial NAR."""
        self._flushed += len(data)
        with self._guard:
            await self._sink.write(data)

    async def _flush(self) -> None:
        if self._buf:
            data, self._buf = self._buf, bytearray()
            await self._write(data)

    async def _maybe_flush(self) -> None:
        if len(self._buf) >= self._limit:
            await self._flush()

    async def _end_node(self, parent: NarDirectoryWriter | None) -> None:
        """Close the current node (and its entry) and hand control back to `parent`."""
        self._buf += TOK_PAR if parent is None else _PAR2
        self._guard.active = parent
        await self._maybe_flush()

    async def _data(self, chunk: Bytes) -> None:
        """Append content bytes. A chunk of at least `buffer_size` bytes tops up the buffer,
        which is flushed, and the rest goes to the sink directly: every write but the last
        stays at least `buffer_size` bytes."""
        buf = self._buf
        if len(chunk) < self._limit:
            buf += chunk
            if len(buf) >= self._limit:
                await self._flush()
            return
        view = memoryview(chunk).cast("B")
        if buf:
            top_up = max(0, self._limit - len(buf))
            buf += view[:top_up]
            view = view[top_up:]
            await self._flush()
        if len(view) >= self._limit:
            await self._write(view)
        else:
            self._buf += view

    async def _contents(self, size: int, contents: ByteSource | AsyncIterable[Bytes]) -> None:
        """Append exactly `size` content bytes read from `contents`, in the guard: a length
        mismatch (or a failing source) leaves a partial NAR."""
        with self._guard:
            if hasattr(contents, "read"):
                written = await self._from_source(size, cast(ByteSource, contents))
            else:
                written = await self._from_iterable(size, contents)
            if written < size:
                raise self._error(
                    "unexpected_eof",
                    f"unexpected EOF: file contents ended after {written} of {size} bytes",
                )

    async def _from_source(self, size: int, source: ByteSource) -> int:
        """Append up to `size` bytes from `source`, which must then be at its end; returns how
        many arrived."""
        written = 0
        while written < size:
            chunk = await source.read(min(size - written, self._read_size))
            if not chunk:
                return written
            if len(chunk) > size - written:
                raise self._too_long(size)
            await self._data(chunk)
            written += len(chunk)
        if await source.read(1):
            raise self._too_long(size)
        return written

    async def _from_iterable(self, size: int, pieces: AsyncIterable[Bytes]) -> int:
        """Append all of `pieces`, at most `size` bytes; returns how many arrived."""
        written = 0
        async for piece in pieces:
            view = memoryview(piece).cast("B")
            if len(view) > size - written:
                raise self._too_long(size)
            if view:
                await self._data(view)
                written += len(view)
        return written

    def _too_long(self, size: int) -> NarWriteError:
        return self._error(
            "invalid_input", f"reader contained more data than specified size ({size} bytes)"
        )


class NarNodeWriter:
    """The slot for one node (the root, or an entry's); write it with exactly one call."""

    __slots__ = ("_parent", "_writer")

    def __init__(self, writer: NarWriter, parent: NarDirectoryWriter | None) -> None:
        self._writer = writer
        self._parent = parent

    async def symlink(self, target: bytes) -> None:
        """Write a symlink node; `target` must be 1..=4095 bytes without NUL."""
        w = self._writer
        w._enter(self)
        problem = target_problem(target)
        if problem is not None:
            raise w._error("invalid_input", problem)
        w._buf += TOK_SYM
        w._buf += encode_string(target)
        await w._end_node(self._parent)

    async def file(self, executable: bool, size: int, contents: Contents) -> None:
        """Write a regular file node with exactly `size` bytes taken from `contents`.

        Fewer bytes raise `NarWriteError` kind "unexpected_eof"; more raise kind
        "invalid_input" ("reader contained more data than specified size"). A `ByteSource`
        is read until `size` bytes arrived and then probed for one more byte; an iterable is
        consumed to its end. Bytes-like contents are checked before anything is written."""
        w = self._writer
        w._enter(self)
        if not 0 <= size <= _MAX_SIZE:
            raise w._error("invalid_input", f"file size {size} does not fit in a u64")
        if isinstance(contents, bytes | bytearray | memoryview):
            contents = memoryview(contents).cast("B")
            if len(contents) > size:
                raise w._too_long(size)
            if len(contents) < size:
                raise w._error(
                    "unexpected_eof",
                    f"unexpected EOF: file contents are {len(contents)} of {size} bytes",
                )
        w._buf += TOK_EXE if executable else TOK_REG
        w._buf += U64.pack(size)
        if isinstance(contents, memoryview):
            await w._data(contents)
        else:
            await w._contents(size, contents)
        w._buf += ZERO_PADDING[-size & 7]
        await w._end_node(self._parent)

    async def directory(self) -> NarDirectoryWriter:
        """Write a directory node; add entries to the returned writer, then close it."""
        w = self._writer
        w._enter(self)
        w._buf += TOK_DIR
        directory = NarDirectoryWriter(w, self._parent)
        w._guard.active = directory
        return directory


class NarDirectoryWriter:
    """Adds entries to a directory node, in strictly ascending byte order of their names."""

    __slots__ = ("_parent", "_prev", "_writer")

    def __init__(self, writer: NarWriter, parent: NarDirectoryWriter | None) -> None:
        self._writer = writer
        self._parent = parent
        self._prev: bytes | None = None

    async def entry(self, name: bytes) -> NarNodeWriter:
        """Start an entry; write its node through the returned slot before the next call.
        `name` must be valid (1..=255 bytes, no NUL or '/', not '.'/'..') and sort strictly
        after the previous entry's name."""
        w = self._writer
        w._enter(self)
        problem = name_problem(name)
        if problem is not None:
            raise w._error("invalid_input", problem)
        prev = self._prev
        if prev is not None and name <= prev:
            raise w._error(
                "invalid_input",
                f"entry name {name!r} does not sort strictly after the previous {prev!r}",
            )
        self._prev = name
        w._buf += TOK_ENT
        w._buf += encode_string(name)
        w._buf += TOK_NOD
        slot = NarNodeWriter(w, self)
        w._guard.active = slot
        await w._maybe_flush()
        return slot

    async def close(self) -> None:
        """End the directory (and its entry, unless it is the root)."""
        w = self._writer
        w._enter(self)
        await w._end_node(self._parent)
