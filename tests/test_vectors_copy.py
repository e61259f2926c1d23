"""The vectors copied into tests/data must equal the spec's, where the spec is checked out."""

from pathlib import Path

import pytest

from tests.conftest import DATA

SPEC = Path(__file__).resolve().parents[1].parent / "shared" / "spec" / "vectors.json"


@pytest.mark.skipif(not SPEC.exists(), reason="../shared/spec not checked out next to the repo")
def test_vectors_copy_matches_spec() -> None:
    assert (DATA / "vectors.json").read_bytes() == SPEC.read_bytes()
