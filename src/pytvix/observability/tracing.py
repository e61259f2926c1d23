"""OpenTelemetry traces: the SDK with an OTLP/HTTP (protobuf) exporter, set up by the CLI with
`--otlp=true`, and the helpers the instrumented code uses.

Importing this module loads OpenTelemetry; nothing imports it while tracing is off. Trace
context crosses processes in the W3C `traceparent`/`tracestate` form, as gRPC metadata and
HTTP headers. Spans are exported in batches; `shutdown` (registered at exit) sends the rest.
"""

from __future__ import annotations

import atexit
import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from pytvix.observability import SWITCHES

__all__ = [
    "configure",
    "current_ids",
    "current_span",
    "inject",
    "record_error",
    "server_span",
    "shutdown",
    "start_span",
]

PROPAGATOR = TraceContextTextMapPropagator()
FIELDS = ("traceparent", "tracestate")
_tracer: trace.Tracer = trace.get_tracer("pytvix")
_provider: Any = None


def configure(service_name: str, endpoint: str, *, export_delay: float = 1.0) -> None:
    """Export spans of this process as `service_name` to the OTLP/HTTP collector at
    `endpoint` (e.g. http://localhost:4318; spans go to its /v1/traces)."""
    global _tracer, _provider
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
    provider.add_span_processor(
        BatchSpanProcessor(exporter, schedule_delay_millis=int(export_delay * 1000))
    )
    _provider = provider
    _tracer = provider.get_tracer("pytvix")
    SWITCHES.tracing = True
    atexit.register(shutdown)


def shutdown() -> None:
    """End open sessions and export every span not sent yet."""
    global _provider
    provider, _provider = _provider, None
    if provider is not None:
        for hook in _before_shutdown:
            hook()
        provider.shutdown()


_before_shutdown: list[Any] = []


def before_shutdown(hook: Any) -> None:
    """Run `hook` before the last spans are exported (to end long-lived spans)."""
    _before_shutdown.append(hook)


def tracer() -> trace.Tracer:
    return _tracer


def current_span(
    name: str, attributes: Mapping[str, Any], kind: SpanKind = SpanKind.INTERNAL
) -> contextlib.AbstractContextManager[trace.Span]:
    """A span, current while the block runs; exceptions are recorded on it."""
    return _tracer.start_as_current_span(name, kind=kind, attributes=dict(attributes))


def start_span(
    name: str,
    attributes: Mapping[str, Any],
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: otel_context.Context | None = None,
    start_time: int | None = None,
) -> trace.Span:
    """A span that is not made current; end it with `.end()`."""
    return _tracer.start_span(
        name, context=parent, kind=kind, attributes=dict(attributes), start_time=start_time
    )


def record_error(span: trace.Span, e: BaseException) -> None:
    span.record_exception(e)
    span.set_status(Status(StatusCode.ERROR, f"{type(e).__name__}: {e}"))


def extract(carrier: Mapping[str, str]) -> otel_context.Context:
    """The context a `traceparent` in `carrier` continues (an empty one without it)."""
    return PROPAGATOR.extract(carrier)


def inject(pairs: list[tuple[str, str]]) -> None:
    """Append the current trace context to `pairs` (gRPC metadata, HTTP headers)."""
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier)
    pairs.extend(carrier.items())


def server_span(
    name: str, attributes: Mapping[str, Any], metadata: Iterable[tuple[str, Any]]
) -> tuple[trace.Span, object]:
    """A SERVER span for a gRPC call, child of the caller's context from its metadata, made
    current; returns it and the token `end_server_span` detaches."""
    carrier = {k: str(v) for k, v in metadata if k in FIELDS}
    parent = PROPAGATOR.extract(carrier) if carrier else None
    span = _tracer.start_span(
        name, context=parent, kind=SpanKind.SERVER, attributes=dict(attributes)
    )
    return span, attach(span, parent)


def end_server_span(
    span: trace.Span, token: object, code: str, error: BaseException | None
) -> None:
    span.set_attribute("rpc.grpc.status_code", code)
    if code != "OK":
        span.set_status(Status(StatusCode.ERROR, code))
    if error is not None and code in ("UNKNOWN", "INTERNAL"):
        span.record_exception(error)
    detach(token)
    span.end()


def attach(span: trace.Span, parent: otel_context.Context | None = None) -> object:
    """Make `span` current (in `parent`'s context); returns the token for `detach`."""
    return otel_context.attach(trace.set_span_in_context(span, parent))


def detach(token: object) -> None:
    with contextlib.suppress(ValueError, RuntimeError):  # a generator closed elsewhere
        otel_context.detach(token)  # type: ignore[arg-type]


@contextlib.contextmanager
def attached(span: trace.Span) -> Iterator[None]:
    """`span` current for the block."""
    token = attach(span)
    try:
        yield
    finally:
        detach(token)


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the current span, if there is one."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"
