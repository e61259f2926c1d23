"""Serving `/metrics` (the Prometheus text format): on a listener of its own
(`--metrics-listen ADDR`), or as a route of nar-bridge's own application.

Each scrape first runs the registered scrape hooks (start a store gauge refresh when due,
re-read the GC report if it changed), then renders the registry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_scrape_hooks: list[Callable[[], None]] = []


def on_scrape(hook: Callable[[], None]) -> None:
    _scrape_hooks.append(hook)


async def metrics_handler(request: web.Request) -> web.Response:
    from pytvix.observability.metrics import exposition  # noqa: PLC0415

    for hook in _scrape_hooks:
        hook()
    return web.Response(body=exposition(), headers={"Content-Type": CONTENT_TYPE})


async def serve_metrics(listen: Any) -> web.AppRunner:
    """Serve /metrics on `listen` (a parsed ListenAddress); stop with `runner.cleanup()`."""
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler, name="metrics")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site: web.BaseSite
    if listen.unix_path is not None:
        site = web.UnixSite(runner, str(listen.unix_path))
    else:
        site = web.TCPSite(runner, listen.host, listen.port)
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        from pytvix.store.listen import ListenAddressError  # noqa: PLC0415

        raise ListenAddressError(f"cannot listen on {listen.target}: {e.strerror}") from e
    log.info("metrics on http://%s/metrics", listen.target)
    return runner
