"""Compatibility tests run the real `nix` from Debian's nix-bin (installed by .ci/run)."""

from __future__ import annotations

import shutil

import pytest

pytestmark = pytest.mark.compat


@pytest.fixture(autouse=True)
def _nix_installed() -> None:
    if shutil.which("nix-store") is None:
        pytest.fail("nix-store is not installed (apt-get install nix-bin)")
