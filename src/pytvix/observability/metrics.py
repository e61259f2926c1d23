"""The Prometheus metric families (prometheus_client's default registry, its naming
conventions: `pytvix_..._total` counters, `_seconds` histograms, base units).

Families are created at import, which `pytvix.observability` does only when metrics are on.
Callers bind labelled children once (per gRPC method, HTTP route, service instance) and
keep them, so a request costs a few additions. Counters and histograms are updated on the
event loop without locks (observability.loop_metrics); gauges are prometheus_client's.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import REGISTRY, Gauge, disable_created_metrics

from pytvix.observability import CacheCounters, FetchCounters
from pytvix.observability.loop_metrics import Counter, Histogram

# no `_created` series beside every counter and histogram
disable_created_metrics()  # type: ignore[no-untyped-call]

# latency buckets from 100 µs (an LMDB get through gRPC) to a minute (a large NAR)
LATENCY = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

GRPC_LABELS = ("grpc_service", "grpc_method")
GRPC_STARTED = Counter(
    "pytvix_grpc_server_started", "gRPC calls started by the server.", GRPC_LABELS
)
GRPC_HANDLED = Counter(
    "pytvix_grpc_server_handled",
    "gRPC calls completed by the server, by status code (OK counts too).",
    (*GRPC_LABELS, "grpc_code"),
)
GRPC_SECONDS = Histogram(
    "pytvix_grpc_server_handling_seconds",
    "Time from the start of a gRPC call until its last response message.",
    GRPC_LABELS,
    buckets=LATENCY,
)
GRPC_RECEIVED = Counter(
    "pytvix_grpc_server_received_bytes",
    "Bytes of request messages received (serialized).",
    GRPC_LABELS,
)
GRPC_SENT = Counter(
    "pytvix_grpc_server_sent_bytes", "Bytes of response messages sent (serialized).", GRPC_LABELS
)

HTTP_LABELS = ("route", "method")
HTTP_SECONDS = Histogram(
    "pytvix_http_request_duration_seconds",
    "Time from receiving an HTTP request until its handler finished (streamed bodies included).",
    HTTP_LABELS,
    buckets=LATENCY,
)
HTTP_RESPONSES = Counter(
    "pytvix_http_responses", "HTTP responses by status code.", (*HTTP_LABELS, "status")
)
HTTP_RECEIVED = Counter(
    "pytvix_http_request_bytes", "Bytes of HTTP request bodies received.", HTTP_LABELS
)
HTTP_SENT = Counter(
    "pytvix_http_response_bytes",
    "Bytes of HTTP responses sent (headers included).",
    HTTP_LABELS,
)
HTTP_IN_FLIGHT = Gauge("pytvix_http_requests_in_flight", "HTTP requests being handled.")

# `name`: the composition instance (Prometheus keeps `instance` for the scraped target)
SERVICE_LABELS = ("kind", "name", "type")
SERVICE_SECONDS = Histogram(
    "pytvix_service_operation_seconds",
    "Duration of calls to a service instance of the composition (blob, directory, "
    "pathinfo); the _count is the number of operations.",
    (*SERVICE_LABELS, "op"),
    buckets=LATENCY,
)
SERVICE_ERRORS = Counter(
    "pytvix_service_operation_errors",
    "Calls to a service instance that raised, by exception type.",
    (*SERVICE_LABELS, "op", "error"),
)
BLOB_LOGICAL = Counter(
    "pytvix_blob_written_bytes",
    "Bytes of blobs written through a blob service instance (before deduplication).",
    SERVICE_LABELS,
)
BLOB_STORED = Counter(
    "pytvix_blob_stored_bytes",
    "Bytes a blob service instance did not have yet and stored.",
    SERVICE_LABELS,
)
CHUNKS = Counter(
    "pytvix_blob_chunks",
    "Chunks (blobs for backends that store blobs whole) written, `result` new (stored) or "
    "deduplicated (already present).",
    (*SERVICE_LABELS, "result"),
)

CACHE = Counter(
    "pytvix_cache_lookups",
    "Lookups of a near/far cache instance, `result` hit (answered from near) or miss.",
    ("kind", "name", "result"),
)

FETCH = Counter(
    "pytvix_fetch_through_lookups",
    "Store path lookups of a fetch-through (nix+http) path info service, `result` hit "
    "(found upstream and ingested), miss (not upstream) or error.",
    ("name", "result"),
)
FETCH_SECONDS = Histogram(
    "pytvix_fetch_through_upstream_seconds",
    "Duration of upstream requests of a fetch-through service: `what` narinfo, or nar (the "
    "download and ingestion of the whole NAR).",
    ("name", "what"),
    buckets=LATENCY,
)
FETCH_BYTES = Counter(
    "pytvix_fetch_through_downloaded_bytes",
    "Bytes downloaded from the upstream cache (NAR files as sent).",
    ("name",),
)

STORE_OBJECTS = Gauge(
    "pytvix_store_objects",
    "Objects a service instance holds, as it counts them (`what`: blobs, chunks, "
    "directories, path infos ...), refreshed in the background.",
    ("kind", "name", "what"),
)
STORE_BYTES = Gauge(
    "pytvix_store_bytes",
    "Bytes a service instance holds, as it counts them (`what`), refreshed in the background.",
    ("kind", "name", "what"),
)
STORE_NAR_BYTES = Gauge(
    "pytvix_store_nar_bytes", "Sum of the NAR sizes of every store path (the default instance)."
)
STORE_DEDUP = Gauge(
    "pytvix_store_dedup_ratio",
    "NAR bytes of every store path over the bytes a blob service instance stores.",
    ("name",),
)
STORE_REFRESHED = Gauge(
    "pytvix_store_stats_refresh_timestamp_seconds",
    "When the store gauges were last refreshed (Unix time).",
)
STORE_REFRESH_SECONDS = Gauge(
    "pytvix_store_stats_refresh_duration_seconds", "How long the last refresh took."
)

GC_LAST_RUN = Gauge(
    "pytvix_gc_last_run_timestamp_seconds", "When the last garbage collection started (Unix time)."
)
GC_DURATION = Gauge("pytvix_gc_last_run_duration_seconds", "How long the last collection took.")
GC_FREED_OBJECTS = Gauge(
    "pytvix_gc_last_run_freed_objects", "Objects the last collection deleted.", ("kind",)
)
GC_FREED_BYTES = Gauge(
    "pytvix_gc_last_run_freed_bytes", "Bytes the last collection deleted.", ("kind",)
)
GC_LIVE = Gauge("pytvix_gc_last_run_live_objects", "Objects the last collection found live.")
GC_DROPPED = Gauge(
    "pytvix_gc_last_run_dropped_paths", "Path infos the last collection's retention dropped."
)


class RequestCounters:
    """The children of one request kind (a gRPC method, an HTTP route and method) for its
    outcome (`handled`, by status), duration and bytes; status children bound on first use."""

    def __init__(
        self,
        handled: Counter,
        seconds: Histogram,
        received: Counter,
        sent: Counter,
        labels: tuple[str, ...],
    ) -> None:
        self._handled = handled
        self._labels = labels
        self._by_status: dict[object, Callable[[], None]] = {}
        self.seconds = seconds.labels(*labels).observe
        self.received = received.labels(*labels).inc
        self.sent = sent.labels(*labels).inc

    def finished(self, status: object, seconds: float, received: int, sent: int) -> None:
        """One request done; `status` is labelled as str(status)."""
        inc = self._by_status.get(status)
        if inc is None:
            inc = self._by_status[status] = self._handled.labels(*self._labels, str(status)).inc
        inc()
        self.seconds(seconds)
        if received:
            self.received(received)
        if sent:
            self.sent(sent)


def cache_counters(kind: str, instance: str) -> CacheCounters:
    return CacheCounters(
        hit=CACHE.labels(kind, instance, "hit").inc,
        miss=CACHE.labels(kind, instance, "miss").inc,
    )


def fetch_counters(instance: str) -> FetchCounters:
    seconds = {what: FETCH_SECONDS.labels(instance, what).observe for what in ("narinfo", "nar")}

    def upstream(what: str, elapsed: float) -> None:
        seconds[what](elapsed)

    downloaded = FETCH_BYTES.labels(instance).inc
    return FetchCounters(
        hit=FETCH.labels(instance, "hit").inc,
        miss=FETCH.labels(instance, "miss").inc,
        error=FETCH.labels(instance, "error").inc,
        upstream=upstream,
        downloaded=downloaded,
    )


def exposition() -> bytes:
    """The registry in the Prometheus text format."""
    from prometheus_client import generate_latest  # noqa: PLC0415

    return generate_latest(REGISTRY)
