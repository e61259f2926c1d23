"""FUSE tests mount the store for real (root and /dev/fuse are needed; CI has both)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.fuse


def require_fuse() -> None:
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        pytest.fail("FUSE tests need root and /dev/fuse")


@contextmanager
def mounted(
    home: Path,
    mountpoint: Path,
    *flags: str,
    env: dict[str, str] | None = None,
    global_flags: tuple[str, ...] = (),
) -> Iterator[subprocess.Popen[bytes]]:
    """`tvix-store GLOBAL_FLAGS mount MOUNTPOINT FLAGS...` over the embedded store at `home`."""
    require_fuse()
    mountpoint.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytvix", *global_flags, "mount", str(mountpoint), *flags],
        cwd=ROOT,
        env={**os.environ, "TVIX_STORE_HOME": str(home), **(env or {})},
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not os.path.ismount(mountpoint):
            if proc.poll() is not None:
                raise RuntimeError(f"mount failed: {proc.stderr.read() if proc.stderr else ''}")
            if time.monotonic() > deadline:
                raise TimeoutError("mount did not appear")
            time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False)
