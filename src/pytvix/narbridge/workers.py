"""Serving nar-bridge from several processes (`--workers N`), so that NAR downloads use every
core (one Python process serves on one).

The parent checks the listen address, then forks the workers before any thread or event
loop exists. On TCP each worker listens on a socket of its own bound to the same port
(SO_REUSEPORT), so the kernel spreads connections over them; sharing one listening socket
would let whichever worker wakes first accept a whole burst of connections (asyncio accepts
up to its backlog at a time), leaving the other cores idle. A unix socket is shared. The
parent forwards SIGINT and SIGTERM to the workers and returns once all have ended; a worker
that dies ends the others, so a supervisor restarts the whole.
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


class Listener:
    """The listen address of a group of workers: `for_worker()` in each worker gives the
    socket it serves on. The parent holds the address (a bound socket) until `close()`."""

    def __init__(self, listen: str) -> None:
        address = ListenAddress.parse(listen)
        try:
            if address.unix_path is not None:
                remove_stale_socket(address.unix_path)
                self._held = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._held.bind(str(address.unix_path))
                self._held.listen(BACKLOG)
                self._tcp: tuple[str, int, socket.AddressFamily] | None = None
                return
            if address.host is None or address.port is None:
                raise ListenAddressError(f"cannot listen on {listen}")
            family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
            # bound, not listening: it keeps the port (and proves it free) without taking
            # connections
            self._held = socket.socket(family, socket.SOCK_STREAM)
            self._held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            self._held.bind((address.host, address.port))
            self._tcp = (address.host, self._held.getsockname()[1], family)
        except OSError as e:
            raise ListenAddressError(f"cannot listen on {listen}: {e.strerror}") from e

    def for_worker(self) -> socket.socket:
        """A listening socket for the calling worker."""
        if self._tcp is None:
            return self._held
        host, port, family = self._tcp
        return socket.create_server((host, port), family=family, backlog=BACKLOG, reuse_port=True)

    def close(self) -> None:
        self._held.close()


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
