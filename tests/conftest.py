"""Shared pytest fixtures: the spec's test vectors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"


def load_vectors() -> dict[str, Any]:
    """The spec's vectors.json (a copy lives in tests/data; test_vectors_copy checks it)."""
    return json.loads((DATA / "vectors.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def vectors() -> dict[str, Any]:
    return load_vectors()
