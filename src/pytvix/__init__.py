"""pytvix: a content-addressed store, wire-compatible with tvix-castore and tvix-store.

`pytvix.open_store(...)` (async) and `pytvix.open_store_sync(...)` open a store in one line
(see `pytvix.api`); they are loaded on first use, so `import pytvix` stays cheap.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["open_store", "open_store_sync"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from pytvix import api  # noqa: PLC0415 (lazy: the CLI imports this package first)

        return getattr(api, name)
    raise AttributeError(f"module 'pytvix' has no attribute {name!r}")
