"""Running the `tvix-store` command as a user does: a subprocess over a given store home."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def tvix_store(
    home: Path | None,
    *args: str,
    stdin: bytes | None = None,
    check: bool = False,
    text: bool = False,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[Any]:
    """`python -m pytvix ARGS` with TVIX_STORE_HOME=`home` (None: the test session's)."""
    environment = {**os.environ, **(env or {})}
    if home is not None:
        environment["TVIX_STORE_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "pytvix", *args],
        cwd=ROOT,
        env=environment,
        input=stdin.decode() if text and stdin is not None else stdin,
        capture_output=True,
        text=text,
        timeout=timeout,
        check=check,
    )
