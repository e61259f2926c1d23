"""The postgresql:// backends on a real server: configuration, schema migration (idempotent,
concurrent), atomic closures under injected failures and killed connections, a server going
away mid-import, retries across a restart, corruption detection, round trips per closure."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import blake3
import pytest

from pytvix.castore.composition import (
    BLOB_SERVICES,
    DIRECTORY_SERVICES,
    Composition,
    ConfigError,
    from_addr,
)
from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.directoryservice import postgres as pg_dirs
from pytvix.castore.directoryservice import put_closure
from pytvix.castore.directoryservice.postgres import (
    PostgresDirectoryService,
    PostgresDirectoryServiceConfig,
)
from pytvix.castore.drivers import postgres as pg
from pytvix.castore.errors import StorageError
from pytvix.castore.progress import no_progress
from pytvix.castore.scrub import ScrubReport
from pytvix.store.composition import (
    PATHINFO_SERVICES,
    build_store,
    open_store_from_urls,
    store_composition,
)
from pytvix.store.pathinfoservice.postgres import (
    PostgresPathInfoService,
    PostgresPathInfoServiceConfig,
)
from pytvix.store.proto import path_info_to_proto
from pytvix.store.verify import verify_store
from pytvix.testing.fixtures import DIRECTORY_A, DIRECTORY_B, DIRECTORY_C, DIRECTORY_D, PATH_INFO
from pytvix.testing.synthetic import write_synthetic_path
from tests.servers.postgres import PostgresServer, fresh_database, postgres_server

pytestmark = pytest.mark.servers

FAST_RETRY = pg.RetryPolicy(attempts=3, first_delay=0.05, max_delay=0.2)


@pytest.fixture
async def db_url() -> AsyncIterator[str]:
    async with fresh_database() as url:
        yield url


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg.PgDatabase, "retry", FAST_RETRY)


@pytest.fixture
def server_restored() -> Iterator[PostgresServer]:
    """Make sure the shared server runs again after a test that stops it."""
    server = postgres_server()
    yield server
    server.start()


def label_of(url: str) -> str:
    return pg.PgSettings.parse(url).label


async def sql(url: str, query: str, *args: Any) -> Any:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def open_dirs(url: str) -> PostgresDirectoryService:
    service = await from_addr(DIRECTORY_SERVICES, url)
    assert isinstance(service, PostgresDirectoryService)
    return service


async def open_infos(url: str) -> PostgresPathInfoService:
    service = await from_addr(PATHINFO_SERVICES, url)
    assert isinstance(service, PostgresPathInfoService)
    return service


# --- configuration ---------------------------------------------------------------------------


def test_url_validation() -> None:
    good = "postgresql://u:secret@db.example:5433/tvix?sslmode=require&application_name=x"
    config = DIRECTORY_SERVICES.config_from_url(good)
    assert config == PostgresDirectoryServiceConfig(url=good)
    settings = pg.PgSettings.parse(good)
    assert settings.label == "postgresql://db.example:5433/tvix"
    assert "secret" not in settings.label
    assert pg.PgSettings.parse("postgresql://u@h/db").label == "postgresql://h:5432/db"
    with pytest.raises(ConfigError, match=r"unsupported query parameter\(s\) \['sslmod'\]"):
        DIRECTORY_SERVICES.config_from_url("postgresql://u@h/db?sslmod=require")
    with pytest.raises(ConfigError, match="given more than once"):
        PATHINFO_SERVICES.config_from_url("postgresql://u@h/db?sslmode=a&sslmode=b")
    with pytest.raises(ConfigError, match="needs a value"):
        PATHINFO_SERVICES.config_from_url("postgresql://u@h/db?sslmode")
    with pytest.raises(ConfigError, match="single database name"):
        PATHINFO_SERVICES.config_from_url("postgresql://u@h/db/extra")
    with pytest.raises(ConfigError, match="expected a postgresql://"):
        PostgresPathInfoServiceConfig(url="postgresql+tcp://u@h/db")
    with pytest.raises(ConfigError) as info:
        PostgresPathInfoServiceConfig(url="postgresql://u:secret@h/db?password=secret2&x=1")
    assert str(info.value).startswith("postgresql://u:***@h/db?password=***&x=1: unsupported")
    assert "secret" not in str(info.value)


def test_toml_fields() -> None:
    table = {"type": "postgresql", "url": "postgresql://u@h/db", "pool_max_size": 4}
    comp = store_composition({"directoryservices": {"d": table}, "pathinfoservices": {"p": table}})
    assert comp.has(DIRECTORY_SERVICES, "d")
    config = PATHINFO_SERVICES.config_from_table("p", table)
    assert config == PostgresPathInfoServiceConfig("postgresql://u@h/db", 1, 4)
    with pytest.raises(ConfigError, match="missing field 'url'"):
        PATHINFO_SERVICES.config_from_table("p", {"type": "postgresql"})
    with pytest.raises(ConfigError, match="unknown field"):
        DIRECTORY_SERVICES.config_from_table("d", {**table, "pool_size": 3})
    with pytest.raises(ConfigError, match="pool sizes"):
        DIRECTORY_SERVICES.config_from_table("d", {**table, "pool_min_size": 5})
    with pytest.raises(ConfigError, match="unsupported query"):
        DIRECTORY_SERVICES.config_from_table("d", {**table, "url": "postgresql://h/db?x=1"})


# --- schema ----------------------------------------------------------------------------------


async def test_schema_created_once_and_reopened(db_url: str) -> None:
    dirs = await open_dirs(db_url)
    infos = await open_infos(db_url)
    assert dirs.db is infos.db, "services of one URL share a pool"
    await put_closure(dirs, [DIRECTORY_A, DIRECTORY_C])
    await infos.put(PATH_INFO)
    await dirs.close()
    assert await infos.get(PATH_INFO.store_path.digest) == PATH_INFO, "pool still open"
    await infos.close()
    for _ in range(2):
        dirs, infos = await open_dirs(db_url), await open_infos(db_url)
        assert await dirs.get(DIRECTORY_C.digest()) == DIRECTORY_C
        assert await infos.get(PATH_INFO.store_path.digest) == PATH_INFO
        await dirs.close()
        await dirs.close()  # idempotent
        await infos.close()
    rows = await sql(db_url, "SELECT version FROM schema_version ORDER BY version")
    assert [r["version"] for r in rows] == list(range(1, pg.SCHEMA_VERSION + 1))


async def test_concurrent_opens_migrate_once(db_url: str) -> None:
    # distinct pool sizes: distinct pools, each migrating on its own connection
    services = await asyncio.gather(
        *(
            DIRECTORY_SERVICES.config_class("postgresql")
            .from_table({"url": db_url, "pool_max_size": n})
            .build("default", None)  # type: ignore[arg-type]
            for n in range(1, 7)
        )
    )
    conns = [await asyncpg.connect(db_url) for _ in range(4)]
    try:
        assert await asyncio.gather(*(pg.migrate(c) for c in conns)) == [pg.SCHEMA_VERSION] * 4
    finally:
        for c in conns:
            await c.close()
    rows = await sql(db_url, "SELECT version FROM schema_version ORDER BY version")
    assert [r["version"] for r in rows] == list(range(1, pg.SCHEMA_VERSION + 1))
    await put_closure(services[0], [DIRECTORY_A])
    for service in services:
        assert await service.get(DIRECTORY_A.digest()) == DIRECTORY_A
        await service.close()


async def test_a_version_1_database_is_migrated_with_its_data(db_url: str) -> None:
    """Databases made before garbage collection get its columns (rows count as written
    now) and the pins table, and keep their rows."""
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "CREATE TABLE schema_version (version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for statement in pg.MIGRATIONS[0]:
            await conn.execute(statement)
        await conn.execute("INSERT INTO schema_version (version) VALUES (1)")
        await conn.execute(
            "INSERT INTO directories (digest, data) VALUES ($1, $2)",
            DIRECTORY_A.digest(),
            DIRECTORY_A.encode(),
        )
    finally:
        await conn.close()
    dirs = await open_dirs(db_url)
    try:
        assert await dirs.get(DIRECTORY_A.digest()) == DIRECTORY_A
        [stored] = [obj async for obj in dirs.gc_objects()]
        assert abs(stored.written - time.time()) < 60
        assert await (await open_infos(db_url)).pins() == {}
    finally:
        await dirs.close()


async def test_newer_schema_refused(db_url: str) -> None:
    await (await open_dirs(db_url)).close()  # creates the schema
    await sql(db_url, "INSERT INTO schema_version (version) VALUES (99)")
    with pytest.raises(
        StorageError, match=r"postgresql://127\.0\.0\.1:\d+/t_\w+: schema version 99"
    ):
        await open_infos(db_url)


async def test_unknown_database_is_a_clear_error(db_url: str) -> None:
    missing = db_url.rsplit("/", 1)[0] + "/no_such_db"
    with pytest.raises(StorageError) as info:
        await open_infos(missing)
    assert str(info.value).startswith(f"{label_of(missing)}: connect failed")
    assert "does not exist" in str(info.value)


# --- atomic closures -------------------------------------------------------------------------


async def _fail_on_insert_of(url: str, digest: bytes, action: str) -> None:
    """A trigger running `action` (PL/pgSQL) when the row `digest` is inserted."""
    await sql(
        url,
        f"""CREATE FUNCTION inject() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.digest = '\\x{digest.hex()}'::bytea THEN {action} END IF;
            RETURN NEW;
        END $$""",
    )
    await sql(
        url,
        "CREATE TRIGGER inject BEFORE INSERT ON directories FOR EACH ROW EXECUTE FUNCTION inject()",
    )


async def _visible(service: PostgresDirectoryService, *dirs: Directory) -> list[bool]:
    return [await service.get(d.digest()) is not None for d in dirs]


async def test_closure_is_all_or_nothing(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg_dirs, "INSERT_BATCH", 1)  # one statement per directory
    service = await open_dirs(db_url)
    try:
        await _fail_on_insert_of(
            db_url, DIRECTORY_D.digest(), "RAISE EXCEPTION 'injected failure';"
        )
        with pytest.raises(StorageError, match=f"{label_of(db_url)}: put directory closure"):
            await put_closure(service, [DIRECTORY_A, DIRECTORY_B, DIRECTORY_D])
        assert await _visible(service, DIRECTORY_A, DIRECTORY_B, DIRECTORY_D) == [False] * 3
        await sql(db_url, "DROP TRIGGER inject ON directories")
        await put_closure(service, [DIRECTORY_A, DIRECTORY_B, DIRECTORY_D])
        assert await _visible(service, DIRECTORY_A, DIRECTORY_B, DIRECTORY_D) == [True] * 3
    finally:
        await service.close()


async def test_killed_connection_mid_closure(
    db_url: str, monkeypatch: pytest.MonkeyPatch, fast_retries: None
) -> None:
    """The server kills the session while the closure's transaction is half done: nothing is
    visible; the write is retried on a new connection; if that keeps failing, a clear
    error results."""
    monkeypatch.setattr(pg_dirs, "INSERT_BATCH", 1)
    service = await open_dirs(db_url)
    try:
        await sql(db_url, "CREATE SEQUENCE kills")
        # kill the session inserting B the first time only (sequences ignore rollbacks)
        await _fail_on_insert_of(
            db_url,
            DIRECTORY_B.digest(),
            "IF nextval('kills') = 1 THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF;",
        )
        await put_closure(service, [DIRECTORY_A, DIRECTORY_B, DIRECTORY_D])
        assert (await sql(db_url, "SELECT last_value FROM kills"))[0][0] == 2, "retried once"
        assert await _visible(service, DIRECTORY_A, DIRECTORY_B, DIRECTORY_D) == [True] * 3

        # a session killed at every attempt: the put fails, naming the backend
        await sql(db_url, "DELETE FROM directories")
        await sql(db_url, "ALTER SEQUENCE kills RESTART")
        await sql(db_url, "DROP TRIGGER inject ON directories")
        await sql(db_url, "DROP FUNCTION inject")
        await _fail_on_insert_of(
            db_url, DIRECTORY_B.digest(), "PERFORM pg_terminate_backend(pg_backend_pid());"
        )
        with pytest.raises(StorageError) as info:
            await put_closure(service, [DIRECTORY_A, DIRECTORY_B, DIRECTORY_D])
        assert str(info.value).startswith(
            f"{label_of(db_url)}: put directory closure failed after 3 attempts"
        )
        assert await _visible(service, DIRECTORY_A, DIRECTORY_B, DIRECTORY_D) == [False] * 3
    finally:
        await service.close()


async def test_concurrent_writers_with_overlapping_data(db_url: str, tmp_path: Path) -> None:
    """Two pools (two daemons, in effect) importing overlapping paths at once."""

    def composition(pool_max_size: int) -> Composition:
        table = {"type": "postgresql", "url": db_url, "pool_max_size": pool_max_size}
        comp = store_composition({"directoryservices": {"default": table}})
        comp.add(PATHINFO_SERVICES, "default", PATHINFO_SERVICES.config_from_table("p", table))
        blobs = BLOB_SERVICES.config_from_url(f"objectstore+file://{tmp_path}/blobs")
        comp.add(BLOB_SERVICES, "default", blobs)
        return comp

    stores = [await build_store(composition(n)) for n in (2, 3)]
    assert stores[0].directory.db is not stores[1].directory.db  # type: ignore[attr-defined]
    try:
        await asyncio.gather(
            *(write_synthetic_path(stores[0], seed) for seed in range(12)),
            *(write_synthetic_path(stores[1], seed) for seed in range(6, 18)),
        )
        report = await verify_store(stores[0], no_progress)
        assert report.problems == []
        assert report.checked["path infos"] == 18
    finally:
        for store in stores:
            await store.close()


# --- the server going away -------------------------------------------------------------------


async def test_server_stopped_mid_import(
    db_url: str, server_restored: PostgresServer, fast_retries: None
) -> None:
    server = server_restored
    services = await open_store_from_urls("memory://", db_url, db_url)
    done: list[int] = []
    three_done = asyncio.Event()

    async def import_forever() -> None:
        for seed in range(1000):
            await write_synthetic_path(services, seed)
            done.append(seed)
            if len(done) == 3:
                three_done.set()

    task = asyncio.create_task(import_forever())
    try:
        await asyncio.wait_for(three_done.wait(), 60)
        await asyncio.to_thread(server.stop)
        with pytest.raises(StorageError) as info:
            await asyncio.wait_for(task, 30)
        assert str(info.value).startswith(f"{label_of(db_url)}: ")
        assert "asyncpg" not in type(info.value).__module__
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
    failed = len(done)

    await asyncio.to_thread(server.start)
    # the pool reconnects: the same services work again and see a consistent store
    report = await verify_store(services, no_progress)
    assert report.problems == [], report.problems
    present = {int(i.store_path.name.split("-")[1]) async for i in services.path_info.list()}
    assert present in (set(done), {*done, failed})
    # repeating the interrupted import (and more) succeeds
    for seed in range(failed, failed + 3):
        await write_synthetic_path(services, seed)
    report = await verify_store(services, no_progress)
    assert report.problems == [], report.problems
    assert report.checked["closures"] == failed + 3
    await services.close()


async def test_server_down_at_open(
    db_url: str, server_restored: PostgresServer, fast_retries: None
) -> None:
    await asyncio.to_thread(server_restored.stop)
    with pytest.raises(StorageError) as info:
        await open_dirs(db_url)
    message = str(info.value)
    assert message.startswith(f"{label_of(db_url)}: connect failed after 3 attempts: ")


async def test_reads_retry_across_a_restart(db_url: str, server_restored: PostgresServer) -> None:
    server = server_restored
    infos = await open_infos(db_url)
    try:
        await infos.put(PATH_INFO)
        await asyncio.to_thread(server.stop)

        async def start_later() -> None:
            await asyncio.sleep(0.2)
            await asyncio.to_thread(server.start)

        restart = asyncio.create_task(start_later())
        assert await infos.get(PATH_INFO.store_path.digest) == PATH_INFO
        await restart
    finally:
        await infos.close()


async def test_too_many_connections_is_retried(db_url: str) -> None:
    role = f"r_{secrets.token_hex(4)}"
    await (await open_infos(db_url)).close()  # the schema, created by the superuser
    await sql(db_url, f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 1")
    await sql(db_url, f"GRANT CREATE ON SCHEMA public TO {role}")
    await sql(db_url, f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role}")
    role_url = db_url.replace("postgres@", f"{role}@")
    blocker = await asyncpg.connect(role_url)
    with pytest.raises(asyncpg.TooManyConnectionsError):
        await asyncpg.connect(role_url)

    async def unblock_later() -> None:
        await asyncio.sleep(0.15)
        await blocker.close()

    unblock = asyncio.create_task(unblock_later())
    infos = await open_infos(role_url)  # retried until the blocker is gone
    await unblock
    try:
        await infos.put(PATH_INFO)
        assert await infos.get(PATH_INFO.store_path.digest) == PATH_INFO
    finally:
        await infos.close()


# --- corruption ------------------------------------------------------------------------------


async def test_corrupt_directory_rows_detected(db_url: str) -> None:
    service = await open_dirs(db_url)
    try:
        await put_closure(service, [DIRECTORY_A, DIRECTORY_C])
        # C's child now holds other (valid) bytes; junk stored under its own hash
        await sql(
            db_url,
            "UPDATE directories SET data = $1 WHERE digest = $2",
            DIRECTORY_B.encode(),
            DIRECTORY_A.digest(),
        )
        junk = b"\xff\x00junk"
        await sql(
            db_url,
            "INSERT INTO directories VALUES ($1, $2)",
            blake3.blake3(junk).digest(),
            junk,
        )
        with pytest.raises(StorageError, match="is corrupt"):
            await service.get(DIRECTORY_A.digest())
        with pytest.raises(StorageError, match="is corrupt"):
            _ = [d async for d in service.get_recursive(DIRECTORY_C.digest())]
        with pytest.raises(StorageError, match="is corrupt"):
            _ = [d async for d in service.get_recursive_encoded(DIRECTORY_C.digest())]
        with pytest.raises(StorageError, match="stored but invalid"):
            await service.get(B3Digest.of(junk))
        with pytest.raises(StorageError, match="stored but invalid"):
            _ = [d async for d in service.get_recursive_encoded(B3Digest.of(junk))]
        report = ScrubReport()
        await service.scrub(report, no_progress)
        # A corrupt, the junk, C's two entries pointing at A
        assert len(report.problems) == 4, report.problems
        assert report.checked["directories"] == 1
    finally:
        await service.close()


async def test_corrupt_path_info_rows_detected(db_url: str) -> None:
    infos = await open_infos(db_url)
    try:
        await infos.put(PATH_INFO)
        key = PATH_INFO.store_path.digest
        await sql(db_url, "UPDATE path_infos SET data = $1 WHERE digest = $2", b"\x0a\xff", key)
        with pytest.raises(StorageError, match=f"{key.hex()} in {label_of(db_url)} is invalid"):
            await infos.get(key)
        other = bytes([7]) * 20
        value = path_info_to_proto(PATH_INFO).SerializeToString()
        await sql(db_url, "INSERT INTO path_infos VALUES ($1, $2)", other, value)
        with pytest.raises(StorageError, match=f"under {other.hex()} .* is for"):
            await infos.get(other)
        report = ScrubReport()
        await infos.scrub(report, no_progress)
        assert len(report.problems) == 2
        with pytest.raises(StorageError):
            _ = [i async for i in infos.list()]
    finally:
        await infos.close()


# --- efficiency and maintenance --------------------------------------------------------------


def _tree(depth: int, fanout: int) -> list[Directory]:
    """A closure (leaves first) `depth` levels deep, `fanout` distinct children per level."""
    closure: list[Directory] = []
    level = [Directory([(f"leaf-{i}".encode(), DIRECTORY_A.as_node())]) for i in range(fanout)]
    closure.append(DIRECTORY_A)
    closure.extend(level)
    for d in range(depth):
        level = [
            Directory([(f"d{d}-{i}-{j}".encode(), c.as_node()) for j, c in enumerate(level)])
            for i in range(fanout if d < depth - 1 else 1)
        ]
        closure.extend(level)
    return closure


async def test_get_recursive_round_trips_per_level(db_url: str) -> None:
    service = await open_dirs(db_url)
    try:
        closure = _tree(depth=4, fanout=6)  # 6 levels, 26 directories
        root = await put_closure(service, closure)
        queries = 0
        fetch = service.db.fetch

        async def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal queries
            queries += 1
            return await fetch(*args, **kwargs)

        service.db.fetch = counting  # type: ignore[method-assign]
        got = [d async for d in service.get_recursive(root)]
        assert got[0].digest() == root
        assert len(got) == len({d.digest() for d in closure}) == len(got)
        assert len({d.digest() for d in got}) == len(got)
        assert queries == 6, "one query per level"
        encoded = [d async for d in service.get_recursive_encoded(root)]
        assert encoded == [d.encode() for d in got]
    finally:
        await service.close()


async def test_describe_and_scrub(db_url: str) -> None:
    services = await open_store_from_urls("memory://", db_url, db_url)
    try:
        for seed in range(3):
            await write_synthetic_path(services, seed)
        described = await services.directory.describe()  # type: ignore[attr-defined]
        assert described["url"] == label_of(db_url)
        assert described["directories"] == 6
        described = await services.path_info.describe()  # type: ignore[attr-defined]
        assert described["path infos"] == 3
        report = await verify_store(services, no_progress)
        assert report.problems == []
        assert report.checked["directories"] == 6
        assert report.checked["path infos"] == 3
    finally:
        await services.close()
