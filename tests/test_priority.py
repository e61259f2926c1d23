"""Background maintenance yields the CPU and the disk: `gc` and `trim-cache` lower their own
priority (pytvix.cli.priority), in threads they start later too. Each case runs in its own
process, so this test process keeps its priority."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytvix.cli.priority import BACKGROUND_NICE, IOPRIO_CLASS_BEST_EFFORT, IOPRIO_LOWEST_LEVEL
from tests.cli import ROOT, tvix_store

PROBE = """
import json, os, sys, threading
from pytvix.cli.priority import apply_priority, io_priority
apply_priority(sys.argv[1])
seen = {}
def probe():
    seen["thread"] = [os.getpriority(os.PRIO_PROCESS, 0), io_priority()]
worker = threading.Thread(target=probe)
worker.start()
worker.join()
seen["main"] = [os.getpriority(os.PRIO_PROCESS, 0), io_priority()]
print(json.dumps(seen))
"""


def probe(priority: str) -> dict[str, list[object]]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, priority],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, list[object]] = json.loads(out.stdout)
    return result


def test_background_lowers_cpu_and_io_priority_of_later_threads() -> None:
    lowest = [BACKGROUND_NICE, [IOPRIO_CLASS_BEST_EFFORT, IOPRIO_LOWEST_LEVEL]]
    assert probe("background") == {"thread": lowest, "main": lowest}


def test_normal_changes_nothing() -> None:
    before = probe("normal")
    assert before["main"][0] == 0
    assert before["thread"] == before["main"]
    assert before["main"][1] != [IOPRIO_CLASS_BEST_EFFORT, IOPRIO_LOWEST_LEVEL]


@pytest.mark.parametrize("command", [["gc"], ["trim-cache", "--max-size", "1G"]])
def test_maintenance_commands_take_the_option(command: list[str], tmp_path: Path) -> None:
    home = tmp_path / "home"
    help_text = tvix_store(home, *command, "--help", text=True).stdout
    assert "--priority [background|normal]" in help_text
    assert "[default: background]" in help_text
    normal = tvix_store(home, *command, "--priority", "normal", "--dry-run", "--json", text=True)
    if command == ["gc"]:
        assert normal.returncode == 0, normal.stderr
        assert json.loads(normal.stdout)["dry_run"] is True
    else:  # the embedded store has no near cache to trim: a clear error, not a traceback
        assert normal.returncode == 1
        assert "Traceback" not in normal.stderr
