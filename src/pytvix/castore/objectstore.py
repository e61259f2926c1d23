"""Object storage through obstore (local files, memory, S3, GCS, Azure, HTTP), with one error
type and a durability barrier for local files.

Keys are `/`-separated paths below the store's base and content-addressed: a key always names
the same bytes. Writes are atomic (obstore writes a staging file and renames it, or uses a
single PUT; objects over 64 MiB a multipart upload, completed atomically); readers never
observe partial objects. Methods without an `a` prefix block and are meant for worker threads
(obstore releases the GIL while it waits); the `a`-prefixed ones are for the event loop.

Remote stores (S3, GCS, Azure, HTTP) get explicit timeouts and retries with exponential
backoff and jitter (DEFAULT_RETRY) for transient errors (5xx answers, dropped connections,
timeouts), all overridable as URL query options (`max_retries`, `retry_timeout`,
`init_backoff`, `max_backoff`, `backoff_base`, `timeout`, `connect_timeout`, ...). Their
writes are conditional creates (`If-None-Match: *`): an object that is already there has the
same bytes, so a concurrent writer or a retried PUT whose first attempt landed is not an
error. S3 payloads are unsigned by default (DEFAULT_S3).
"""

from __future__ import annotations

import errno
import itertools
import re
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import obstore
from obstore.exceptions import AlreadyExistsError, BaseError, NotFoundError, NotSupportedError
from obstore.store import LocalStore, MemoryStore, from_url
from obstore.store import ObjectStore as _ObstoreStore

from pytvix.castore import local_files
from pytvix.castore.errors import StorageError
from pytvix.castore.local_files import LocalFiles
from pytvix.castore.workers import io_pool, pool, run_on

Buffer = bytes | bytearray | memoryview | obstore.Bytes
Parts = Sequence[Buffer]  # an object's bytes in pieces, in order
_BUFFER_TYPES = (bytes, bytearray, memoryview, obstore.Bytes)
# Objects above this size go up as multipart uploads (parts of MULTIPART_PART_SIZE, up to
# MULTIPART_CONCURRENCY in flight); those cannot be conditional, which is harmless for
# content-addressed keys.
MULTIPART_THRESHOLD = 64 << 20
MULTIPART_PART_SIZE = 16 << 20
MULTIPART_CONCURRENCY = 8

# Defaults for stores reached over the network; URL query options override each. obstore's
# backoff is "decorrelated jitter": each wait is random between init_backoff and base times
# the previous one (capped at max_backoff), so retries span at least max_retries *
# init_backoff (3 s here: a restarting server is waited for) and typically far more, up to
# retry_timeout.
DEFAULT_RETRY = {
    "max_retries": "15",
    "init_backoff": "200ms",
    "max_backoff": "15s",
    "backoff_base": "3",
    "retry_timeout": "60s",  # no retry starts later than this after the first attempt
}
DEFAULT_CLIENT = {
    "connect_timeout": "5s",
    "timeout": "300s",  # a whole request, body included (a 64 MiB PUT on a slow link)
}
# S3 request bodies are not hashed into the signature (as AWS's own tools do over HTTPS):
# hashing costs both ends CPU (about 15% of upload throughput against radosgw) and buys
# little, since chunks and closures are verified against their digests when read back, and
# responses are never signed anyway. `aws_unsigned_payload=false` restores signed payloads.
DEFAULT_S3 = {"aws_unsigned_payload": "true"}


def _require_http_opt_in(url: str, scheme: str, options: Mapping[str, str]) -> None:
    """obstore refuses plain-HTTP endpoints unless asked; say so before it fails per request."""
    endpoint = next(
        (v for k, v in options.items() if _option_name(k) in ("endpoint", "endpoint_url")), ""
    )
    plain = scheme == "http" or endpoint.startswith("http://")
    allowed = any(
        _CLIENT_BOOLS.get(k.lower()) == "allow_http" and v.lower() in TRUE_WORDS
        for k, v in options.items()
    )
    if plain and not allowed:
        raise StorageError(
            f"{url}: plain HTTP is refused unless allowed: add ?allow_http=true to the URL "
            "(unencrypted: only for a trusted network or a local test server)"
        )


class ObjectStore:
    """An obstore store plus the URL it came from (for messages)."""

    def __init__(self, url: str, options: Mapping[str, str] | None = None) -> None:
        self.url = url
        options = dict(options or {})
        parts = urlsplit(url)
        self.local: LocalFiles | None = None  # local stores: their files, handled directly
        # conditional create on every store but local files; off once a store refuses it
        self._create_mode = parts.scheme != "file"
        try:
            if parts.scheme == "memory":
                self._store: _ObstoreStore = MemoryStore()
            elif parts.scheme == "file":
                if parts.netloc not in ("", "localhost"):
                    raise StorageError(f"{url}: file URLs take no host")
                if options:
                    raise StorageError(f"{url}: local stores take no options ({sorted(options)})")
                root = Path(unquote(parts.path))
                self._mkdir(root)
                self._store = LocalStore(root)
                self.local = LocalFiles(str(root))
            else:
                _require_http_opt_in(url, parts.scheme, options)
                defaults = {**DEFAULT_RETRY, **DEFAULT_CLIENT}
                if parts.scheme in ("s3", "s3a"):
                    defaults.update(DEFAULT_S3)
                given = {_option_name(key) for key in options}
                defaults = {k: v for k, v in defaults.items() if _option_name(k) not in given}
                self._store = from_url(url, **_typed_options({**defaults, **options}))
        except BaseError as e:
            raise StorageError(f"cannot open object store {url}: {e}") from e
        self.remote = parts.scheme not in ("memory", "file")
        # where blocking calls to this store run: remote stores wait on the network
        self.executor = io_pool() if self.remote else pool()

    def _mkdir(self, path: Path) -> None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create {path}: {e.strerror}") from e

    def __repr__(self) -> str:
        return f"ObjectStore({self.url})"

    def _error(self, op: str, key: str, e: Exception) -> StorageError:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return StorageError(f"{op} {key} in {self.url} failed: {text}")

    # --- blocking API (worker threads) -----------------------------------------------------

    def get(self, key: str) -> Buffer | None:
        """The object's bytes, or None if it does not exist."""
        if self.local is not None:
            try:
                return self.local.read(key)
            except OSError as e:
                raise self._error("get", key, e) from e
        try:
            return obstore.get(self._store, key).bytes()
        except (NotFoundError, FileNotFoundError):
            return None
        except (BaseError, OSError) as e:
            raise self._error("get", key, e) from e

    def get_cached(self, key: str, max_size: int) -> Buffer | None:
        """get() without waiting: local objects of at most `max_size` bytes that are in the
        page cache, found through the kernel's lookup cache (None if known absent). Raises
        BlockingIOError otherwise (always for remote stores): then get() them in a worker
        thread."""
        if self.local is None:
            raise BlockingIOError(errno.EAGAIN, "remote object")
        try:
            return self.local.read_cached(key, max_size)
        except BlockingIOError:
            raise
        except OSError as e:
            raise self._error("get", key, e) from e

    def put(self, key: str, data: Buffer | Parts) -> None:
        """Atomically store an object (`data` may come in parts, written in order): a
        conditional create where the store supports it (an object already there has the
        same bytes), else create or replace."""
        if self.local is not None:
            try:
                # obstore.Bytes are buffers too, all that the file writes need
                self.local.write(key, cast(local_files.Parts, as_parts(data)))
            except OSError as e:
                raise self._error("put", key, e) from e
            return
        data = joined(data)
        if self._put(key, data, conditional=self._create_mode) is None:
            self._put(key, data, conditional=False)

    def create(self, key: str, data: Buffer | Parts) -> bool:
        """Store an object unless it exists; True if it was stored (False too if an earlier,
        retried attempt of this call landed). One request where the store supports
        conditional creates (no HEAD first, but the bytes travel even if the object exists);
        elsewhere exists() then put()."""
        if self._create_mode:
            data = joined(data)
            if len(data) <= MULTIPART_THRESHOLD:
                created = self._put(key, data, conditional=True)
                if created is not None:
                    return created
        if self.exists(key):
            return False
        self.put(key, data)
        return True

    def _put(self, key: str, data: Buffer, *, conditional: bool) -> bool | None:
        """One write, create-only if `conditional` (never for multipart uploads). True:
        stored; False: the object was there; None: the store refuses conditional creates
        (nothing written, and they stay off for this store)."""
        multipart = len(data) > MULTIPART_THRESHOLD
        conditional = conditional and not multipart
        try:
            obstore.put(self._store, key, data, **_put_options(conditional, multipart))
        except AlreadyExistsError:
            return False
        except (NotSupportedError, NotImplementedError) as e:
            if not conditional:
                raise self._error("put", key, e) from e
            self._create_mode = False
            return None
        except (BaseError, OSError) as e:
            raise self._error("put", key, e) from e
        return True

    def exists(self, key: str) -> bool:
        if self.local is not None:  # a stat, without a trip through obstore's runtime
            return self.local.exists(key)
        try:
            obstore.head(self._store, key)
        except (NotFoundError, FileNotFoundError):
            return False
        except (BaseError, OSError) as e:
            raise self._error("head", key, e) from e
        return True

    def delete(self, key: str) -> None:
        try:
            obstore.delete(self._store, key)
        except (NotFoundError, FileNotFoundError):
            pass
        except (BaseError, OSError) as e:
            raise self._error("delete", key, e) from e

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(key, size) of every object below `prefix`."""
        try:
            for batch in obstore.list(self._store, prefix):
                for meta in batch:
                    yield str(meta["path"]), int(meta["size"])
        except (BaseError, OSError) as e:
            raise self._error("list", prefix, e) from e

    def sync(self) -> None:
        """Durability barrier: returns once everything written before the call is on disk.
        For local stores this is a syncfs(); concurrent callers share one (group commit).
        Object stores reached over the network are durable on PUT already."""
        if self.local is not None:
            try:
                self.local.sync()
            except OSError as e:
                raise StorageError(f"syncfs of {self.url} failed: {e.strerror or e}") from e

    # --- async API (event loop) -------------------------------------------------------------
    # These run the blocking methods on the shared worker pool rather than using obstore's
    # own *_async functions: an obstore future whose awaiting task is cancelled keeps running
    # in a tokio thread and, if it completes after the event loop has closed (a command
    # failing while other reads are in flight), calls into the finalizing interpreter and
    # aborts the process. Worker threads are joined before the interpreter finalizes.

    async def aget(self, key: str) -> Buffer | None:
        return await run_on(self.executor, self.get, key)

    async def aput(self, key: str, data: Buffer) -> None:
        """As put()."""
        await run_on(self.executor, self.put, key, data)

    async def aexists(self, key: str) -> bool:
        return await run_on(self.executor, self.exists, key)

    async def alist(self, prefix: str) -> AsyncIterator[tuple[str, int]]:
        listing = self.list(prefix)
        while batch := await run_on(self.executor, _take, listing, _LIST_BATCH):
            for item in batch:
                yield item


_LIST_BATCH = 1000


def _take(items: Iterator[tuple[str, int]], n: int) -> list[tuple[str, int]]:
    return list(itertools.islice(items, n))


TRUE_WORDS = ("1", "true", "yes")
_CLIENT_BOOLS = {
    "allow_http": "allow_http",
    "aws_allow_http": "allow_http",
    "allow_invalid_certificates": "allow_invalid_certificates",
    "http1_only": "http1_only",
    "http2_only": "http2_only",
    "randomize_addresses": "randomize_addresses",
}
_CLIENT_STRINGS = {
    "timeout",
    "connect_timeout",
    "read_timeout",
    "pool_idle_timeout",
    "pool_max_idle_per_host",
    "http2_keep_alive_interval",
    "http2_keep_alive_timeout",
    "http2_keep_alive_while_idle",
    "proxy_url",
    "proxy_ca_certificate",
    "proxy_excludes",
    "user_agent",
}
_BACKOFF = {"init_backoff", "max_backoff", "backoff_base"}
_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?)\s*(ms|s|sec|m|min|h)?\s*")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, None: 1}


def _duration(key: str, value: str) -> timedelta:
    """`250ms`, `5s`, `2min`, `1h`; a bare number is seconds."""
    match = _DURATION.fullmatch(value)
    if match is None:
        raise StorageError(f"object store option {key}: not a duration: {value!r}")
    return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])


def _put_options(conditional: bool, multipart: bool) -> dict[str, Any]:
    return {
        "mode": "create" if conditional else "overwrite",
        "use_multipart": multipart,
        "chunk_size": MULTIPART_PART_SIZE,
        "max_concurrency": MULTIPART_CONCURRENCY,
    }


def _option_name(key: str) -> str:
    """obstore reads option keys case-insensitively, with or without the `aws_` prefix."""
    return key.lower().removeprefix("aws_")


def _typed_options(options: Mapping[str, str]) -> dict[str, Any]:
    """URL query options (strings) as obstore keyword arguments: store config keys pass
    through, HTTP client keys go to `client_options` (booleans parsed), retry and backoff
    keys to `retry_config`."""
    out: dict[str, Any] = {}
    client: dict[str, Any] = {}
    retry: dict[str, Any] = {}
    backoff: dict[str, Any] = {}
    for key, value in options.items():
        lowered = key.lower()
        if lowered in _CLIENT_BOOLS:
            client[_CLIENT_BOOLS[lowered]] = value.lower() in TRUE_WORDS
        elif lowered in _CLIENT_STRINGS:
            client[lowered] = value
        elif lowered == "max_retries":
            try:
                retry["max_retries"] = int(value)
            except ValueError:
                raise StorageError(
                    f"object store option {key}: not an integer: {value!r}"
                ) from None
        elif lowered == "retry_timeout":
            retry["retry_timeout"] = _duration(key, value)
        elif lowered == "backoff_base":
            try:
                backoff["base"] = float(value)
            except ValueError:
                raise StorageError(f"object store option {key}: not a number: {value!r}") from None
        elif lowered in _BACKOFF:
            backoff[lowered] = _duration(key, value)
        else:
            out[key] = value
    if backoff:
        retry["backoff"] = backoff
    if client:
        out["client_options"] = client
    if retry:
        out["retry_config"] = retry
    return out


def as_parts(data: Buffer | Parts) -> Parts:
    return [data] if isinstance(data, _BUFFER_TYPES) else data


def joined(data: Buffer | Parts) -> Buffer:
    """The object's bytes as one buffer (a copy only if it came in several parts)."""
    if isinstance(data, _BUFFER_TYPES):
        return data
    return data[0] if len(data) == 1 else b"".join(data)
