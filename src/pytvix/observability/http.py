"""The HTTP side (aiohttp, nar-bridge): metrics and the request log from aiohttp's access
logger hook, traces from a middleware.

aiohttp calls the access logger once per request, after the response was sent (or the client
went away), with the time since the request arrived: counting there costs no coroutine or
middleware layer on the request path, and sees every response, including the limiter's 503s
and the router's 404s. Routes are labelled by their name (nar-bridge names its routes:
index, cache-info, nar, narinfo, metrics), else their pattern, and `unmatched` for requests
no route took, so label values stay few whatever clients ask for.

Request log: one line per request on the logger `pytvix.http.access`, fields method, path,
route, status, bytes_in, bytes_out, seconds, client, user_agent (and trace_id, span_id with
tracing): key=value pairs in the text log format, JSON keys with --log-format json.

Traces: a request's SERVER span continues the client's `traceparent`. Clients that send none
(Nix does not) get a span per client session instead, parent of each of its requests: the
requests of one client address and user agent, each starting within SESSION_IDLE seconds of
the previous one ending (and within SESSION_MAX of the first), so a `nix copy` is one trace.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from pytvix.observability import SWITCHES

log = logging.getLogger("pytvix.http.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SESSION_IDLE = 2.0
SESSION_MAX = 300.0
SPAN_KEY = "pytvix.span"


def route_label(request: web.BaseRequest) -> str:
    route = request.match_info.route  # type: ignore[attr-defined]
    name = route.name
    if name:
        return str(name)
    resource = route.resource
    return str(resource.canonical) if resource is not None else "unmatched"


def _sent(response: web.StreamResponse) -> int:
    """Bytes of the response as written (headers included); for a response cut short, its
    declared length."""
    return response.body_length or response.content_length or 0


def access_logger_class(*, access_log: bool) -> type[AbstractAccessLogger]:
    """The aiohttp access logger class recording metrics (when on) and the request log (when
    `access_log`)."""
    metrics = SWITCHES.metrics
    counters: dict[tuple[Any, str], Any] = {}

    class ObservingAccessLogger(AbstractAccessLogger):
        def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
            received = request.content.total_bytes
            sent = response.body_length or _sent(response)
            if metrics:
                key = (request.match_info.route, request.method)  # type: ignore[attr-defined]
                route = counters.get(key)
                if route is None:
                    route = counters[key] = _route_counters((route_label(request), key[1]))
                route.finished(response.status, time, received, sent)
            if access_log:
                _log_request(request, response.status, received=received, sent=sent, seconds=time)

    return ObservingAccessLogger


def _route_counters(labels: tuple[str, str]) -> Any:
    from pytvix.observability import metrics as m  # noqa: PLC0415

    return m.RequestCounters(m.HTTP_RESPONSES, m.HTTP_SECONDS, m.HTTP_RECEIVED, m.HTTP_SENT, labels)


def _log_request(
    request: web.BaseRequest, status: int, *, received: int, sent: int, seconds: float
) -> None:
    fields: dict[str, Any] = {
        "method": request.method,
        "path": request.path,
        "route": route_label(request),
        "status": status,
        "bytes_in": received,
        "bytes_out": sent,
        "seconds": round(seconds, 6),
        "client": request.remote or "",
        "user_agent": request.headers.get("User-Agent", ""),
    }
    span = request.get(SPAN_KEY)
    if span is not None:
        context = span.get_span_context()
        fields["trace_id"] = f"{context.trace_id:032x}"
        fields["span_id"] = f"{context.span_id:016x}"
    log.info("%s %s %d", request.method, request.path, status, extra={"fields": fields})


def tracing_middleware() -> Any:
    """The middleware making each request's span (put it first, so requests other middlewares
    refuse are traced too)."""
    sessions = _Sessions()

    @web.middleware
    async def trace(request: web.Request, handler: Handler) -> web.StreamResponse:
        span, token, session = sessions.request_span(request, route_label(request))
        request[SPAN_KEY] = span
        status = 500
        error: BaseException | None = None
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as e:
            status = e.status
            raise
        except BaseException as e:
            error = e
            raise
        finally:
            sessions.end_request(span, token, session, status, error)

    return trace


class _Sessions:
    """The open client session spans (tracing only)."""

    def __init__(self) -> None:
        from pytvix.observability import tracing  # noqa: PLC0415

        self.tracing = tracing
        self.open: dict[tuple[str, str], _Session] = {}
        self.timer: Any = None
        tracing.before_shutdown(self.close_all)

    def request_span(self, request: web.Request, route: str) -> tuple[Any, Any, _Session | None]:
        """The request's span, made current, and the session it belongs to (None for a
        request that came with a trace context)."""
        from opentelemetry import trace  # noqa: PLC0415
        from opentelemetry.trace import SpanKind  # noqa: PLC0415

        tracing = self.tracing
        carrier = {k: v for k in tracing.FIELDS if (v := request.headers.get(k)) is not None}
        session = None
        if carrier:
            parent = tracing.extract(carrier)
        else:
            session = self._session(request)
            parent = trace.set_span_in_context(session.span)
        attributes = {
            "http.request.method": request.method,
            "url.path": request.path,
            "http.route": route,
            "client.address": request.remote or "",
            "user_agent.original": request.headers.get("User-Agent", ""),
        }
        span = tracing.start_span(
            f"{request.method} {route}", attributes, kind=SpanKind.SERVER, parent=parent
        )
        return span, tracing.attach(span, parent), session

    def end_request(
        self, span: Any, token: Any, session: _Session | None, status: int, error: Any
    ) -> None:
        from opentelemetry.trace import Status, StatusCode  # noqa: PLC0415

        span.set_attribute("http.response.status_code", status)
        if status >= 500 or error is not None:
            span.set_status(Status(StatusCode.ERROR, str(status)))
            if error is not None:
                span.record_exception(error)
        self.tracing.detach(token)
        span.end()
        if session is not None:
            session.active -= 1
            session.touched = time.monotonic()
            session.last_end_ns = time.time_ns()

    def _session(self, request: web.Request) -> _Session:
        key = (request.remote or "", request.headers.get("User-Agent", ""))
        now = time.monotonic()
        session = self.open.get(key)
        if (
            session is not None
            and session.active == 0
            and (now - session.touched > SESSION_IDLE or now - session.started > SESSION_MAX)
        ):
            self._end(key)
            session = None
        if session is None:
            session = self.open[key] = _Session(self.tracing, key)
        session.active += 1
        if self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(SESSION_IDLE, self._expire)
        return session

    def _expire(self) -> None:
        self.timer = None
        now = time.monotonic()
        for key, session in list(self.open.items()):
            if session.active == 0 and now - session.touched > SESSION_IDLE:
                self._end(key)
        if self.open:
            self.timer = asyncio.get_running_loop().call_later(SESSION_IDLE, self._expire)

    def _end(self, key: tuple[str, str]) -> None:
        session = self.open.pop(key)
        session.span.end(end_time=session.last_end_ns)

    def close_all(self) -> None:
        for key in list(self.open):
            self._end(key)


class _Session:
    """Consecutive requests of one client: a span that is the parent of theirs."""

    def __init__(self, tracing: Any, key: tuple[str, str]) -> None:
        self.span = tracing.start_span(
            "HTTP client session", {"client.address": key[0], "user_agent.original": key[1]}
        )
        self.started = self.touched = time.monotonic()
        self.last_end_ns = time.time_ns()
        self.active = 0
