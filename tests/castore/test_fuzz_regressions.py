"""Regressions found by fuzzing composition files (fuzz/fuzz_composition.py): tomllib's
UnicodeDecodeError and RecursionError escaped from_toml (fixed in fc98ed8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytvix.castore.composition import BLOB_SERVICES, Composition, ConfigError


def test_non_utf8_composition_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "store.toml"
    path.write_bytes(b'[blobservices.default]\ntype = "memory"\n\xf7\n')
    with pytest.raises(ConfigError, match="not valid"):
        Composition.from_toml(path, [BLOB_SERVICES])


def test_deeply_nested_composition_file_is_a_config_error(tmp_path: Path) -> None:
    # found by fuzz_composition: `far =[[ [ [[...` nested past the recursion limit
    path = tmp_path / "store.toml"
    path.write_text("far = " + "[" * 5000)
    with pytest.raises(ConfigError):
        Composition.from_toml(path, [BLOB_SERVICES])
