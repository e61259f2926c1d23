"""Secrets given as files (tokens): read once at start, never from the command line."""

from __future__ import annotations

from pathlib import Path


def read_secret(path: str) -> str:
    """A token from a file (surrounding whitespace removed); ValueError if it is empty."""
    token = Path(path).read_text().strip()
    if not token:
        raise ValueError(f"{path} holds no token")
    return token
