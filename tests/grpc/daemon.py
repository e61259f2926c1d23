"""Helpers to run `tvix-store daemon` as a subprocess in tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def wait_for(path_or_port: Path | int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited early: {proc.stderr.read() if proc.stderr else ''}")
        if isinstance(path_or_port, Path):
            if path_or_port.exists():
                return
        else:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", path_or_port)) == 0:
                    return
        time.sleep(0.05)
    raise TimeoutError("daemon did not start listening")


@contextmanager
def daemon(home: Path, listen: str, *extra: str) -> Iterator[subprocess.Popen[bytes]]:
    """`tvix-store daemon -l LISTEN` on the embedded store at `home`, stopped at exit."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytvix", "daemon", "-l", listen, *extra],
        cwd=ROOT,
        env={**os.environ, "TVIX_STORE_HOME": str(home)},
        stderr=subprocess.PIPE,
    )
    try:
        target: Path | int = (
            Path(listen) if listen.startswith("/") else int(listen.rsplit(":", 1)[1])
        )
        wait_for(target, proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def service_flags(url: str, path_info: str | None = None) -> list[str]:
    """The three service address flags: `url` for all (or `path_info` for path infos)."""
    return [
        "--blob-service-addr",
        url,
        "--directory-service-addr",
        url,
        "--path-info-service-addr",
        path_info or url,
    ]
