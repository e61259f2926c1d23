"""The fuzz targets (fuzz/, `python -m fuzz`) in CI: every checked-in seed goes through its
target in-process, then each target fuzzes briefly under atheris in a subprocess. The long
runs (`make fuzz`, 10 minutes per target) are done by hand, not here."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz import TARGETS, corpus_files, module_name

ROOT = Path(__file__).resolve().parent.parent
SECONDS = int(os.environ.get("PYTVIX_FUZZ_SMOKE_SECONDS", "1"))


@pytest.mark.parametrize("target", TARGETS)
def test_seed_corpus(target: str) -> None:
    files = corpus_files(target)
    assert len(files) >= 3, f"fuzz/corpus/{target} needs seeds (python -m fuzz.make_corpus)"
    test_one_input = importlib.import_module(module_name(target)).test_one_input
    for path in files:
        test_one_input(path.read_bytes())


@pytest.mark.parametrize("target", TARGETS)
def test_short_fuzz_run(target: str, tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    proc = subprocess.run(
        [sys.executable, "-m", "fuzz", target, f"--seconds={SECONDS}", f"--workdir={tmp_path}"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60 + SECONDS,
    )
    crashes = sorted(p.name for p in (tmp_path / target).glob("crash-*"))
    assert not crashes, proc.stderr[-4000:]
    assert proc.returncode == 0, proc.stderr[-4000:]
    runs = re.search(r"Done (\d+) runs", proc.stderr)
    assert runs is not None, proc.stderr[-2000:]
    assert int(runs.group(1)) > len(corpus_files(target)), proc.stderr[-2000:]
