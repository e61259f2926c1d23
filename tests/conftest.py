"""Shared pytest set-up: a hermetic environment for every test, and the spec's test vectors.

The suite must pass on a new machine with nothing set up by hand, and must not be steered by
state an earlier run or the developer left behind. So before any test runs, the process
environment (inherited by every subprocess: nix, tvix-store, nar-bridge, servers) is pinned:
- Nix reads no machine or user configuration (`NIX_CONF_DIR`, `NIX_USER_CONF_FILES` point at
  an empty file); builds need no `nixbld` group and no sandbox; no substituters are asked
  (there is no network); its narinfo cache lives in this session's temporary `XDG_CACHE_HOME`.
- The CLI's default store (`TVIX_STORE_HOME`) is a fresh temporary directory, and service
  addresses set in the developer's shell (`BLOB_SERVICE_ADDR`, ...) are removed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"

NIX_SETTINGS = "\n".join(
    [
        "experimental-features = nix-command",
        "build-users-group =",
        "sandbox = false",
        "substituters =",
    ]
)

CLI_VARIABLES = (
    "BLOB_SERVICE_ADDR",
    "DIRECTORY_SERVICE_ADDR",
    "PATH_INFO_SERVICE_ADDR",
    "EXPERIMENTAL_STORE_COMPOSITION",
    "LISTEN_ADDRESS",
    "NAR_BRIDGE_LISTEN",
    "SIGNING_KEY_FILE",
    "UPLOAD_TOKEN_FILE",
    "NIX_ATTRS_JSON_FILE",
    "METRICS_LISTEN",
    "STORE_STATS_INTERVAL",
    "GC_REPORT_FILE",
    "LOG_FORMAT",
    "ACCESS_LOG",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


def hermetic_environment(base: Path) -> dict[str, str | None]:
    """The variables to set (None: to remove) so tests see no machine or user state."""
    (base / "nix").mkdir()
    empty = base / "nix" / "nix.conf"
    empty.write_text("")
    env: dict[str, str | None] = {
        "NIX_CONF_DIR": str(base / "nix"),
        "NIX_USER_CONF_FILES": str(empty),
        "NIX_CONFIG": NIX_SETTINGS,
        "XDG_CACHE_HOME": str(base / "cache"),
        "XDG_CONFIG_HOME": str(base / "config"),
        "XDG_DATA_HOME": str(base / "data"),
        "TVIX_STORE_HOME": str(base / "store"),
        "HOME": os.environ.get("HOME") or str(base),
    }
    env.update(dict.fromkeys(CLI_VARIABLES))
    return env


@pytest.fixture(autouse=True, scope="session")
def _hermetic_environment() -> Iterator[None]:
    base = Path(tempfile.mkdtemp(prefix="pytvix-tests-"))
    wanted = hermetic_environment(base)
    saved = {name: os.environ.get(name) for name in wanted}
    for name, value in wanted.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(base, ignore_errors=True)


def load_vectors() -> dict[str, Any]:
    """The spec's vectors.json (a copy lives in tests/data; test_vectors_copy checks it)."""
    return json.loads((DATA / "vectors.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def vectors() -> dict[str, Any]:
    return load_vectors()
