"""Run every benchmark module in bench/ (or those named on the command line)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

from bench.common import CURRENT, settle_after_deletes
from pytvix.allocator import tune_allocator


def main() -> int:
    tune_allocator()  # in-process measurements run as the tvix-store command would
    wanted = sys.argv[1:]
    settle_after_deletes()
    names = sorted(
        m.name
        for m in pkgutil.iter_modules([str(Path(__file__).parent)])
        if m.name.startswith("bench_")
    )
    for name in names:
        if wanted and name not in wanted and name.removeprefix("bench_") not in wanted:
            continue
        print(f"== {name}", flush=True)
        CURRENT["bench"] = name.removeprefix("bench_")
        importlib.import_module(f"bench.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
