"""Checks of the Grafana dashboard in contrib/grafana/pytvix.json against a real Prometheus:
the JSON is a dashboard Grafana imports (panels with unique ids, grid positions, targets on
the dashboard's data source variable), every PromQL expression in it runs (Grafana's
variables replaced as Grafana would) and every metric it names is one a scraped process
declares."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.servers.prometheus import Prometheus

DASHBOARD = Path("contrib/grafana/pytvix.json")
VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$job": ".*"}
METRIC = re.compile(r"\b((?:pytvix|process)_[a-z0-9_]+)\b")
SUFFIXES = ("_bucket", "_count", "_sum")


def load(root: Path) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads((root / DASHBOARD).read_text())
    assert dashboard["title"]
    assert dashboard["uid"]
    assert isinstance(dashboard["schemaVersion"], int)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["job"]["type"] == "query"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    return dashboard


def expressions(dashboard: dict[str, Any]) -> list[str]:
    out = []
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            out.append(target["expr"])
    return out


def grafana_substituted(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, expr
    return expr


def declared(metric: str, known: dict[str, Any]) -> bool:
    """Whether a scraped target declares `metric` (a histogram's series by its family)."""
    if metric in known:
        return True
    return any(metric.endswith(s) and metric.removesuffix(s) in known for s in SUFFIXES)


def check_dashboard(prometheus: Prometheus, root: Path) -> None:
    dashboard = load(root)
    exprs = expressions(dashboard)
    assert len(exprs) > 20
    known = prometheus.api("metadata")
    answered = 0
    for expr in exprs:
        data = prometheus.api("query", query=grafana_substituted(expr))
        answered += bool(data["result"])
        for metric in METRIC.findall(expr):
            assert declared(metric, known), f"{metric} (in {expr}) is not exported"
    # most panels show data for traffic as small as the tests' (errors need not happen)
    assert answered >= len(exprs) * 0.75, f"{answered} of {len(exprs)} queries gave data"
    job = next(v for v in dashboard["templating"]["list"] if v["name"] == "job")
    values = prometheus.api("label/job/values")
    assert set(values) >= {"daemon", "bridge", "reader"}
    assert job["definition"].startswith("label_values(")
