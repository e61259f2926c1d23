"""A real PostgreSQL server for tests and benchmarks.

`postgres_server()` starts one server per process on first use (a fresh cluster in a temp
directory, a free port on 127.0.0.1, trust authentication) and stops it at process exit.
`fresh_database()` creates an empty database `t_<random>` on it, so tests are isolated.
`PostgresServer.stop()` / `start()` take the server down and bring it back (same port and
data) for failure tests. Running as root, the server runs as the `postgres` user.

The cluster trades durability for speed (`fsync=off`): a clean stop keeps all data, which
is all the tests rely on. Set PYTVIX_PG_BIN to choose the PostgreSQL binaries directory.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from tests.servers import free_port, start_in_fresh_dir


def pg_bin_dir() -> Path | None:
    """The directory holding initdb and pg_ctl (newest Debian version), or None."""
    configured = os.environ.get("PYTVIX_PG_BIN")
    if configured:
        return Path(configured)
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    candidates = [c for c in candidates if (c / "pg_ctl").exists()]
    if candidates:
        return candidates[-1]
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


class PostgresServer:
    """One PostgreSQL cluster in `base` (data in base/data, socket in base)."""

    def __init__(self, bin_dir: Path, base: Path) -> None:
        self.bin_dir = bin_dir
        self.base = base
        self.data = base / "data"
        self.port = free_port()
        self.running = False
        self._lock = threading.Lock()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(base, pw.pw_uid, pw.pw_gid)
        self._run(str(bin_dir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")

    @property
    def url(self) -> str:
        """The URL of the `postgres` database (superuser, trust authentication)."""
        return self.database_url("postgres")

    def database_url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start (or restart after `stop`) on the same port; waits until it accepts
        connections. A port taken in the meantime makes it fail."""
        with self._lock:
            if self.running:
                return
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.base} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=300 -c shared_buffers=64MB"
            )
            self._run(
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.base / "server.log"),
                "-o",
                options,
                "-w",
                "start",
            )
            self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`: abort sessions, clean shutdown; `immediate`: crash)."""
        with self._lock:
            if not self.running:
                return
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
            self.running = False

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if self._as_postgres:
            cmd = ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(_quote(a) for a in cmd)]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            log = self.base / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{' '.join(args[:1])} failed ({result.returncode}): "
                f"{result.stdout}{result.stderr}{tail}"
            )


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"


_server: PostgresServer | None = None
_server_lock = threading.Lock()


def postgres_server() -> PostgresServer:
    """The process's PostgreSQL server, started on first use and stopped at exit. Fails the
    calling test if PostgreSQL is not installed."""
    global _server
    with _server_lock:
        if _server is None:
            bin_dir = pg_bin_dir()
            if bin_dir is None or not (bin_dir / "initdb").exists():
                pytest.fail(
                    "PostgreSQL is not installed: run scripts/install-system-deps.sh (apt postgresql)"
                )
            _server = start_in_fresh_dir("pytvix-pg-", lambda base: PostgresServer(bin_dir, base))
        elif not _server.running:
            _server.start()
        return _server


def postgres_url() -> str:
    """The URL of the running server's `postgres` database (starting it if needed)."""
    return postgres_server().url


async def create_database(prefix: str = "t") -> str:
    """Create an empty database `<prefix>_<random>`; returns its URL."""
    server = postgres_server()
    name = f"{prefix}_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(server.url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return server.database_url(name)


async def drop_database(url: str) -> None:
    """Drop a database made by create_database (closing its sessions); a stopped server is
    left alone (the whole cluster goes at exit)."""
    server = postgres_server()
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(server.url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_database(prefix: str = "t") -> AsyncIterator[str]:
    """A new empty database for the duration of the block (dropped afterwards); yields its
    URL."""
    url = await create_database(prefix)
    try:
        yield url
    finally:
        await drop_database(url)
