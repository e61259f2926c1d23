"""Observability's cost when it is off, and the log formats."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

from pytvix.observability.logs import JsonFormatter, TextFormatter
from tests.cli import ROOT


def test_commands_load_no_metrics_or_tracing_library_unless_asked() -> None:
    """Starting `tvix-store` or `nar-bridge` imports neither prometheus_client nor
    OpenTelemetry (they add tens of milliseconds to every command's start)."""
    code = (
        "import sys; import pytvix.cli.store, pytvix.cli.narbridge; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'prometheus_client', 'opentelemetry'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def record(message: str, **fields: object) -> logging.LogRecord:
    made = logging.LogRecord("pytvix.test", logging.INFO, __file__, 1, message, (), None)
    if fields:
        made.fields = fields
    return made


def test_json_lines_carry_the_fields() -> None:
    line = JsonFormatter().format(record("GET /x 200", method="GET", status=200, path="/x y"))
    parsed = json.loads(line)
    assert parsed["message"] == "GET /x 200"
    assert (parsed["method"], parsed["status"], parsed["path"]) == ("GET", 200, "/x y")
    assert parsed["level"] == "INFO"
    assert parsed["logger"] == "pytvix.test"
    assert parsed["time"].endswith("Z")
    assert "\n" not in line


def test_text_lines_append_the_fields_as_logfmt() -> None:
    line = TextFormatter().format(record("GET /x 200", status=200, path="/x y", agent=""))
    assert line.endswith(' GET /x 200 status=200 path="/x y" agent=""')
    assert TextFormatter().format(record("plain")).endswith("pytvix.test: plain")
