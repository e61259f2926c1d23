"""`python -m fuzz <target> [--seconds N] [--workdir DIR] [libFuzzer args...]` (`--list`).

Runs one target under atheris with the pytvix modules instrumented for coverage. New
inputs go to `<workdir>/<target>/corpus` (default workdir `fuzz/.work`, not checked in), the
checked-in seeds in `fuzz/corpus/<target>` are read too, crashes are written to
`<workdir>/<target>/crash-*`. `--replay` only runs every seed (and work corpus) input once,
without atheris. Any further arguments go to libFuzzer (e.g. `-max_len=65536`,
`-runs=1000`, or a crash file to reproduce it).
"""

from __future__ import annotations

import argparse
import importlib
import resource
import sys
from pathlib import Path

from fuzz import CORPUS_DIR, FUZZ_DIR, TARGETS, corpus_files, module_name

INSTRUMENTED = ["pytvix", "fuzz", "tomllib"]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("target", nargs="?", choices=TARGETS)
    parser.add_argument("--list", action="store_true", help="print the target names and exit")
    parser.add_argument("--seconds", type=int, default=60, help="stop after N seconds")
    parser.add_argument("--workdir", type=Path, default=FUZZ_DIR / ".work")
    parser.add_argument("--replay", action="store_true", help="run the corpus once, no fuzzing")
    args, libfuzzer_args = parser.parse_known_args(argv)
    if args.list:
        print(" ".join(TARGETS))
        return 0
    if args.target is None:
        parser.error("a target is required (one of: " + ", ".join(TARGETS) + ")")

    work = args.workdir / args.target
    corpus = work / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    if args.replay:
        target = importlib.import_module(module_name(args.target))
        files = corpus_files(args.target) + sorted(corpus.iterdir())
        for path in files:
            target.test_one_input(path.read_bytes())
        print(f"{args.target}: {len(files)} inputs replayed without a failure")
        return 0

    import atheris  # type: ignore[import-untyped]  # noqa: PLC0415 - not needed to replay

    with atheris.instrument_imports(include=INSTRUMENTED):
        target = importlib.import_module(module_name(args.target))
    inputs = [a for a in libfuzzer_args if not a.startswith("-")]
    flags = [a for a in libfuzzer_args if a.startswith("-")]
    defaults = {
        "-max_total_time": str(args.seconds),
        "-timeout": "10",
        "-rss_limit_mb": str(RSS_LIMIT_MB + inherited_peak_rss_mb()),
        "-max_len": "8192",
        "-artifact_prefix": f"{work}/",
        "-print_final_stats": "1",
    }
    given = {f.split("=", 1)[0] for f in flags}
    flags += [f"{k}={v}" for k, v in defaults.items() if k not in given]
    dirs = [] if inputs else [str(corpus), str(CORPUS_DIR / args.target)]
    atheris.Setup([sys.argv[0], *flags, *dirs, *inputs], target.test_one_input)
    atheris.Fuzz()
    return 0


RSS_LIMIT_MB = 2048


def inherited_peak_rss_mb() -> int:
    """The peak RSS this process reports before fuzzing: Linux carries a parent's peak over
    fork and exec, and libFuzzer's limit is on the peak (a fuzz run started from a large
    process would otherwise be killed at once)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
