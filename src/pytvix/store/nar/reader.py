"""Streaming, strictly validating NAR reader (PROTOCOL.md §4.1-§4.2).

`NarReader(source).read_root()` returns the root node; the tree is then consumed strictly
sequentially, depth first: a `NarFile`'s contents must be read or skipped, and a
`NarDirectory`'s entries exhausted, before the parent directory is asked for its next entry.
Breaking that order, using the reader from two tasks at once, or using it after an error
raises `NarUsageError`; it never yields wrong data. Malformed input raises `NarError` (with the
byte offset of the problem), truncated input `NarTruncatedError`; which one, and the offset, do
not depend on how the source cuts the stream into reads. Only the bytes of names, symlink
targets and the requested slices of file contents are ever materialised; file contents are
streamed, so arbitrarily large files use bounded memory.

The grammar is checked exactly: the fixed token blocks of `tokens.py`, zero padding, names
(1..=255 bytes, no NUL or '/', not '.' or '..', strictly ascending), symlink targets (1..=4095
bytes, no NUL). Lengths are checked before anything of that length is buffered. Nesting is
limited to `max_depth` directories (default 2048: with one-byte names that is already longer
than PATH_MAX) so that hostile input cannot build unbounded state; the reader itself never
recurses. `finish()` rejects trailing bytes after the root node (upstream does not check).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import NoReturn, Protocol, TypeAlias, TypeVar

from pytvix.store.nar.errors import NarError, NarTruncatedError, NarUsageError
from pytvix.store.nar.guard import UseGuard
from pytvix.store.nar.io import ByteSource
from pytvix.store.nar.tokens import (
    MAX_NAME_LEN,
    MAX_TARGET_LEN,
    TOK_ENT,
    TOK_NAR,
    TOK_NOD,
    TOK_PAR,
    TOK_REG,
    U64,
    ZERO_PADDING,
    NodeKind,
    name_problem,
    target_problem,
)

DEFAULT_READ_SIZE = 256 * 1024
"""How much the reader asks its source for at a time."""

DEFAULT_MAX_DEPTH = 2048
"""Default limit on the number of nested directories (the root directory counts as 1)."""

_SKIP_SIZE = 1024 * 1024
_u64_at = U64.unpack_from

_NODE_TYPES = {kind.value: kind for kind in NodeKind}
_NODE_TYPES_WHAT = "node type 'symlink', 'regular' or 'directory'"
_ENTRY_OR_END = {TOK_ENT: False, TOK_PAR: True}
_PAR_ENT = TOK_PAR + TOK_ENT
_NOD_REG = TOK_NOD + TOK_REG
_DOTS = (b".", b"..")

_NEW, _OPEN, _DONE, _FINISHED = range(4)  # the reader's states

_T = TypeVar("_T")
_A = TypeVar("_A")


class _Short(Exception):
    """The buffer holds fewer than `need` unconsumed bytes, which parsing `what` requires."""

    def __init__(self, need: int, what: str) -> None:
        self.need = need
        self.what = what


class Hasher(Protocol):
    """A hashlib-like object; the reader feeds it every NAR byte it consumes, in order."""

    def update(self, data: bytes | memoryview, /) -> None: ...


def _show(value: bytes) -> str:
    text = value[:64].decode("utf-8", "backslashreplace").replace('"', '\\"')
    return f'"{text}"' + ("..." if len(value) > 64 else "")


@dataclass(frozen=True, slots=True)
class NarSymlink:
    """A symlink node (fully read when returned)."""

    target: bytes


class NarFile:
    """A regular file node. Stream its `size` bytes of contents with `read` (it is itself a
    `ByteSource`) or `chunks`, or discard them with `skip`. Once the last byte is consumed the
    reader checks the padding and the closing `)`; an empty file is complete on arrival."""

    __slots__ = ("_executable", "_parent", "_reader", "_remaining", "_size")

    def __init__(
        self, reader: NarReader, parent: NarDirectory | None, executable: bool, size: int
    ) -> None:
        self._reader = reader
        self._parent = parent
        self._executable = executable
        self._size = size
        self._remaining = size

    @property
    def executable(self) -> bool:
        return self._executable

    @property
    def size(self) -> int:
        """The declared size of the contents, in bytes."""
        return self._size

    @property
    def remaining(self) -> int:
        """Content bytes not yet consumed."""
        return self._remaining

    def __repr__(self) -> str:
        return f"NarFile(executable={self._executable}, size={self._size})"

    async def read(self, n: int, /) -> bytes:
        """Return the next 1..=n bytes of the contents, or b"" once all were consumed."""
        if n < 1:
            raise ValueError(f"read size must be positive, got {n}")
        if not self._remaining:
            return b""
        reader = self._reader
        with reader._enter(self):
            return reader._take_contents(self, n) or await reader._read_contents(self, n)

    async def chunks(self, size: int = DEFAULT_READ_SIZE) -> AsyncIterator[bytes]:
        """Yield the remaining contents in pieces of at most `size` bytes."""
        while data := await self.read(size):
            yield data

    async def skip(self) -> None:
        """Consume (and still hash and validate) the remaining contents without returning them."""
        if not self._remaining:
            return
        reader = self._reader
        with reader._enter(self):
            await reader._skip_contents(self)


class NarDirectory:
    """A directory node; `next_entry()` (or `async for`) yields `(name, node)` in name order."""

    __slots__ = ("_done", "_parent", "_prev", "_reader")

    def __init__(self, reader: NarReader, parent: NarDirectory | None) -> None:
        self._reader = reader
        self._parent = parent
        self._prev: bytes | None = None
        self._done = False

    def __repr__(self) -> str:
        return f"NarDirectory(done={self._done})"

    def __aiter__(self) -> NarDirectory:
        return self

    async def __anext__(self) -> tuple[bytes, NarNode]:
        entry = await self.next_entry()
        if entry is None:
            raise StopAsyncIteration
        return entry

    async def next_entry(self) -> tuple[bytes, NarNode] | None:
        """The next entry, or None once the directory's closing `)` was read. The previous
        entry's node must be complete (file contents consumed, subdirectory exhausted)."""
        if self._done:
            return None
        reader = self._reader
        with reader._enter(self):
            try:
                return reader._entry(self)
            except _Short:  # the buffer ends inside the entry
                return await reader._parse(reader._entry, self)


NarNode: TypeAlias = NarSymlink | NarFile | NarDirectory


def _waiting_for(active: NarFile | NarDirectory) -> str:
    if isinstance(active, NarFile):
        return "the contents of the current file must be read or skipped first"
    return "the entries of the current subdirectory must be read first"


class NarReader:
    """Parses one NAR from `source`. `hasher` (e.g. `hashlib.sha256()`) receives exactly the
    NAR's bytes; it is up to date once the root node is complete. `bytes_read` counts the NAR
    bytes consumed so far (the reader may buffer up to `read_size` bytes more from `source`)."""

    __slots__ = (
        "_buf",
        "_depth",
        "_enter",
        "_guard",
        "_hashed",
        "_hasher",
        "_max_depth",
        "_off",
        "_pos",
        "_read_size",
        "_source",
        "_state",
    )

    def __init__(
        self,
        source: ByteSource,
        *,
        hasher: Hasher | None = None,
        read_size: int = DEFAULT_READ_SIZE,
        max_depth: int = DEFAULT_MAX_DEPTH,
    ) -> None:
        if read_size < 1 or max_depth < 1:
            raise ValueError("read_size and max_depth must be positive")
        self._source = source
        self._hasher = hasher
        self._read_size = read_size
        self._max_depth = max_depth
        self._buf = b""  # bytes read from source; _buf[:_pos] is consumed
        self._pos = 0
        self._off = 0  # NAR offset of _buf[0]
        self._hashed = 0  # _buf[:_hashed] was fed to the hasher
        self._depth = 0  # open directories
        self._state = _NEW
        self._guard: UseGuard[NarFile | NarDirectory] = UseGuard(
            "reader", "consumed", _waiting_for, None
        )
        self._enter = self._guard.enter  # checks that a node (None: the reader) may act now

    @property
    def bytes_read(self) -> int:
        """NAR bytes consumed so far (the NAR size, once the root node is complete)."""
        return self._off + self._pos

    async def read_root(self) -> NarNode:
        """Check the archive magic and return the root node (call once)."""
        if self._state != _NEW:
            raise NarUsageError("read_root() may only be called once")
        guard = self._enter(None)
        self._state = _OPEN
        with guard:
            return await self._parse(self._root, None)

    async def finish(self, *, allow_trailing: bool = False) -> None:
        """Call after the root node is complete: checks that the stream ends there (unless
        `allow_trailing`; then bytes the reader buffered beyond the NAR are dropped)."""
        if self._state != _DONE:
            raise NarUsageError("finish() needs a completely read root node, called once")
        with self._enter(None):
            self._flush_hash()
            if not allow_trailing and (self._pos < len(self._buf) or await self._source.read(1)):
                raise NarError(self.bytes_read, "trailing data after the end of the NAR")
            self._state = _FINISHED

    # --- state --------------------------------------------------------------------------------

    def _node_done(self, parent: NarDirectory | None) -> None:
        """A node is complete: control returns to `parent` (or the root is done)."""
        self._guard.active = parent
        if parent is None:
            self._state = _DONE
            self._flush_hash()

    # --- the buffer --------------------------------------------------------------------------

    def _flush_hash(self) -> None:
        if self._hasher is not None and self._hashed < self._pos:
            self._hasher.update(memoryview(self._buf)[self._hashed : self._pos])
        self._hashed = self._pos

    async def _fill(self, n: int) -> bool:
        """Make at least `n` unconsumed bytes available in the buffer. False if the stream
        ends first; the buffer then holds everything that arrived."""
        self._flush_hash()
        buf, pos = self._buf, self._pos
        have = len(buf) - pos
        parts: list[bytes] = [buf[pos:]] if have else []
        self._off += pos
        self._buf = b""
        self._pos = self._hashed = 0
        while have < n:
            data = await self._source.read(max(self._read_size, n - have))
            if not data:
                self._buf = b"".join(parts)
                return False
            parts.append(data)
            have += len(data)
        if len(parts) == 1 and type(parts[0]) is bytes:
            self._buf = parts[0]
        else:
            self._buf = b"".join(parts)
        return True

    def _truncated(self, what: str) -> NarTruncatedError:
        """The error for a stream that ended in `what`, after the bytes in the buffer."""
        return NarTruncatedError(self._off + len(self._buf), f"unexpected end of NAR in {what}")

    async def _parse(self, parse: Callable[[_A], _T], arg: _A) -> _T:
        """`parse(arg)`, refilling the buffer while it runs short. The stream is truncated only
        if `parse` still runs short on everything the stream delivered, so the verdict on some
        input does not depend on how the stream is cut into reads."""
        ended = False
        while True:
            try:
                return parse(arg)
            except _Short as short:
                if ended:
                    raise self._truncated(short.what) from None
                ended = not await self._fill(short.need)

    # --- file contents -----------------------------------------------------------------------

    def _take_contents(self, file: NarFile, n: int) -> bytes:
        """The next min(n, remaining) content bytes of `file` (the active node, with content
        left), and then the file's end if they are its last, if the buffer holds all that;
        else b"" (nothing taken)."""
        remaining = file._remaining
        if n < remaining:
            need = n
        else:
            n = remaining
            need = remaining + (-file._size & 7) + len(TOK_PAR)
        pos = self._pos
        if len(self._buf) - pos < need:
            return b""
        data = self._buf[pos : pos + n]
        self._pos = pos + n
        file._remaining = remaining - n
        if n == remaining:
            self._end_file(file)  # not short: the whole end is buffered
        return data

    async def _read_contents(self, file: NarFile, n: int) -> bytes:
        """The next 1..=n content bytes of `file` (the active node, with content left), read
        from the source if the buffer holds none; after the last one, the file's end too."""
        want = min(n, file._remaining)
        if self._pos < len(self._buf):
            data = self._take(want)
        elif want >= self._read_size:
            data = await self._read_direct(want)
        elif await self._fill(1):
            data = self._take(want)
        else:
            raise self._truncated("file contents")
        file._remaining -= len(data)
        if not file._remaining:
            await self._parse(self._end_file, file)
        return data

    def _take(self, n: int) -> bytes:
        """Consume up to `n` buffered bytes."""
        pos = self._pos
        data = self._buf[pos : pos + n]
        self._pos = pos + len(data)
        return data

    async def _skip_contents(self, file: NarFile) -> None:
        """Consume the rest of `file`'s contents (hashed, not returned) and its end."""
        while file._remaining:
            avail = len(self._buf) - self._pos
            if avail:
                k = min(avail, file._remaining)
                self._pos += k
                file._remaining -= k
            else:
                data = await self._read_direct(min(file._remaining, _SKIP_SIZE))
                file._remaining -= len(data)
        await self._parse(self._end_file, file)

    async def _read_direct(self, want: int) -> bytes:
        """Read up to `want` content bytes straight from the source (the buffer is empty)."""
        self._flush_hash()
        self._off += len(self._buf)
        self._buf = b""
        self._pos = self._hashed = 0
        data = await self._source.read(want)
        if not data:
            raise self._truncated("file contents")
        if len(data) > want:  # a source returning more than asked for: buffer the rest
            self._buf = bytes(data[want:])
            data = data[:want]
        if type(data) is not bytes:
            data = bytes(data)
        if self._hasher is not None:
            self._hasher.update(data)
        self._off += len(data)
        return data

    # --- the grammar -------------------------------------------------------------------------
    # Parsing is synchronous on the buffer: a parser works on a local position, raises _Short
    # when the buffer ends too early (`_parse` fills the buffer and retries from the last
    # committed position) and commits (`self._pos`, node state) only once it succeeded.

    def _token(self, buf: bytes, pos: int, token: bytes, what: str) -> int:
        """Position after `token`, expected at `pos`."""
        if buf.startswith(token, pos):
            return pos + len(token)
        return self._tokens(buf, pos, {token: None}, what)[1]

    def _tokens(self, buf: bytes, pos: int, choices: dict[bytes, _T], what: str) -> tuple[_T, int]:
        """The value of the one of the `choices` tokens at `pos`, and the position after it."""
        for token, value in choices.items():
            if buf.startswith(token, pos):
                return value, pos + len(token)
        head = buf[pos : pos + 64]
        need = min(
            (len(t) for t in choices if len(head) < len(t) and t.startswith(head)), default=0
        )
        if need:
            raise _Short(pos + need - self._pos, what)
        raise NarError(self._off + pos, f"expected {what}, found {self._describe(pos)}")

    def _describe(self, pos: int) -> str:
        buf = self._buf
        avail = len(buf) - pos
        if avail >= 8:
            n = _u64_at(buf, pos)[0]
            if n <= 64 and avail >= 8 + n:
                return f"string {_show(buf[pos + 8 : pos + 8 + n])}"
            if n > 64:
                return f"length {n}"
        return f"bytes {buf[pos : pos + 16].hex()}"

    def _string(self, buf: bytes, pos: int, limit: int, what: str) -> tuple[bytes, int]:
        """A string of at most `limit` bytes at `pos` (checked before waiting for its bytes),
        and the position after it."""
        if len(buf) - pos < 8:
            raise _Short(pos + 8 - self._pos, what)
        n = _u64_at(buf, pos)[0]
        if n > limit:
            raise NarError(self._off + pos, f"{what} is {n} bytes long (at most {limit} allowed)")
        start = pos + 8
        end = start + ((n + 7) & ~7)
        if len(buf) < end:
            raise _Short(end - self._pos, what)
        if end != start + n and buf[start + n : end] != ZERO_PADDING[end - start - n]:
            self._bad_padding(buf, start + n, end, what)
        return buf[start : start + n], end

    def _bad_padding(self, buf: bytes, start: int, end: int, what: str) -> NoReturn:
        pad = buf[start:end]
        bad = next(i for i, b in enumerate(pad) if b)
        raise NarError(
            self._off + start + bad, f"non-zero padding byte 0x{pad[bad]:02x} after {what}"
        )

    def _root(self, parent: None) -> NarNode:
        """Parse the archive magic and the root node."""
        pos = self._token(self._buf, self._pos, TOK_NAR, "NAR magic 'nix-archive-1' '(' 'type'")
        return self._node(self._buf, pos, parent)

    def _entry(self, directory: NarDirectory) -> tuple[bytes, NarNode] | None:
        """Parse the next entry of `directory` (the active node), or its end."""
        buf, pos = self._buf, self._pos
        prev = directory._prev
        if prev is not None and buf.startswith(_PAR_ENT, pos):  # the common case, at once
            pos += len(_PAR_ENT)
        else:
            pos = self._entry_start(directory, buf, pos)
            if pos < 0:
                return None
        at = pos
        name, pos = self._string(buf, pos, MAX_NAME_LEN, "entry name")
        if not name or b"/" in name or b"\0" in name or name in _DOTS:
            raise NarError(self._off + at, name_problem(name) or "invalid name")
        if prev is not None and name <= prev:
            self._misordered(at, name, prev)
        if buf.startswith(_NOD_REG, pos):  # the common case, at once
            node: NarNode = self._file(buf, pos + len(_NOD_REG), directory, False)
        else:
            pos = self._token(buf, pos, TOK_NOD, "'node' '(' 'type'")
            node = self._node(buf, pos, directory)
        directory._prev = name
        return name, node

    def _entry_start(self, directory: NarDirectory, buf: bytes, pos: int) -> int:
        """The position of the next entry's name, or -1 if `directory` ended there."""
        if directory._prev is not None:
            pos = self._token(buf, pos, TOK_PAR, "')' closing the previous entry")
        is_end, pos = self._tokens(buf, pos, _ENTRY_OR_END, "'entry' or ')'")
        if not is_end:
            return pos
        self._pos = pos
        directory._done = True
        self._depth -= 1
        self._node_done(directory._parent)
        return -1

    def _misordered(self, at: int, name: bytes, prev: bytes) -> NoReturn:
        """Raise the error for entry name `name` (at `at`), not sorted after `prev`."""
        if name == prev:
            raise NarError(self._off + at, f"duplicate entry name {_show(name)}")
        raise NarError(
            self._off + at, f"entry name {_show(name)} is not sorted after {_show(prev)}"
        )

    def _node(self, buf: bytes, pos: int, parent: NarDirectory | None) -> NarNode:
        """Parse a node from its type on, then commit everything up to it."""
        kind, body = self._tokens(buf, pos, _NODE_TYPES, _NODE_TYPES_WHAT)
        if kind is NodeKind.DIRECTORY:
            return self._directory(pos, body, parent)
        if kind is NodeKind.SYMLINK:
            return self._symlink(buf, body, parent)
        return self._file(buf, body, parent, kind is NodeKind.EXECUTABLE)

    def _symlink(self, buf: bytes, pos: int, parent: NarDirectory | None) -> NarSymlink:
        """Parse a symlink node from its target on."""
        target, end = self._string(buf, pos, MAX_TARGET_LEN, "symlink target")
        problem = target_problem(target)
        if problem is not None:
            raise NarError(self._off + pos, problem)
        self._pos = self._token(buf, end, TOK_PAR, "')' closing the symlink node")
        self._node_done(parent)
        return NarSymlink(target)

    def _directory(self, at: int, pos: int, parent: NarDirectory | None) -> NarDirectory:
        """Open a directory node whose entries start at `pos` (its type is at `at`)."""
        if self._depth >= self._max_depth:
            raise NarError(
                self._off + at, f"directories nested more than {self._max_depth} levels deep"
            )
        self._pos = pos
        self._depth += 1
        directory = NarDirectory(self, parent)
        self._guard.active = directory
        return directory

    def _file(self, buf: bytes, pos: int, parent: NarDirectory | None, executable: bool) -> NarFile:
        """Parse a file node from its size on; a non-empty one becomes the active node."""
        if len(buf) - pos < 8:
            raise _Short(pos + 8 - self._pos, "file size")
        size = _u64_at(buf, pos)[0]
        file = NarFile(self, parent, executable, size)
        if size:
            self._pos = pos + 8
            self._guard.active = file
        else:
            self._pos = self._token(buf, pos + 8, TOK_PAR, "')' closing the file node")
            self._node_done(parent)
        return file

    def _end_file(self, file: NarFile) -> None:
        """After a file's last content byte: check the padding and the closing `)`."""
        buf, pos = self._buf, self._pos
        end = pos + (-file._size & 7)
        if len(buf) < end:
            raise _Short(end - pos, "file contents padding")
        if end != pos and buf[pos:end] != ZERO_PADDING[end - pos]:
            self._bad_padding(buf, pos, end, "file contents")
        if buf.startswith(TOK_PAR, end):
            self._pos = end + len(TOK_PAR)
        else:
            self._pos = self._token(buf, end, TOK_PAR, "')' closing the file node")
        parent = file._parent
        if parent is None:
            self._node_done(None)
        else:  # what _node_done does, inline on this hot path
            self._guard.active = parent
