"""The HTTP side (aiohttp, nar-bridge): one middleware that counts, times, traces and logs
every request, each part only when it is on.

Routes are labelled by their name (nar-bridge names its routes: index, nix-cache-info, nar,
narinfo, metrics), else by their pattern, and `unmatched` for requests no route took, so
label values stay few whatever clients ask for.

Traces: a request's SERVER span continues the client's `traceparent`. Clients that send none
(Nix does not) get a span per client session instead, parent of each of its requests: the
requests of one client address and user agent, each starting within SESSION_IDLE seconds of
the previous one ending (and within SESSION_MAX of the first), so a `nix copy` is one trace.

Request log: one line per request on the logger `pytvix.http.access`, fields method, path,
route, status, bytes_in, bytes_out, seconds, client, user_agent (and trace_id with tracing):
key=value pairs in the text log format, JSON keys with --log-format json.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from pytvix.observability import SWITCHES

log = logging.getLogger("pytvix.http.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SESSION_IDLE = 2.0
SESSION_MAX = 300.0


def route_label(request: web.Request) -> str:
    route = request.match_info.route
    name = route.name
    if name:
        return name
    resource = route.resource
    return resource.canonical if resource is not None else "unmatched"


def _route_counters(labels: tuple[str, str]) -> Any:
    from pytvix.observability import metrics as m  # noqa: PLC0415

    return m.RequestCounters(m.HTTP_RESPONSES, m.HTTP_SECONDS, m.HTTP_RECEIVED, m.HTTP_SENT, labels)


def _sent(response: web.StreamResponse | None) -> int:
    """Bytes of the response body: its declared length, else what was written."""
    if response is None:
        return 0
    if response.content_length is not None:
        return response.content_length
    return response.body_length


def observing_middleware(*, access_log: bool) -> Any:
    """The middleware (put it first, so requests other middlewares refuse are seen too)."""
    metrics = SWITCHES.metrics
    traced = SWITCHES.tracing
    routes: dict[tuple[str, str], Any] = {}
    sessions = _Sessions() if traced else None
    in_flight: Any = None
    if metrics:
        from pytvix.observability.metrics import HTTP_IN_FLIGHT  # noqa: PLC0415

        in_flight = HTTP_IN_FLIGHT

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        span = token = session = None
        if sessions is not None:
            span, token, session = sessions.request_span(request, route_label(request))
        if in_flight is not None:
            in_flight.inc()
        response: web.StreamResponse | None = None
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
            seconds = time.perf_counter() - start
            route = route_label(request)
            received = request.content.total_bytes if request.body_exists else 0
            sent = _sent(response)
            if metrics:
                key = (route, request.method)
                counters = routes.get(key)
                if counters is None:
                    counters = routes[key] = _route_counters(key)
                counters.finished(str(status), seconds, received, sent)
                in_flight.dec()
            if access_log:
                _log_request(request, route, status, received=received, sent=sent, seconds=seconds)
            if sessions is not None:
                sessions.end_request(span, token, session, status, error)

    return observe


def _log_request(
    request: web.Request, route: str, status: int, *, received: int, sent: int, seconds: float
) -> None:
    fields: dict[str, Any] = {
        "method": request.method,
        "path": request.path,
        "route": route,
        "status": status,
        "bytes_in": received,
        "bytes_out": sent,
        "seconds": round(seconds, 6),
        "client": request.remote or "",
        "user_agent": request.headers.get("User-Agent", ""),
    }
    log.info("%s %s %d", request.method, request.path, status, extra={"fields": fields})


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
