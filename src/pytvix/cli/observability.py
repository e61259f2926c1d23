"""The observability options: `--log-format`, `--otlp` and `--otlp-endpoint` (every command),
and `--metrics-listen`, `--store-stats-interval`, `--gc-report-file` (the daemon and
nar-bridge), and what they turn on."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from pytvix.cli.units import DURATION
from pytvix.observability import SWITCHES
from pytvix.store.composition import StoreServices
from pytvix.store.defaults import store_home

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_OTLP_ENDPOINT = "http://localhost:4318"


def tracing_options(f: F) -> F:
    """`--otlp` (as upstream; off by default) and where spans go."""
    f = click.option(
        "--otlp-endpoint",
        default=DEFAULT_OTLP_ENDPOINT,
        show_default=True,
        envvar="OTEL_EXPORTER_OTLP_ENDPOINT",
        show_envvar=True,
        metavar="URL",
        help="The OpenTelemetry collector's OTLP/HTTP endpoint (spans go to URL/v1/traces).",
    )(f)
    f = click.option(
        "--otlp",
        type=click.BOOL,
        default=False,
        show_default=True,
        metavar="BOOL",
        help="Export traces (spans of every RPC, HTTP request, import, dump, copy, backend call "
        "and FUSE request batch) over OTLP/HTTP, e.g. --otlp=true.",
    )(f)
    return click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        envvar="LOG_FORMAT",
        help="json: one JSON object per line (with trace_id and span_id while tracing).",
    )(f)


def setup_tracing(otlp: bool, endpoint: str, service_name: str) -> None:
    if otlp:
        from pytvix.observability import tracing  # noqa: PLC0415 (loads OpenTelemetry)

        tracing.configure(service_name, endpoint)


def metrics_options(f: F) -> F:
    f = click.option(
        "--gc-report-file",
        type=click.Path(dir_okay=False),
        envvar="GC_REPORT_FILE",
        help="Export the report `tvix-store gc` leaves here (default for the embedded "
        "store: $TVIX_STORE_HOME/gc-report.json).",
    )(f)
    f = click.option(
        "--store-stats-interval",
        type=DURATION,
        default="60s",
        show_default=True,
        envvar="STORE_STATS_INTERVAL",
        help="Refresh the store gauges (objects, bytes, dedup ratio) at most this often, "
        "in the background when scraped (a refresh counts what the stores hold).",
    )(f)
    return click.option(
        "--metrics-listen",
        metavar="ADDR",
        envvar="METRICS_LISTEN",
        help="Serve Prometheus metrics at http://ADDR/metrics (host:port or a unix socket "
        "path). The nar-bridge address itself serves them beside the cache.",
    )(f)


def gc_report_path(given: str | None, uses_embedded: bool) -> Path | None:
    """Where the GC report is: as given, else beside the embedded store."""
    if given:
        return Path(given)
    if uses_embedded:
        from pytvix.observability.gc_report import FILE_NAME  # noqa: PLC0415

        return store_home() / FILE_NAME
    return None


@dataclass(frozen=True)
class MetricsSettings:
    listen: str | None
    stats_interval: float
    gc_report: Path | None

    @classmethod
    def from_options(cls, options: dict[str, Any], uses_embedded: bool) -> MetricsSettings:
        listen = options.pop("metrics_listen")
        interval = options.pop("store_stats_interval")
        report = gc_report_path(options.pop("gc_report_file"), uses_embedded)
        if listen is not None:
            SWITCHES.metrics = True  # before any service is built: they bind their metrics
            import pytvix.observability.metrics  # noqa: F401, PLC0415 (registers the families)
        return cls(listen, interval, report)


@contextlib.asynccontextmanager
async def serving_metrics(
    settings: MetricsSettings, services: StoreServices, *, bridge_listen: str | None = None
) -> AsyncIterator[None]:
    """Metrics served while the block runs: on their own listener, unless they go to the
    nar-bridge address (then the bridge serves them; see `on_bridge`)."""
    if settings.listen is None:
        yield
        return
    from pytvix.observability import endpoint  # noqa: PLC0415
    from pytvix.observability.gc_report import GcReportFile  # noqa: PLC0415
    from pytvix.observability.store_stats import StoreStats  # noqa: PLC0415
    from pytvix.store.listen import ListenAddress  # noqa: PLC0415

    stats = StoreStats(services.composition, services.path_info, settings.stats_interval)
    endpoint.on_scrape(stats.maybe_refresh)
    if settings.gc_report is not None:
        endpoint.on_scrape(GcReportFile(settings.gc_report).check)
    stats.maybe_refresh()
    runner = None
    if settings.listen != bridge_listen:
        runner = await endpoint.serve_metrics(ListenAddress.parse(settings.listen))
    try:
        yield
    finally:
        await stats.close()
        if runner is not None:
            await runner.cleanup()


def on_bridge(settings: MetricsSettings, bridge_listen: str | None) -> bool:
    """Whether nar-bridge serves /metrics itself (the same address was given for both)."""
    return settings.listen is not None and settings.listen == bridge_listen
