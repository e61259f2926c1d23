"""The embedded default store: one data directory used when no service address is given.

Layout below the data directory:
- `store.lmdb/` one LMDB environment with the tables `directory`, `pathinfo`, `blob` (small
                blobs, and the records of large ones) and `blob_written`
- `data/`       large blobs as whole files (castore.blobservice.local)
Stores made by earlier versions keep their blobs in `blobs/` in upstream's object layout
(objectstore+file://) until `tvix-store migrate` moves them.
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
    """(blob, directory, path info) service URLs of the embedded store at `home` (a store
    still in the old object layout keeps it until `tvix-store migrate`)."""
    lmdb_url = f"lmdb://{home / 'store.lmdb'}"
    blobs = legacy_blob_url(home) if uses_legacy_layout(home) else f"local://{home}"
    return blobs, lmdb_url, lmdb_url


def uses_legacy_layout(home: Path) -> bool:
    """Whether the store at `home` keeps its blobs in the object layout of earlier versions
    (`blobs/blobs/b3`, `blobs/chunks/b3`)."""
    return any((home / "blobs" / kind).is_dir() for kind in ("blobs", "chunks"))


def legacy_blob_url(home: Path) -> str:
    return f"objectstore+file://{home / 'blobs'}"
