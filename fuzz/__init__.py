"""Coverage-guided fuzz targets for every parser of untrusted bytes (run: `python -m fuzz`).

Each `fuzz_<target>.py` module exposes `test_one_input(data: bytes) -> None`, which swallows
exactly the documented error types for bad input and raises on anything else (a bug). Seed
corpora are in `fuzz/corpus/<target>/` (regenerate with `python -m fuzz.make_corpus`).
"""

from __future__ import annotations

from pathlib import Path

TARGETS = (
    "nar",
    "narinfo",
    "directory",
    "pathinfo",
    "stat_blob",
    "store_path",
    "narbridge_names",
    "composition",
    "compressed",
)
"""Target names; the module of target `t` is `fuzz.fuzz_<t>`."""

FUZZ_DIR = Path(__file__).resolve().parent
CORPUS_DIR = FUZZ_DIR / "corpus"


def module_name(target: str) -> str:
    """The module implementing `target`."""
    return f"fuzz.fuzz_{target}"


def corpus_files(target: str) -> list[Path]:
    """The checked-in seed inputs of `target`, sorted by name."""
    return sorted(p for p in (CORPUS_DIR / target).iterdir() if p.is_file())
