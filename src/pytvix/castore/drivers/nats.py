"""Connections of the NATS JetStream backends (`nats://host:port?bucket_prefix=...`).

- `NatsSettings`: the URL query / TOML fields every NATS backend takes.
- `NatsConnection`: one client connection per event loop and server, shared (reference
  counted) by the services using it, opened on first use and reopened on the next operation
  after it was lost. Every operation goes through `call`, which turns client errors into
  StorageError naming the server and retries transient failures (timeouts, lost connection,
  JetStream not ready yet) with backoff. All operations are idempotent (content-addressed
  creates, overwrites with the same value, deletes of one stream sequence), so writes are
  retried too. The client does not buffer while disconnected: nothing is sent late, after an
  error was reported.

The buckets themselves are in `nats_kv`.
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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeVar

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

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


class TransientError(Exception):
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
            except (nats.errors.Error, OSError, TransientError) as e:
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
            raise TransientError(f"cannot connect: {_describe(e)}{cause}") from e
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
        TransientError
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
