"""A real NATS server with JetStream for tests and benchmarks.

`nats_server()` starts one `nats-server -js` per process on first use (a free port on
127.0.0.1, storage in a temp directory) and stops it at process exit. Tests isolate by bucket
prefix: `unique_prefix()` gives a fresh one, `delete_buckets()` removes a prefix's buckets.
`NatsServer.stop()` / `start()` take the server down and bring it back (same port and data)
for failure tests. Set PYTVIX_NATS_SERVER to choose the binary.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
import pytest

from tests.servers import free_port, start_in_fresh_dir


def nats_server_binary() -> str | None:
    return os.environ.get("PYTVIX_NATS_SERVER") or shutil.which("nats-server")


class NatsServer:
    """One nats-server with JetStream storing in `base`."""

    def __init__(self, binary: str, base: Path) -> None:
        self.binary = binary
        self.base = base
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start (or restart after `stop`) on the same port and data; waits until it
        accepts clients."""
        with self._lock:
            if self.running:
                return
            command = [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js"]
            command += ["-sd", str(self.base / "jetstream")]
            log = open(self.base / "server.log", "ab")
            try:
                self._process = subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            finally:
                log.close()
            self._wait_ready()

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"nats-server exited: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(4096).startswith(b"INFO"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"nats-server did not come up: {self.log_tail()}")

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server: a clean shutdown, or SIGKILL with `kill`."""
        with self._lock:
            process, self._process = self._process, None
            if process is None or process.poll() is not None:
                return
            process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def destroy(self) -> None:
        try:
            self.stop(kill=True)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def log_tail(self) -> str:
        log = self.base / "server.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""


_server: NatsServer | None = None
_server_lock = threading.Lock()


def nats_server() -> NatsServer:
    """The process's NATS server, started on first use (and again if a test stopped it),
    stopped at exit. Fails the calling test if nats-server is not installed."""
    global _server
    with _server_lock:
        if _server is None:
            binary = nats_server_binary()
            if binary is None:
                pytest.fail(
                    "nats-server is not installed: run scripts/install-system-deps.sh (apt nats-server)"
                )
            _server = start_in_fresh_dir("pytvix-nats-", lambda base: NatsServer(binary, base))
        elif not _server.running:
            _server.start()
        return _server


def unique_prefix(prefix: str = "t") -> str:
    """A bucket prefix no other test uses."""
    return f"{prefix}{secrets.token_hex(6)}"


BUCKET_STREAMS = (
    "KV_{}-chunks",
    "KV_{}-blobs",
    "KV_{}-directories",
    "KV_{}-pathinfo",
    "KV_{}-reads",
    "KV_{}-pins",
    "KV_{}-locks",
    "OBJ_{}-large",
)


async def delete_buckets(url: str, prefix: str) -> None:
    """Delete the buckets the NATS backends create under `prefix`; a stopped server is left
    alone (its data goes at exit)."""
    try:
        nc = await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=1)
    except (nats.errors.Error, OSError):
        return
    try:
        js = nc.jetstream()
        for template in BUCKET_STREAMS:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(template.format(prefix))
    except (nats.errors.Error, OSError):
        pass
    finally:
        await nc.close()
