"""Regressions found by fuzzing composition files (fuzz/fuzz_composition.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytvix.castore.composition import BLOB_SERVICES, Composition, ConfigError


@pytest.mark.xfail(
    strict=True,
    reason="open: from_toml lets tomllib's UnicodeDecodeError escape instead of ConfigError",
)
def test_non_utf8_composition_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "store.toml"
    path.write_bytes(b'[blobservices.default]\ntype = "memory"\n\xf7\n')
    with pytest.raises(ConfigError, match="not valid"):
        Composition.from_toml(path, [BLOB_SERVICES])
