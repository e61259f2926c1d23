"""The gRPC server side: one interceptor that counts, times and (with tracing) traces every
call. It goes first in the server's interceptor list, so calls other interceptors refuse are
counted too.

Each method's handler is wrapped once and reused (grpc's generic handlers return the same
handler object for a method every time). The wrapper takes over (de)serialization so it can
count the bytes of every message into a plain integer, added to the counters once per call.
A call's status code is what the servicer aborted or set with, CANCELLED if the call was
cancelled, UNKNOWN for an unexpected exception, OK otherwise.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from pytvix.observability import SWITCHES

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable["grpc.RpcMethodHandler[Any, Any]"]]


class CallStats:
    """One method's metric children (bound once), and its span name."""

    def __init__(self, full_method: str) -> None:
        service, _, method = full_method.lstrip("/").rpartition("/")
        self.span_name = full_method.lstrip("/")
        self.attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
        self.traced = SWITCHES.tracing
        self.counters = None
        if SWITCHES.metrics:
            from pytvix.observability import metrics as m  # noqa: PLC0415

            self.started = m.GRPC_STARTED.labels(service, method).inc
            self.counters = m.RequestCounters(
                m.GRPC_HANDLED, m.GRPC_SECONDS, m.GRPC_RECEIVED, m.GRPC_SENT, (service, method)
            )


class Call:
    """One call in progress, and the context manager around its handler: bytes counted, the
    span (if tracing), the outcome recorded at exit."""

    __slots__ = ("context", "received", "sent", "span", "start", "stats", "token")

    def __init__(self, stats: CallStats, context: aio.ServicerContext[Any, Any]) -> None:
        self.stats = stats
        self.context = context
        self.received = 0
        self.sent = 0
        self.span: Any = None
        self.token: Any = None
        if stats.counters is not None:
            stats.started()
        if stats.traced:
            from pytvix.observability import tracing  # noqa: PLC0415

            self.span, self.token = tracing.server_span(
                stats.span_name, stats.attributes, context.invocation_metadata() or ()
            )
        self.start = time.perf_counter()

    def __enter__(self) -> Call:
        return self

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        code = _status(self.context, error)
        if self.stats.counters is not None:
            seconds = time.perf_counter() - self.start
            self.stats.counters.finished(code.name, seconds, self.received, self.sent)
        if self.span is not None:
            from pytvix.observability import tracing  # noqa: PLC0415

            tracing.end_server_span(self.span, self.token, code.name, error)


def _status(context: aio.ServicerContext[Any, Any], error: BaseException | None) -> grpc.StatusCode:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):  # some grpc versions keep the numeric value
        return _BY_VALUE.get(code, grpc.StatusCode.UNKNOWN)
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    if error is not None:
        return grpc.StatusCode.UNKNOWN
    return grpc.StatusCode.OK


_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}

Codec = Callable[[Any], Any]


def _identity(data: Any) -> Any:
    return data


def _one_request(data: bytes, call: Call, decode: Codec) -> Any:
    call.received = len(data)
    return decode(data)


async def _request_stream(
    requests: AsyncIterator[bytes], call: Call, decode: Codec
) -> AsyncIterator[Any]:
    async for data in requests:
        call.received += len(data)
        yield decode(data)


Take = Callable[[Any, Call, Codec], Any]


def _one_response(behavior: Any, stats: CallStats, take: Take, decode: Codec, encode: Codec) -> Any:
    async def observed(request: Any, context: aio.ServicerContext[Any, Any]) -> bytes:
        with Call(stats, context) as call:
            response = encode(await behavior(take(request, call, decode), context))
            call.sent = len(response)
            return response  # type: ignore[no-any-return]

    return observed


def _response_stream(
    behavior: Any, stats: CallStats, take: Take, decode: Codec, encode: Codec
) -> Any:
    async def observed(
        request: Any, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        with Call(stats, context) as call:
            async for message in behavior(take(request, call, decode), context):
                encoded = encode(message)
                call.sent += len(encoded)
                yield encoded

    return observed


def wrap_handler(
    handler: grpc.RpcMethodHandler[Any, Any], stats: CallStats
) -> grpc.RpcMethodHandler[Any, Any]:
    """`handler` observed: it (de)serializes itself and counts bytes per call."""
    decode = handler.request_deserializer or _identity
    encode = handler.response_serializer or _identity
    take: Take = _request_stream if handler.request_streaming else _one_request
    make = _response_stream if handler.response_streaming else _one_response
    behavior = (
        handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
    )
    observed = make(behavior, stats, take, decode, encode)
    factory = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[handler.request_streaming, handler.response_streaming]
    return factory(observed)


class ObservingInterceptor(aio.ServerInterceptor):  # type: ignore[type-arg]
    """Wraps every method's handler with metrics and spans. Wrapped handlers are kept per
    handler object (the servers' handlers are long-lived: a few per method)."""

    MAX_CACHED = 1024

    def __init__(self) -> None:
        self._wrapped: dict[tuple[str, int], tuple[Any, grpc.RpcMethodHandler[Any, Any]]] = {}

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(details)
        if handler is None:
            return handler
        key = (details.method, id(handler))
        cached = self._wrapped.get(key)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = wrap_handler(handler, CallStats(details.method))
        if len(self._wrapped) < self.MAX_CACHED:
            self._wrapped[key] = (handler, wrapped)  # keeps `handler` alive: its id stays
        return wrapped
