"""A real Prometheus server (Debian's `prometheus`) scraping given targets, for tests.

`Prometheus(base, targets)` writes a configuration scraping each job's `host:port` every
second, starts the server on a free port of 127.0.0.1 with its storage under `base`, and
offers the HTTP query API (`query`, `wait_for`). Set PYTVIX_PROMETHEUS to choose the binary.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.servers import free_port

CONFIG = """global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
"""


def prometheus_binary() -> str:
    found = os.environ.get("PYTVIX_PROMETHEUS") or shutil.which("prometheus")
    if found is None:
        pytest.fail("prometheus is not installed: run scripts/install-system-deps.sh")
    return found


class Prometheus:
    def __init__(self, base: Path, targets: dict[str, str]) -> None:
        self.base = base
        self.port = free_port()
        jobs = "".join(
            f"  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
            for job, target in targets.items()
        )
        base.mkdir(parents=True, exist_ok=True)
        (base / "prometheus.yml").write_text(CONFIG + jobs)
        self._log = open(base / "prometheus.log", "wb")
        self._process = subprocess.Popen(
            [
                prometheus_binary(),
                f"--config.file={base / 'prometheus.yml'}",
                f"--storage.tsdb.path={base / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"prometheus did not come up: {self.log_tail()}")

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/`path`; the `data` of a successful answer (AssertionError otherwise)."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as e:
            answer = json.load(e)
        assert answer["status"] == "success", f"{path} {params}: {answer}"
        return answer["data"]

    def query(self, expr: str) -> dict[str, float]:
        """An instant query: each series' labels (as `k=v,...`, no __name__) -> value."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return {"": float(data["result"][1])}
        out = {}
        for series in data["result"]:
            labels = ",".join(
                f"{k}={v}" for k, v in sorted(series["metric"].items()) if k != "__name__"
            )
            out[labels] = float(series["value"][1])
        return out

    def value(self, expr: str) -> float | None:
        """The one value `expr` gives (None if it gives no series)."""
        result = self.query(expr)
        assert len(result) <= 1, f"{expr}: {result}"
        return next(iter(result.values()), None)

    def wait_for(self, expr: str, expected: float, timeout: float = 30) -> float | None:
        """Poll `expr` until it equals `expected` (scrapes lag); returns the last value."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.value(expr)
            if value == expected:
                return value
            time.sleep(0.25)
        return value

    def wait_scraped(self, jobs: int, timeout: float = 30) -> None:
        """Wait until `jobs` targets are up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(self.query("up").values()) == jobs:
                return
            time.sleep(0.2)
        raise AssertionError(f"targets not up: {self.api('targets')}")

    def log_tail(self) -> str:
        log = self.base / "prometheus.log"
        return log.read_text(errors="replace")[-3000:] if log.exists() else ""

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()
