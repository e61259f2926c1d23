"""Serving nar-bridge from several processes (`--workers N`), so that NAR downloads use every
core (one Python process serves on one).

The parent opens the listening socket, then forks the workers before any thread or event
loop exists; each serves on the inherited socket (the kernel hands each connection to one
of them). The parent forwards SIGINT and SIGTERM to the workers and returns once all have
ended; a worker that dies ends the others, so a supervisor restarts the whole.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable

from pytvix.store.listen import ListenAddress, ListenAddressError, remove_stale_socket

log = logging.getLogger(__name__)

BACKLOG = 1024


def open_listener(listen: str) -> socket.socket:
    """A listening socket on `listen` (host:port or a unix socket path)."""
    address = ListenAddress.parse(listen)
    try:
        if address.unix_path is not None:
            remove_stale_socket(address.unix_path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(str(address.unix_path))
            sock.listen(BACKLOG)
            return sock
        if address.host is None or address.port is None:
            raise ListenAddressError(f"cannot listen on {listen}")
        host = address.host.strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host, address.port), family=family, backlog=BACKLOG)
    except OSError as e:
        raise ListenAddressError(f"cannot listen on {listen}: {e.strerror}") from e


def run_workers(count: int, serve: Callable[[], int]) -> int:
    """Fork `count` processes running `serve` (which returns an exit status); the status of
    the group: 0 if every worker ended well."""
    workers: list[int] = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the worker's side runs in the child
            os._exit(_serve_in_child(serve))
        workers.append(pid)
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in workers:
            _kill(pid, signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    status = 0
    while workers:
        pid, code = os.wait()
        workers.remove(pid)
        if code != 0:
            status = 1
            if not stopping:
                log.error("nar-bridge worker %d ended (status %d): stopping the others", pid, code)
                forward(signal.SIGTERM, None)
    return status


def _serve_in_child(serve: Callable[[], int]) -> int:
    try:
        return serve()
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        log.exception("nar-bridge worker %d failed", os.getpid())
        return 1


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
