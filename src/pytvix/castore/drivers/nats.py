"""Shared plumbing of the NATS JetStream backends (`nats://host:port?bucket_prefix=...`).

- `NatsSettings`: the URL query / TOML fields every NATS backend takes.
- `NatsConnection`: one client connection per event loop and server, shared (reference
  counted) by the services using it, opened on first use and reopened on the next operation
  after it was lost. Every operation goes through `call`, which turns client errors into
  StorageError naming the server and retries transient failures (timeouts, lost connection,
  JetStream not ready yet) with backoff. All operations are idempotent (content-addressed
  creates, overwrites with the same value), so writes are retried too. The client does not
  buffer while disconnected: nothing is sent late, after an error was reported.
- `KvBucket`: one JetStream KV bucket (stream `KV_<name>`, created on first use).

Values larger than one message (the server's max_payload, 1 MiB by default, less headroom)
are stored in the object store bucket `<prefix>-large` as object `<bucket>/<key>`; the KV
value is then `LARGE_MARKER` (it starts with 0x00, which neither a protobuf message nor a
zstd frame does). The object is written before the marker, so the marker never points at
nothing.

Keys deleted by hand (`nats kv del` / `purge` leave a marker message) read as missing, but a
create still finds the key taken and does not restore it; remove a key completely with
`nats stream purge KV_<bucket> --subject '$KV.<bucket>.<key>'`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import ssl
import typing
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeVar

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.object_store import ObjectStore

from pytvix.castore.composition import ConfigError, ServiceUrl
from pytvix.castore.errors import StorageError

T = TypeVar("T")

log = logging.getLogger(__name__)

DEFAULT_PORT = 4222
DEFAULT_BUCKET_PREFIX = "pytvix"
DEFAULT_TIMEOUT = 5.0
# call(): attempts per operation and the first backoff (x4 per retry: 0.05 + 0.2 + 0.8 s)
ATTEMPTS = 4
FIRST_BACKOFF = 0.05
# a message carries subject and headers besides the value; keep this much below max_payload
HEADROOM = 4096
LARGE_MARKER = b"\x00pytvix:object-store"
KV_OPERATION = "KV-Operation"
KV_REMOVED = ("DEL", "PURGE")
# JSStreamWrongLastSequenceErrF / ...ConstantErr: a create found the key present
WRONG_LAST_SEQUENCE = (10071, 10164)

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_SCHEMES = {"nats": "nats", "nats+tls": "tls", "tls": "tls"}

Op = Callable[[JetStreamContext], Awaitable[T]]


# --- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NatsEndpoint:
    """What a connection is made from. `server` may carry credentials; `display` does not."""

    server: str
    display: str
    timeout: float
    tls_ca: str | None = None


@dataclass(frozen=True)
class NatsSettings:
    """Fields shared by the NATS service configs. URL form:
    `nats://[user:password@|token@]host[:port]?bucket_prefix=pytvix&replicas=1&timeout=5`
    (`nats+tls://` for TLS, `tls_ca=<file>` to trust a private CA). In TOML, `url` is the
    URL without query and the other fields are fields of the table. (NATS credentials files
    would need the `nkeys` package, which is not a dependency.)"""

    url: str
    bucket_prefix: str = DEFAULT_BUCKET_PREFIX
    replicas: int = 1
    timeout: float = DEFAULT_TIMEOUT
    tls_ca: str | None = None

    def __post_init__(self) -> None:
        self.endpoint()  # validates the URL
        if not _NAME_RE.match(self.bucket_prefix):
            raise ConfigError(
                f"bucket_prefix {self.bucket_prefix!r} may only contain A-Z a-z 0-9 _ -"
            )
        if not 1 <= self.replicas <= 5:
            raise ConfigError(f"replicas must be between 1 and 5, got {self.replicas}")
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, int | float):
            raise ConfigError(f"timeout must be a number of seconds, got {self.timeout!r}")
        if self.timeout <= 0:
            raise ConfigError(f"timeout must be positive, got {self.timeout}")

    @classmethod
    def from_url(cls, url: ServiceUrl) -> Self:
        """The config a `nats://` URL describes; query keys are the config's fields."""
        if url.path not in ("", "/"):
            raise ConfigError(f"{url.raw}: NATS URLs take no path (use ?bucket_prefix=...)")
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)} - {"url"}
        kwargs: dict[str, Any] = {"url": f"{url.scheme}://{url.netloc}"}
        for key, value in url.query:
            if key not in names:
                raise ConfigError(
                    f"{url.raw}: unsupported query parameter {key!r} (known: {sorted(names)})"
                )
            if key in kwargs:
                raise ConfigError(f"{url.raw}: query parameter {key!r} given more than once")
            kwargs[key] = _convert(url.raw, key, value, hints[key])
        return cls(**kwargs)

    def endpoint(self) -> NatsEndpoint:
        try:
            parsed = ServiceUrl.parse(self.url)
        except ConfigError as e:
            raise ConfigError(f"url: {e}") from e
        scheme = _SCHEMES.get(parsed.scheme)
        if scheme is None:
            raise ConfigError(f"{self.url}: expected a nats:// or nats+tls:// URL")
        if not parsed.host or parsed.path not in ("", "/") or parsed.query:
            raise ConfigError(f"{self.url}: expected <scheme>://[credentials@]host[:port]")
        host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
        hostport = f"{host}:{parsed.port or DEFAULT_PORT}"
        userinfo = parsed.netloc.rpartition("@")[0]
        return NatsEndpoint(
            server=f"{scheme}://{userinfo + '@' if userinfo else ''}{hostport}",
            display=f"{parsed.scheme}://{hostport}",
            timeout=float(self.timeout),
            tls_ca=self.tls_ca,
        )

    def bucket(self, suffix: str) -> str:
        return f"{self.bucket_prefix}-{suffix}"


def _convert(raw: str, key: str, value: str, hint: Any) -> Any:
    args = set(typing.get_args(hint)) or {hint}
    try:
        if int in args:
            return int(value)
        if float in args:
            return float(value)
    except ValueError:
        raise ConfigError(f"{raw}: {key} must be a number, got {value!r}") from None
    return value


# --- connection ------------------------------------------------------------------------------


class _Transient(Exception):
    """A failure worth retrying that is not a client error: connecting failed, an object
    arrived incomplete."""


class NatsConnection:
    """A shared, lazily (re)connected client; see the module docstring."""

    _shared: ClassVar[
        weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[NatsEndpoint, NatsConnection]]
    ] = weakref.WeakKeyDictionary()

    def __init__(self, endpoint: NatsEndpoint) -> None:
        self.endpoint = endpoint
        self.timeout = endpoint.timeout
        self.max_payload = 1 << 20
        self._refs = 0
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def acquire(cls, endpoint: NatsEndpoint) -> NatsConnection:
        """The connection to `endpoint` on the running loop; `release()` it when done."""
        per_loop = cls._shared.setdefault(asyncio.get_running_loop(), {})
        conn = per_loop.get(endpoint)
        if conn is None:
            conn = per_loop[endpoint] = cls(endpoint)
        conn._refs += 1
        return conn

    async def release(self) -> None:
        self._refs -= 1
        if self._refs > 0:
            return
        per_loop = self._shared.get(asyncio.get_running_loop(), {})
        if per_loop.get(self.endpoint) is self:
            del per_loop[self.endpoint]
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            try:
                await nc.close()
            except (nats.errors.Error, OSError) as e:
                log.debug("closing NATS connection to %s: %s", self.endpoint.display, e)

    def error(self, what: str, cause: BaseException | str) -> StorageError:
        """A StorageError naming the server and what failed."""
        detail = cause if isinstance(cause, str) else _describe(cause)
        return StorageError(f"NATS {self.endpoint.display}: {what}: {detail}")

    async def call(self, what: str, op: Op[T]) -> T:
        """Run `op` with the JetStream context; transient failures are retried with backoff,
        every failure ends as a StorageError naming the server and `what`."""
        delay = FIRST_BACKOFF
        attempt = 1
        while True:
            try:
                return await op(await self._context())
            except (nats.errors.Error, OSError, _Transient) as e:
                if attempt >= ATTEMPTS or not _transient(e):
                    raise self.error(what, e) from e
                log.debug("NATS %s: %s failed (%s), retrying", self.endpoint.display, what, e)
            await asyncio.sleep(delay)
            delay *= 4
            attempt += 1

    async def _context(self) -> JetStreamContext:
        nc, js = self._nc, self._js
        if nc is not None and js is not None and not nc.is_closed:
            return js
        async with self._lock:
            if self._nc is None or self._js is None or self._nc.is_closed:
                self._nc = await self._connect()
                self._js = self._nc.jetstream(timeout=self.timeout)
                self.max_payload = self._nc.max_payload
            return self._js

    async def _connect(self) -> NATS:
        # No client-side reconnects or buffering: a lost connection closes, the next call
        # reconnects (so operations fail fast while the server is away).
        nc = NATS()
        options: dict[str, Any] = {}
        if self.endpoint.tls_ca is not None:
            options["tls"] = ssl.create_default_context(cafile=self.endpoint.tls_ca)
        reported: list[Exception] = []

        async def on_error(e: Exception) -> None:
            reported[:] = [e]
            log.debug("NATS client %s: %s", self.endpoint.display, e)

        try:
            await nc.connect(
                servers=[self.endpoint.server],
                name="pytvix",
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0,
                connect_timeout=max(1, round(self.timeout)),
                ping_interval=20,
                error_cb=on_error,
                **options,
            )
        except (nats.errors.Error, OSError) as e:
            if not nc.is_closed:
                with contextlib.suppress(nats.errors.Error, OSError):
                    await nc.close()
            cause = f" ({_describe(reported[0])})" if reported and reported[0] is not e else ""
            raise _Transient(f"cannot connect: {_describe(e)}{cause}") from e
        return nc


def _describe(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    if isinstance(e, nats.js.errors.APIError) and e.description:
        return f"{e.description} (code {e.code}, error {e.err_code})"
    return text


def _transient(e: BaseException) -> bool:
    if isinstance(e, nats.js.errors.APIError):
        return e.code == 503
    if isinstance(e, nats.errors.MaxPayloadError | nats.errors.AuthorizationError):
        return False
    return isinstance(
        e,
        _Transient
        | OSError  # includes timeouts
        | nats.errors.NoRespondersError
        | nats.js.errors.NoStreamResponseError
        | nats.errors.ConnectionClosedError
        | nats.errors.OutboundBufferLimitError
        | nats.errors.ConnectionReconnectingError
        | nats.errors.StaleConnectionError
        | nats.errors.SlowConsumerError,
    )


async def gather_limited(jobs: Sequence[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run `jobs` with at most `limit` at a time; results in order. The first failure cancels
    the rest and is raised."""
    if len(jobs) == 1:
        return [await jobs[0]()]
    semaphore = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await job()

    tasks = [asyncio.ensure_future(one(job)) for job in jobs]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()


# --- buckets ---------------------------------------------------------------------------------


class LargeValues:
    """The object store bucket holding values too large for a KV message."""

    def __init__(self, conn: NatsConnection, name: str, replicas: int) -> None:
        self.conn = conn
        self.name = name
        self._replicas = replicas
        self._ready = False

    async def _store(self, js: JetStreamContext) -> ObjectStore:
        stream = f"OBJ_{self.name}"
        if not self._ready:
            try:
                await js.stream_info(stream)
            except nats.js.errors.NotFoundError:
                await js.create_object_store(
                    self.name, replicas=self._replicas, storage=api.StorageType.FILE
                )
            self._ready = True
        return ObjectStore(name=self.name, stream=stream, js=js)

    async def get(self, js: JetStreamContext, name: str) -> bytes | None:
        """The object's bytes (complete: the client checks their SHA-256), or None."""
        store = await self._store(js)
        try:
            # the client reads objects through a consumer, without a timeout of its own
            result = await asyncio.wait_for(store.get(name), self.conn.timeout * 10)
        except nats.js.errors.ObjectNotFoundError:
            return None
        data = bytes(result.data or b"")
        if len(data) != result.info.size:  # the consumer ended early: connection lost
            raise _Transient(f"object {name} arrived incomplete")
        return data

    async def put(self, js: JetStreamContext, name: str, data: bytes) -> None:
        store = await self._store(js)
        await store.put(name, data)


class KvBucket:
    """One KV bucket (history 1, direct gets, file storage, created on first use)."""

    def __init__(self, conn: NatsConnection, name: str, replicas: int, large: LargeValues):
        self.conn = conn
        self.name = name
        self.stream = f"KV_{name}"
        self._pre = f"$KV.{name}."
        self._replicas = replicas
        self._large = large
        self._ready = False
        self._direct = True

    @property
    def limit(self) -> int:
        """The largest value stored in the KV message itself."""
        return self.conn.max_payload - HEADROOM

    async def _ensure(self, js: JetStreamContext) -> JetStreamContext:
        if not self._ready:
            try:
                info = await js.stream_info(self.stream)
                self._direct = bool(info.config.allow_direct)
            except nats.js.errors.NotFoundError:
                await js.create_key_value(
                    bucket=self.name,
                    history=1,
                    direct=True,
                    replicas=self._replicas,
                    storage=api.StorageType.FILE,
                )
                self._direct = True
            self._ready = True
        return js

    # --- single keys --------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        """The value under `key`, or None."""
        return await self.conn.call(f"get {self.name}/{key}", lambda js: self._get(js, key))

    async def exists(self, key: str) -> bool:
        return (
            await self.conn.call(f"get {self.name}/{key}", lambda js: self._get_raw(js, key))
            is not None
        )

    async def create(self, key: str, value: bytes) -> bool:
        """Store `value` unless the key is present; True if it was stored."""
        return await self.conn.call(
            f"create {self.name}/{key}", lambda js: self._create(js, key, value)
        )

    async def put(self, key: str, value: bytes) -> None:
        """Store `value`, replacing what the key held."""
        await self.conn.call(f"put {self.name}/{key}", lambda js: self._put(js, key, value))

    async def _get(self, js: JetStreamContext, key: str) -> bytes | None:
        data = await self._get_raw(js, key)
        if data != LARGE_MARKER:
            return data
        value = await self._large.get(js, f"{self.name}/{key}")
        if value is None:
            raise self.conn.error(
                f"get {self.name}/{key}",
                f"the value is in object store bucket {self._large.name}, which lacks it",
            )
        return value

    async def _get_raw(self, js: JetStreamContext, key: str) -> bytes | None:
        msg = await self._last(await self._ensure(js), key)
        return None if msg is None or _removed(msg.headers) else (msg.data or b"")

    async def _last(self, js: JetStreamContext, key: str) -> api.RawStreamMsg | None:
        try:
            return await js.get_msg(self.stream, subject=self._pre + key, direct=self._direct)
        except nats.js.errors.NotFoundError:
            return None

    async def _create(self, js: JetStreamContext, key: str, value: bytes) -> bool:
        js = await self._ensure(js)
        if len(value) > self.limit:
            if await self._get_raw(js, key) is not None:
                return False
            await self._large.put(js, f"{self.name}/{key}", value)
            value = LARGE_MARKER
        try:
            await js.publish(self._pre + key, value, headers=_expect_last(0))
        except nats.js.errors.APIError as e:
            if e.err_code in WRONG_LAST_SEQUENCE:
                return False  # present (not inspected: that would download the value)
            raise
        return True

    async def _put(self, js: JetStreamContext, key: str, value: bytes) -> None:
        js = await self._ensure(js)
        if len(value) > self.limit:
            await self._large.put(js, f"{self.name}/{key}", value)
            value = LARGE_MARKER
        await js.publish(self._pre + key, value)

    # --- whole bucket -------------------------------------------------------------------

    async def stats(self) -> tuple[int, int]:
        """(values, stored bytes) of the bucket's stream."""

        async def op(js: JetStreamContext) -> tuple[int, int]:
            info = await (await self._ensure(js)).stream_info(self.stream)
            return info.state.messages, info.state.bytes

        return await self.conn.call(f"stat {self.name}", op)

    async def items(self) -> AsyncIterator[tuple[str, bytes]]:
        """Every (key, value), in stream order (values of large keys fetched)."""
        async for msg in self._scan(headers_only=False):
            key = msg.subject[len(self._pre) :]
            data = msg.data or b""
            if data == LARGE_MARKER:
                large = await self.get(key)
                if large is None:
                    continue  # removed meanwhile
                data = large
            yield key, data

    async def keys(self) -> AsyncIterator[str]:
        """Every key, in stream order (values are not transferred)."""
        async for msg in self._scan(headers_only=True):
            yield msg.subject[len(self._pre) :]

    async def _scan(self, *, headers_only: bool) -> AsyncIterator[Msg]:
        """The last message of every key through an ordered consumer (removed keys skipped)."""

        async def start(js: JetStreamContext) -> Any:
            js = await self._ensure(js)
            info = await js.stream_info(self.stream)
            if info.state.messages == 0:
                return None
            return await js.subscribe(
                self._pre + ">",
                stream=self.stream,
                ordered_consumer=True,
                deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
                headers_only=headers_only,
                inactive_threshold=60.0,
            )

        sub = await self.conn.call(f"scan {self.name}", start)
        if sub is None:
            return
        try:
            while True:
                try:
                    msg: Msg = await sub.next_msg(timeout=self.conn.timeout)
                    pending = msg.metadata.num_pending
                except (nats.errors.Error, OSError) as e:
                    raise self.conn.error(f"scan {self.name}", e) from e
                if not _removed(msg.headers):
                    yield msg
                if pending == 0:
                    return
        finally:
            try:
                await sub.unsubscribe()
            except (nats.errors.Error, OSError) as e:
                log.debug("ending scan of %s: %s", self.name, e)


def _expect_last(seq: int) -> dict[str, str]:
    """Headers making a publish fail unless the key's last message has sequence `seq`."""
    return {api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE: str(seq)}


def _removed(headers: dict[str, str] | None) -> bool:
    """Whether a message is a KV delete or purge marker."""
    return headers is not None and headers.get(KV_OPERATION) in KV_REMOVED


class NatsKvService:
    """Base of the services kept in one KV bucket (values too large for a message go to the
    shared `large` object store): the connection's lifetime, where the data is (for messages)
    and `describe()`. `COUNT_LABEL` names what the bucket counts."""

    COUNT_LABEL = "entries"

    def __init__(self, settings: NatsSettings, bucket: str) -> None:
        self.conn = NatsConnection.acquire(settings.endpoint())
        large = LargeValues(self.conn, settings.bucket("large"), settings.replicas)
        self.kv = KvBucket(self.conn, settings.bucket(bucket), settings.replicas, large)
        self._closed = False

    def _where(self) -> str:
        return f"{self.conn.endpoint.display} bucket {self.kv.name}"

    async def describe(self) -> dict[str, str | int]:
        count, stored = await self.kv.stats()
        return {
            "url": self.conn.endpoint.display,
            "bucket": self.kv.name,
            self.COUNT_LABEL: count,
            "stored bytes": stored,
        }

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self.conn.release()
