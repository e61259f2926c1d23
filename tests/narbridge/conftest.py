"""Helpers for nar-bridge tests: run the bridge as a subprocess, build store paths with Nix."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def bridge(home: Path, *flags: str) -> Iterator[str]:
    """`nar-bridge` on a fresh port over the embedded store at `home`; yields its URL."""
    with bridge_process(home, *flags) as (url, _):
        yield url


@contextmanager
def bridge_process(
    home: Path, *flags: str, port: int | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """As `bridge` (on `port`, default a free one), yielding the URL and the process (its log
    goes to a file beside `home`: a pipe nobody reads would stop a bridge that logs much)."""
    port = port or free_port()
    log = home.with_name(f"{home.name}-bridge-{port}.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from pytvix.cli.narbridge import main; main()",
                "-l",
                f"127.0.0.1:{port}",
                *flags,
            ],
            cwd=ROOT,
            env={**os.environ, "TVIX_STORE_HOME": str(home)},
            stderr=stderr,
        )
    try:
        wait_for_port(port, proc, log.read_text)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def nix(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nix", *args], capture_output=True, text=True, check=check, timeout=300)


def build(name: str, content: str) -> str:
    """An input-addressed store path (signature checks apply to these)."""
    expr = (
        f'derivation {{ name = "{name}"; system = builtins.currentSystem; builder = "/bin/sh";'
        f' args = ["-c" "echo {content} > $out"]; }}'
    )
    out = subprocess.run(
        ["nix-build", "--no-out-link", "-E", expr],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name in ("good", "bad"):
        sk, pk = tmp_path / f"{name}.sk", tmp_path / f"{name}.pk"
        subprocess.run(
            ["nix-store", "--generate-binary-cache-key", f"{name}-cache-1", str(sk), str(pk)],
            check=True,
        )
        out[name + "_secret"], out[name + "_public"] = sk, pk
    return out
