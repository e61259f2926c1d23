"""Composition TOML: only ConfigError; compositions of in-memory services also build."""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import tempfile
import tomllib
from typing import Any

from fuzz._async import run
from pytvix.castore.composition import Composition, ConfigError
from pytvix.store.composition import STORE_KINDS

_FILE = os.path.join(tempfile.gettempdir(), f"pytvix-fuzz-composition-{os.getpid()}.toml")


@atexit.register
def _remove() -> None:
    with contextlib.suppress(OSError):
        os.unlink(_FILE)


_SAFE_TYPES = frozenset({"memory", "combined", "cache", "lru"})
_SAFE_URL = re.compile(r"(?<![\w+.-])(?:memory|cache)://")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _in_memory(data: dict[str, Any]) -> bool:
    """Only types that build without I/O, referring to others by name or memory/cache URL."""
    for instances in data.values():
        for table in instances.values():
            if table.get("type") not in _SAFE_TYPES:
                return False
    return not any("://" in _SAFE_URL.sub("", s) for s in _strings(data))


async def _build_all(composition: Composition, data: dict[str, Any]) -> None:
    try:
        for kind in STORE_KINDS:
            for name in data.get(kind.section, {}):
                with contextlib.suppress(ConfigError):
                    await composition.build(kind, name)
    finally:
        await composition.close()


def test_one_input(data: bytes) -> None:
    """Load the input as a composition file (as `--experimental-store-composition` does)."""
    with open(_FILE, "wb") as f:
        f.write(data)
    try:
        composition = Composition.from_toml(_FILE, STORE_KINDS)
    except ConfigError:
        return
    config = tomllib.loads(data.decode())
    if _in_memory(config):
        run(_build_all(composition, config))
