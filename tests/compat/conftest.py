"""Compatibility tests run the real `nix` from Debian's nix-bin (installed by .ci/run)."""

from __future__ import annotations

import os
import shutil

import pytest

pytestmark = pytest.mark.compat


@pytest.fixture(autouse=True)
def _nix_env(monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("nix-store") is None:
        pytest.fail("nix-store is not installed (apt-get install nix-bin)")
    monkeypatch.setenv("NIX_CONFIG", "experimental-features = nix-command")
    os.environ.setdefault("HOME", "/root")
