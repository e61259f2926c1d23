"""The gRPC client side of tracing: a CLIENT span per call, its context sent as `traceparent`
metadata so the server's span is its child. grpc.aio files each client interceptor under one
call kind, so there is one per kind."""

from __future__ import annotations

import asyncio
from typing import Any

from grpc import aio
from opentelemetry.trace import SpanKind

from pytvix.observability import tracing


def _start(details: aio.ClientCallDetails) -> tuple[Any, aio.ClientCallDetails]:
    method = details.method.decode() if isinstance(details.method, bytes) else details.method
    service, _, name = method.lstrip("/").rpartition("/")
    span = tracing.start_span(
        method.lstrip("/"),
        {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
        kind=SpanKind.CLIENT,
    )
    pairs: list[tuple[str, str]] = list(details.metadata or ())
    with tracing.attached(span):
        tracing.inject(pairs)
    new = aio.ClientCallDetails(
        details.method,
        details.timeout,
        aio.Metadata(*pairs),
        details.credentials,
        details.wait_for_ready,
    )
    return span, new


def _finish_when_done(call: Any, span: Any) -> Any:
    async def finish() -> None:
        try:
            code = await call.code()
        except BaseException:
            code = None
        name = getattr(code, "name", "UNKNOWN")
        span.set_attribute("rpc.grpc.status_code", name)
        if name != "OK":
            from opentelemetry.trace import Status, StatusCode  # noqa: PLC0415

            span.set_status(Status(StatusCode.ERROR, name))
        span.end()

    call.add_done_callback(lambda _: asyncio.ensure_future(finish()))
    return call


class _UnaryUnary(aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        span, details = _start(details)
        return _finish_when_done(await continuation(details, request), span)


class _UnaryStream(aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        span, details = _start(details)
        return _finish_when_done(await continuation(details, request), span)


class _StreamUnary(aio.StreamUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        span, details = _start(details)
        return _finish_when_done(await continuation(details, requests), span)


def tracing_interceptors() -> list[Any]:
    return [_UnaryUnary(), _UnaryStream(), _StreamUnary()]
