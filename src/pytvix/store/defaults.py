"""The embedded default store: one data directory used when no service address is given.

Layout below the data directory:
- `blobs/`      blobs and chunks in the object store layout (objectstore+file://)
- `store.lmdb/` one LMDB environment with the `directory` and `pathinfo` tables
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def store_home(env: Mapping[str, str] = os.environ) -> Path:
    """`$TVIX_STORE_HOME`, else `$XDG_DATA_HOME/pytvix`, else `~/.local/share/pytvix`."""
    if env.get("TVIX_STORE_HOME"):
        return Path(env["TVIX_STORE_HOME"]).expanduser().absolute()
    if env.get("XDG_DATA_HOME"):
        return Path(env["XDG_DATA_HOME"]).expanduser().absolute() / "pytvix"
    return Path.home() / ".local" / "share" / "pytvix"


def embedded_urls(home: Path) -> tuple[str, str, str]:
    """(blob, directory, path info) service URLs of the embedded store at `home`."""
    lmdb_url = f"lmdb://{home / 'store.lmdb'}"
    return f"objectstore+file://{home / 'blobs'}", lmdb_url, lmdb_url
