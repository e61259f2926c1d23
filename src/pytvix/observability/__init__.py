"""Metrics, traces and structured logs (issue 21): the switches and the cheap hooks.

Every layer calls into this module, so it imports nothing heavy. `prometheus_client` is
loaded (by `observability.metrics`) only when the CLI turns metrics on (`--metrics-listen`),
OpenTelemetry (by `observability.tracing`) only with `--otlp=true`. While both are off every
hook here returns a shared no-op and no service is instrumented, so the code paths cost what
they cost before.

Turn things on before building services: backends bind their labelled metric children when
they are built (`cache_counters`, `fetch_counters`), and the composition instruments each
instance as it builds it (`on_build`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

__all__ = [
    "NOOP_CACHE",
    "NOOP_FETCH",
    "CacheCounters",
    "FetchCounters",
    "cache_counters",
    "fetch_counters",
    "http_access_logger",
    "http_in_flight",
    "http_middlewares",
    "instance_label",
    "metrics_enabled",
    "on_build",
    "server_interceptors",
    "span",
    "traced",
    "tracing_enabled",
]


class _Switches:
    metrics = False
    tracing = False


SWITCHES = _Switches()


def metrics_enabled() -> bool:
    return SWITCHES.metrics


def tracing_enabled() -> bool:
    return SWITCHES.tracing


def _nothing(*_: Any) -> None:
    return None


@dataclass(frozen=True, slots=True)
class CacheCounters:
    """Lookups a near/far cache answered from near (`hit`) or had to ask far for (`miss`)."""

    hit: Callable[[], None] = _nothing
    miss: Callable[[], None] = _nothing


@dataclass(frozen=True, slots=True)
class FetchCounters:
    """A fetch-through service's lookups (`hit`: found upstream, `miss`: not there, `error`)
    and its upstream requests (`upstream(what, seconds)`, `downloaded(bytes)`)."""

    hit: Callable[[], None] = _nothing
    miss: Callable[[], None] = _nothing
    error: Callable[[], None] = _nothing
    upstream: Callable[[str, float], None] = _nothing
    downloaded: Callable[[int], None] = _nothing


NOOP_CACHE = CacheCounters()
NOOP_FETCH = FetchCounters()


def instance_label(name: str) -> str:
    """A composition instance name as a label: anonymous instances are URLs, which may carry
    credentials in their user part or query, so only scheme, host and path are kept."""
    if "://" not in name:
        return name
    from urllib.parse import urlsplit  # noqa: PLC0415 (rare: anonymous instances only)

    try:
        parts = urlsplit(name)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return name.split("://", 1)[0] + "://"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def cache_counters(kind: str, instance: str) -> CacheCounters:
    """Hit and miss counters of the cache instance `instance` of `kind` (blob, directory,
    pathinfo), bound once; no-ops while metrics are off."""
    if not SWITCHES.metrics:
        return NOOP_CACHE
    from pytvix.observability import metrics  # noqa: PLC0415 (loads prometheus_client)

    return metrics.cache_counters(kind, instance_label(instance))


def fetch_counters(instance: str) -> FetchCounters:
    """The counters of the fetch-through path info service `instance`; no-ops while metrics
    are off."""
    if not SWITCHES.metrics:
        return NOOP_FETCH
    from pytvix.observability import metrics  # noqa: PLC0415

    return metrics.fetch_counters(instance_label(instance))


def on_build(section: str, name: str, tag: str, service: Any) -> None:
    """Called by the composition for every service instance it builds: instruments it
    (per-instance metrics and backend spans) when metrics or tracing are on."""
    if SWITCHES.metrics or SWITCHES.tracing:
        from pytvix.observability.services import instrument  # noqa: PLC0415

        instrument(section, name, tag, service)


def server_interceptors() -> list[Any]:
    """gRPC server interceptors for metrics and traces ([] while both are off)."""
    if not (SWITCHES.metrics or SWITCHES.tracing):
        return []
    from pytvix.observability.grpc_server import ObservingInterceptor  # noqa: PLC0415

    return [ObservingInterceptor()]


def client_interceptors() -> list[Any]:
    """gRPC client interceptors that propagate the trace context ([] without tracing)."""
    if not SWITCHES.tracing:
        return []
    from pytvix.observability.grpc_client import tracing_interceptors  # noqa: PLC0415

    return tracing_interceptors()


def http_middlewares() -> list[Any]:
    """aiohttp middlewares for traces ([] without tracing)."""
    if not SWITCHES.tracing:
        return []
    from pytvix.observability.http import tracing_middleware  # noqa: PLC0415

    return [tracing_middleware()]


def http_access_logger(*, access_log: bool) -> Any:
    """The aiohttp access logger class for metrics and request logs (None when both are
    off)."""
    if not (SWITCHES.metrics or access_log):
        return None
    from pytvix.observability.http import access_logger_class  # noqa: PLC0415

    return access_logger_class(access_log=access_log)


def http_in_flight(count: Callable[[], int]) -> None:
    """Export `count()` as the number of HTTP requests in flight (with metrics on)."""
    if SWITCHES.metrics:
        from pytvix.observability.metrics import HTTP_IN_FLIGHT  # noqa: PLC0415

        HTTP_IN_FLIGHT.set_function(count)


_NULL = contextlib.nullcontext()


def span(name: str, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
    """A span around an operation (import, dump, copy ...) while tracing is on, current
    for what runs inside; a shared null context otherwise."""
    if not SWITCHES.tracing:
        return _NULL
    from pytvix.observability import tracing  # noqa: PLC0415

    return tracing.current_span(name, attributes)


P = ParamSpec("P")
R = TypeVar("R")


def traced(name: str) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Decorate a coroutine function with a span `name` around each call (tracing only)."""

    def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(fn)
        async def call(*args: P.args, **kwargs: P.kwargs) -> R:
            if not SWITCHES.tracing:
                return await fn(*args, **kwargs)
            with span(name):
                return await fn(*args, **kwargs)

        return call

    return decorate
