"""Without the optional drivers, the embedded store works and URLs that need a driver name the
pip extra to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.cli import ROOT

WITHOUT_EXTRAS = """
import sys
for name in ("obstore", "asyncpg", "nats", "pyfuse3", "trio"):
    sys.modules[name] = None  # as if not installed: importing it fails
from pytvix.cli.store import main
sys.argv[0] = "tvix-store"
main()
"""


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS, *args],
        cwd=ROOT,
        env={"TVIX_STORE_HOME": str(home), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_embedded_store_needs_no_extra(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "f").write_text("x\n")
    imported = run(tmp_path / "home", "import", str(tree))
    assert imported.returncode == 0, imported.stderr
    dumped = run(tmp_path / "home", "cat", imported.stdout.strip() + "/f")
    assert dumped.stdout == "x\n"


def test_missing_drivers_name_their_extra(tmp_path: Path) -> None:
    cases = {
        ("--blob-service-addr", "objectstore+s3://bucket/p"): "pytvix[s3]",
        ("--path-info-service-addr", "postgresql://u@127.0.0.1:1/db"): "pytvix[postgres]",
        ("--directory-service-addr", "nats://127.0.0.1:1"): "pytvix[nats]",
    }
    for flags, extra in cases.items():
        result = run(tmp_path / "home", "info", *flags)
        assert result.returncode == 1, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, result.stderr
        assert extra in lines[0]
    (tmp_path / "mnt").mkdir()
    mount = run(tmp_path / "home", "mount", str(tmp_path / "mnt"))
    assert mount.returncode == 1
    assert "pytvix[fuse]" in mount.stderr
