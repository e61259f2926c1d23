"""Log formats: `text` (the classic line; structured fields appended as key=value) and `json`
(one object per line: time, level, logger, message, the record's fields, and trace_id and
span_id while a span is current). A record carries structured fields in `extra={"fields":
{...}}` (the HTTP request log does)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from pytvix.observability import SWITCHES

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _trace_fields() -> dict[str, str]:
    if not SWITCHES.tracing:
        return {}
    from pytvix.observability.tracing import current_ids  # noqa: PLC0415

    ids = current_ids()
    return {} if ids is None else {"trace_id": ids[0], "span_id": ids[1]}


def logfmt_value(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\\\n'):
        return json.dumps(text)
    return text


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {**getattr(record, "fields", {}), **_trace_fields()}
        if not fields:
            return line
        pairs = " ".join(f"{k}={logfmt_value(v)}" for k, v in fields.items())
        head, sep, rest = line.partition("\n")  # a traceback stays below the line
        return f"{head} {pairs}{sep}{rest}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        created = time.gmtime(record.created)
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", created) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(getattr(record, "fields", {}))
        out.update(_trace_fields())
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure(level: str, fmt: str) -> None:
    """Log to stderr at `level` in the format `fmt` (text or json)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
