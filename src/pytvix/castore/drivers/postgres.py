"""PostgreSQL plumbing shared by the `postgresql://` directory and path info services.

- `PgSettings.parse` validates a URL (only query parameters asyncpg understands) and derives
  the label errors name the backend by (`postgresql://host:port/db`, never credentials).
- `PgDatabase.acquire` opens an asyncpg pool and migrates the schema; services built with the
  same settings in one event loop share it (reference counted, closed with the last user).
- `read` / `write` run an operation on a pooled connection; `write` runs it in one
  transaction (all or nothing). Transient failures (connection refused or lost, server
  restarting, too many connections, serialization failures) are retried with backoff, so
  write operations must be idempotent. Every driver error surfaces as StorageError.

Schema: `schema_version(version)` records applied migrations; `directories` and `path_infos`
map a digest (bytea, 32 and 20 bytes) to protobuf bytes, with when a directory was written
and a path info added and last read (for garbage collection); `pins` holds named pins.
Migrations run in one transaction under an advisory lock, so daemons starting at once wait
for each other, and a database created by a newer pytvix is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Self, TypeVar

import asyncpg  # type: ignore[import-untyped]

from pytvix.castore.composition import ConfigError, ServiceUrl
from pytvix.castore.errors import StorageError

T = TypeVar("T")
Connection = Any  # asyncpg.Connection (asyncpg ships no type information)

DEFAULT_POOL_MIN = 1
DEFAULT_POOL_MAX = 10
CONNECT_TIMEOUT = 10.0
CLOSE_TIMEOUT = 10.0

# Query parameters asyncpg interprets itself (asyncpg passes any other one to the server as a
# setting, which would turn a typo into a connection failure); plus `application_name`.
URL_PARAMETERS = frozenset(
    {
        "host",
        "port",
        "user",
        "password",
        "passfile",
        "database",
        "dbname",
        "service",
        "sslmode",
        "sslcert",
        "sslkey",
        "sslrootcert",
        "sslcrl",
        "sslpassword",
        "sslnegotiation",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "target_session_attrs",
        "krbsrvname",
        "gsslib",
        "application_name",
    }
)

# --- schema ----------------------------------------------------------------------------------

SCHEMA_LOCK = 0x7079_7476_6978  # pg_advisory_xact_lock key ("pytvix")
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: directories and path infos, each a digest -> protobuf bytes table
    (
        "CREATE TABLE directories ("
        " digest bytea PRIMARY KEY CHECK (octet_length(digest) = 32),"
        " data bytea NOT NULL)",
        "CREATE TABLE path_infos ("
        " digest bytea PRIMARY KEY CHECK (octet_length(digest) = 20),"
        " data bytea NOT NULL)",
    ),
    # 2: garbage collection: when rows were written, added and read; pins
    (
        "ALTER TABLE directories ADD COLUMN written double precision NOT NULL"
        " DEFAULT extract(epoch FROM now())",
        "ALTER TABLE path_infos ADD COLUMN added double precision NOT NULL"
        " DEFAULT extract(epoch FROM now())",
        "ALTER TABLE path_infos ADD COLUMN last_read double precision NOT NULL DEFAULT 0",
        "CREATE TABLE pins (name text PRIMARY KEY, digests bytea NOT NULL)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNew(Exception):
    """The database was migrated by a newer pytvix."""


async def migrate(conn: Connection) -> int:
    """Bring the schema up to SCHEMA_VERSION in one transaction, holding an advisory lock so
    concurrent callers apply each migration once. Idempotent; returns the version."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version"))
        if current > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"schema version {current} is newer than this pytvix supports ({SCHEMA_VERSION})"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version - 1]:
                await conn.execute(statement)
            await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
    return SCHEMA_VERSION


# --- settings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PgSettings:
    """A validated connection target: `dsn` for asyncpg, `label` for messages."""

    dsn: str
    label: str
    pool_min_size: int = DEFAULT_POOL_MIN
    pool_max_size: int = DEFAULT_POOL_MAX

    @classmethod
    def parse(
        cls, raw: str, pool_min_size: int = DEFAULT_POOL_MIN, pool_max_size: int = DEFAULT_POOL_MAX
    ) -> PgSettings:
        """Validate `postgresql://[user[:password]@]host[:port]/database[?param=value...]`
        and the pool sizes; ConfigError names what is wrong."""
        url = ServiceUrl.parse(raw)
        shown = _redacted(url)  # messages never show a password
        if url.scheme != "postgresql":
            raise ConfigError(f"{shown}: expected a postgresql://user@host:port/database URL")
        unknown = sorted({k for k, _ in url.query} - URL_PARAMETERS)
        if unknown:
            raise ConfigError(
                f"{shown}: unsupported query parameter(s) {unknown} "
                f"(supported: {', '.join(sorted(URL_PARAMETERS))})"
            )
        keys = [k for k, _ in url.query]
        for key, value in url.query:
            if not value:
                raise ConfigError(f"{shown}: query parameter {key!r} needs a value")
            if keys.count(key) > 1:
                raise ConfigError(f"{shown}: query parameter {key!r} given more than once")
        database = url.path.removeprefix("/")
        if "/" in database:
            raise ConfigError(f"{shown}: the path must be a single database name")
        if not 0 <= pool_min_size <= pool_max_size or pool_max_size < 1:
            raise ConfigError(
                f"{shown}: pool sizes must satisfy 0 <= pool_min_size <= pool_max_size, "
                f"pool_max_size >= 1 (got {pool_min_size}, {pool_max_size})"
            )
        host = url.host or url.query_value("host") or "localhost"
        port = url.port or url.query_value("port") or 5432
        database = database or url.query_value("dbname") or url.query_value("database") or ""
        return cls(raw, f"postgresql://{host}:{port}/{database}", pool_min_size, pool_max_size)


def _redacted(url: ServiceUrl) -> str:
    """The URL with any password (in the user info or the query) replaced by `***`."""
    user_info, at, host = url.netloc.rpartition("@")
    if at and ":" in user_info:
        user_info = user_info.split(":", 1)[0] + ":***"
    netloc = f"{user_info}{at}{host}"
    query = "&".join(f"{k}={'***' if k == 'password' else v}" for k, v in url.query)
    return f"{url.scheme}://{netloc}{url.path}" + (f"?{query}" if query else "")


@dataclass(frozen=True)
class PgConfig:
    """Config fields shared by the PostgreSQL services (a mixin next to ServiceConfig):
    `postgresql://user[:password]@host[:port]/database[?asyncpg parameters]`;
    TOML: `url`, `pool_min_size` (default 1), `pool_max_size` (default 10)."""

    url: str
    pool_min_size: int = DEFAULT_POOL_MIN
    pool_max_size: int = DEFAULT_POOL_MAX

    def __post_init__(self) -> None:
        self.settings()  # validate early

    @classmethod
    def from_url(cls, url: ServiceUrl) -> Self:
        return cls(url=url.raw)

    def settings(self) -> PgSettings:
        return PgSettings.parse(self.url, self.pool_min_size, self.pool_max_size)


# --- errors and retries ----------------------------------------------------------------------

TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, timed out
    asyncpg.PostgresConnectionError,  # 08xxx, including "connection was closed in the middle"
    asyncpg.TooManyConnectionsError,
    asyncpg.CannotConnectNowError,  # starting up / shutting down
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TransactionRollbackError,  # serialization failure, deadlock
    # a pooled connection caught mid-way by a server shutdown notice ("cannot switch to
    # state ...; another operation is in progress"): a retry takes another connection
    asyncpg.InternalClientError,
)
DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    *TRANSIENT,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)

CLOSE_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, *DRIVER_ERRORS)


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries in all; sleeps `first_delay * 2**n` (capped, +-25% jitter) between."""

    attempts: int = 5
    first_delay: float = 0.1
    max_delay: float = 2.0

    def delay(self, attempt: int) -> float:
        base = min(self.max_delay, self.first_delay * 2.0**attempt)
        return base * random.uniform(0.75, 1.25)


def _reason(e: BaseException) -> str:
    return str(e).strip() or type(e).__name__


def storage_error(label: str, what: str, e: BaseException) -> StorageError:
    return StorageError(f"{label}: {what}: {_reason(e)}")


async def _with_retries(
    label: str, what: str, policy: RetryPolicy, fn: Callable[[], Awaitable[T]]
) -> T:
    for attempt in range(policy.attempts):
        try:
            return await fn()
        except TRANSIENT as e:
            if attempt + 1 >= policy.attempts:
                raise storage_error(
                    label, f"{what} failed after {policy.attempts} attempts", e
                ) from e
            await asyncio.sleep(policy.delay(attempt))
        except DRIVER_ERRORS as e:
            raise storage_error(label, f"{what} failed", e) from e
    raise AssertionError("unreachable")


def _usable(conn: Connection) -> bool:
    """Whether a pooled connection is still open (the pool detaches lost ones)."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False


async def _keep_session(conn: Connection) -> None:
    """Pool release hook. asyncpg rolls back an open transaction itself; the default reset
    (RESET ALL, UNLISTEN *, advisory unlock, CLOSE ALL) would cost a round trip per
    operation and undo nothing: these services set no session state, take only
    transaction-scoped advisory locks and hold no cursors outside transactions."""


# --- the shared pool -------------------------------------------------------------------------

_shared: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[PgSettings, asyncio.Future[PgDatabase]]
] = weakref.WeakKeyDictionary()


class PgDatabase:
    """An asyncpg pool on a migrated database. Obtain with `acquire`, give back with
    `release`; `read` and `write` run operations with retries (see the module docstring)."""

    retry = RetryPolicy()

    def __init__(self, settings: PgSettings, pool: Any) -> None:
        self.settings = settings
        self.pool = pool
        self._refs = 1

    @property
    def label(self) -> str:
        return self.settings.label

    @classmethod
    async def acquire(cls, settings: PgSettings) -> PgDatabase:
        """The shared database for `settings` in this event loop, opened (connected and
        migrated) on first use. StorageError if the server cannot be reached."""
        shared = _shared.setdefault(asyncio.get_running_loop(), {})
        while (future := shared.get(settings)) is not None:
            db = await asyncio.shield(future)
            if db._refs > 0:  # not released (and closed) while we waited
                db._refs += 1
                return db
        future = asyncio.get_running_loop().create_future()
        shared[settings] = future
        try:
            db = await cls._open(settings)
        except BaseException as e:
            del shared[settings]
            future.set_exception(e)
            future.exception()  # retrieved: waiters get it raised
            raise
        future.set_result(db)
        return db

    @classmethod
    async def _open(cls, settings: PgSettings) -> PgDatabase:
        async def create() -> Any:
            return await asyncpg.create_pool(
                settings.dsn,
                min_size=settings.pool_min_size,
                max_size=settings.pool_max_size,
                timeout=CONNECT_TIMEOUT,
                max_inactive_connection_lifetime=300.0,
                reset=_keep_session,
            )

        pool = await _with_retries(settings.label, "connect", cls.retry, create)
        db = cls(settings, pool)
        try:
            await db.read(migrate, what="schema migration")
        except SchemaTooNew as e:
            await db._close_pool()
            raise StorageError(f"{settings.label}: {e}") from e
        except BaseException:
            await db._close_pool()
            raise
        return db

    async def release(self) -> None:
        """Drop one reference; the last one closes the pool."""
        self._refs -= 1
        if self._refs > 0:
            return
        shared = _shared.get(asyncio.get_running_loop(), {})
        future = shared.get(self.settings)
        if future is not None and future.done() and future.result() is self:
            del shared[self.settings]
        await self._close_pool()

    async def _close_pool(self) -> None:
        try:
            await asyncio.wait_for(self.pool.close(), CLOSE_TIMEOUT)
        except CLOSE_ERRORS:
            self.pool.terminate()

    async def read(self, op: Callable[[Connection], Awaitable[T]], *, what: str = "query") -> T:
        """`op(conn)` on a pooled connection, retried on transient failures."""

        async def attempt() -> T:
            async with self.pool.acquire() as conn:
                return await op(conn)

        return await _with_retries(self.label, what, self.retry, attempt)

    async def write(self, op: Callable[[Connection], Awaitable[T]], *, what: str = "write") -> T:
        """`op(conn)` inside one transaction: it commits entirely or not at all. The whole
        transaction is retried on transient failures, so `op` must be idempotent."""

        async def attempt() -> T:
            async with self.pool.acquire() as conn:
                transaction = conn.transaction()
                await transaction.start()
                try:
                    result = await op(conn)
                except BaseException:
                    # on a lost connection the server has rolled back already: keep the
                    # original (transient) error rather than one about the rollback
                    if _usable(conn):
                        with contextlib.suppress(*DRIVER_ERRORS):
                            await transaction.rollback()
                    raise
                await transaction.commit()
                return result

        return await _with_retries(self.label, what, self.retry, attempt)

    async def fetch(self, sql: str, *args: Any, what: str = "query") -> list[Any]:
        """The rows of one query (asyncpg Records), retried on transient failures."""
        rows: list[Any] = await self.read(lambda c: c.fetch(sql, *args), what=what)
        return rows

    async def fetchval(self, sql: str, *args: Any, what: str = "query") -> Any:
        """The first column of the first row (None without rows), retried likewise."""
        return await self.read(lambda c: c.fetchval(sql, *args), what=what)

    @contextlib.asynccontextmanager
    async def session_lock(self, key: int) -> AsyncIterator[bool]:
        """Try to take a session-level advisory lock on a connection held meanwhile; yields
        whether it was taken. A holder that dies releases it (its connection closes)."""
        async with self.pool.acquire() as conn:
            taken = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", key))
            try:
                yield taken
            finally:
                if taken and _usable(conn):
                    with contextlib.suppress(*DRIVER_ERRORS):
                        await conn.execute("SELECT pg_advisory_unlock($1)", key)

    async def table_stats(self, table: str) -> dict[str, str | int]:
        """Row count and on-disk bytes (with indexes) of one of our tables."""
        row = await self.read(
            lambda c: c.fetchrow(
                f"SELECT count(*) AS n, pg_total_relation_size('{table}') AS bytes FROM {table}"
            ),
            what="statistics",
        )
        return {"rows": int(row["n"]), "bytes": int(row["bytes"])}
