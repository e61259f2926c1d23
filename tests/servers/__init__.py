"""Real servers (Ceph radosgw, PostgreSQL, NATS) started on 127.0.0.1 by tests and benches."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar


class Server(Protocol):
    def start(self) -> None: ...
    def destroy(self) -> None: ...


S = TypeVar("S", bound=Server)


def start_in_fresh_dir(prefix: str, make: Callable[[Path], S]) -> S:
    """`make(base)` in a new directory under /tmp (world-readable: servers may drop root),
    started, and destroyed at exit; the directory is removed if starting fails."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(base, 0o755)
    try:
        server = make(base)
        server.start()
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    atexit.register(server.destroy)
    return server


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes], failure: Callable[[], str], timeout: float = 30
) -> None:
    """Until something listens on 127.0.0.1:`port`; RuntimeError(`failure()`) if `proc`
    exits first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(failure())
        time.sleep(0.05)
