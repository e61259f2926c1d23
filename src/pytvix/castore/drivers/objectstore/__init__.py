"""Object storage: keys are `/`-separated paths below a store's base, values are immutable
bytes (content-addressed: a key always names the same bytes).

Two implementations behind one interface: `LocalObjectStore` (files below a directory, written
atomically, with a durability barrier) and `RemoteObjectStore` (obstore: memory, S3, GCS,
Azure, HTTP, with timeouts and retries). Writes are atomic; readers never observe partial
objects. Methods without an `a` prefix block and are meant for worker threads; the
`a`-prefixed ones run them on the store's pool for the event loop (not obstore's own async
functions: an obstore future whose awaiting task is cancelled keeps running in a tokio thread
and, if it completes after the event loop has closed, calls into the finalizing interpreter
and aborts the process; worker threads are joined before the interpreter finalizes).

`get_cached` is the one non-blocking read: bytes the page cache holds, or NOT_CACHED when
the caller must use `get` on a worker thread instead.
"""

from __future__ import annotations

import enum
import itertools
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Final, NamedTuple
from urllib.parse import unquote, urlsplit

from pytvix.buffers import Buffer, Parts
from pytvix.castore.composition import ConfigError, ServiceUrl
from pytvix.castore.errors import StorageError
from pytvix.castore.extras import needs_extra
from pytvix.castore.workers import run_on


class _NotCached(enum.Enum):
    NOT_CACHED = "not cached"


NOT_CACHED: Final = _NotCached.NOT_CACHED
"""`get_cached`'s answer when only a blocking `get` can tell."""

_LIST_BATCH = 1000


class ObjectMeta(NamedTuple):
    key: str
    size: int
    modified: float  # seconds since the epoch


class ObjectStore(ABC):
    """An object store; `url` names it in messages, `remote` says whether calls wait on the
    network, `executor` is the pool its blocking calls run on."""

    url: str
    remote: bool
    executor: ThreadPoolExecutor

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url})"

    def _error(self, op: str, key: str, e: Exception) -> StorageError:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return StorageError(f"{op} {key} in {self.url} failed: {text}")

    # --- blocking API (worker threads) -----------------------------------------------------

    @abstractmethod
    def get(self, key: str) -> Buffer | None:
        """The object's bytes, or None if it does not exist."""

    def get_cached(self, key: str, max_size: int) -> Buffer | _NotCached | None:
        """get() without waiting: an object of at most `max_size` bytes held in memory (None
        if known absent), else NOT_CACHED."""
        return NOT_CACHED

    @abstractmethod
    def put(self, key: str, data: Buffer | Parts) -> None:
        """Atomically store an object (`data` may come in parts, written in order)."""

    def replace(self, key: str, data: Buffer | Parts) -> None:
        """Store an object even if it exists (a new modification time)."""
        self.put(key, data)

    @abstractmethod
    def copy(self, key: str, new_key: str) -> bool:
        """Copy an object within the store (replacing `new_key`; its modification time is
        now); False if `key` does not exist."""

    @abstractmethod
    def create(self, key: str, data: Buffer | Parts) -> bool:
        """Store an object unless it exists; True if it was stored by this call."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object (nothing if it is absent)."""

    @abstractmethod
    def list(self, prefix: str) -> Iterator[ObjectMeta]:
        """Every object below `prefix` (keys of a store's staging files end in `#<digits>`;
        callers skip them)."""

    @abstractmethod
    def modified(self, key: str) -> float | None:
        """When the object was last written (seconds since the epoch), or None if absent."""

    def sync(self) -> None:  # noqa: B027 - stores durable on put have nothing to do
        """Durability barrier: returns once everything written before the call is durable."""

    # --- async API (event loop) -------------------------------------------------------------

    async def aget(self, key: str) -> Buffer | None:
        return await run_on(self.executor, self.get, key)

    async def aput(self, key: str, data: Buffer) -> None:
        """As put()."""
        await run_on(self.executor, self.put, key, data)

    async def aexists(self, key: str) -> bool:
        return await run_on(self.executor, self.exists, key)

    async def alist(self, prefix: str) -> AsyncIterator[ObjectMeta]:
        listing = self.list(prefix)
        while batch := await run_on(self.executor, _take, listing, _LIST_BATCH):
            for item in batch:
                yield item


def _take(items: Iterator[ObjectMeta], n: int) -> list[ObjectMeta]:
    return list(itertools.islice(items, n))


def open_object_store(url: str, options: Mapping[str, str] | None = None) -> ObjectStore:
    """`file:///dir` (a LocalObjectStore), else an obstore URL (`memory:///`, `s3://bucket/p`,
    ...) with its options (a RemoteObjectStore)."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        from pytvix.castore.drivers.objectstore.local import LocalObjectStore  # noqa: PLC0415

        if parts.netloc not in ("", "localhost"):
            raise StorageError(f"{url}: file URLs take no host")
        if options:
            raise StorageError(f"{url}: local stores take no options ({sorted(options)})")
        return LocalObjectStore(unquote(parts.path), url)
    with needs_extra(f"object store {url}"):
        from pytvix.castore.drivers.objectstore.remote import RemoteObjectStore  # noqa: PLC0415

    return RemoteObjectStore(url, options or {})


def object_store_url(url: ServiceUrl) -> tuple[str, dict[str, str]]:
    """`objectstore+s3://b/p?k=v` -> (`s3://b/p`, {k: v})."""
    inner = url.inner_scheme
    if not inner:
        raise ConfigError(
            f"{url.raw}: expected objectstore+<scheme>://..., e.g. objectstore+file:///path"
        )
    rest = url.raw.split("://", 1)[1] if "://" in url.raw else url.raw.split(":", 1)[1]
    base = rest.split("?", 1)[0]
    options: dict[str, str] = {}
    for key, value in url.query:
        if key in options:
            raise ConfigError(f"{url.raw}: option {key!r} given more than once")
        options[key] = value
    return f"{inner}://{base}", options


def parse_bool(url: ServiceUrl, key: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise ConfigError(f"{url.raw}: {key} must be true or false, got {value!r}")
