"""`serve-castore`: the castore read-only over plain HTTP (castore.http_server)."""

from __future__ import annotations

from typing import Any

import click

from pytvix.allocator import tune_allocator_for_server
from pytvix.cli.app import cli
from pytvix.cli.common import ServiceAddrs, run_async, service_options, with_store
from pytvix.cli.narbridge import MAX_REQUESTS, STALL_TIMEOUT, listen_option, wait_for_signal
from pytvix.store.composition import StoreServices
from pytvix.store.listen import ListenAddressError


@cli.command("serve-castore")
@service_options
@listen_option("[::]:9100")
@MAX_REQUESTS
@STALL_TIMEOUT
def serve_castore(
    listen_address: str, max_requests: int, stall_timeout: float, **options: Any
) -> None:
    """Serve the blobs and directories read-only over plain HTTP.

    GET/HEAD /castore/blob/<hex digest> (Range), .../bao?chunks=RANGES (Bao-encoded ranges a
    client checks against the digest), .../outboard, /castore/directory/<hex digest> and
    .../closure. Every response is immutable (ETag, long Cache-Control), so a CDN or caching
    proxy can sit in front; clients use castore+http://HOST/ (README, "Protocol notes").
    Path infos are not served. Stops on SIGINT or SIGTERM.
    """
    from aiohttp import web  # noqa: PLC0415 (the HTTP stack only for the servers)

    from pytvix.castore.http_server import CastoreHttp  # noqa: PLC0415
    from pytvix.narbridge.limits import RequestLimiter, StallWatchdog  # noqa: PLC0415
    from pytvix.narbridge.server import serve_http  # noqa: PLC0415

    tune_allocator_for_server()
    addrs = ServiceAddrs.from_options(options)

    async def main(services: StoreServices) -> None:
        watchdog = StallWatchdog(stall_timeout)
        app = web.Application(middlewares=[RequestLimiter(max_requests).middleware])
        CastoreHttp(services.blob, services.directory, watchdog.guard).add_routes(app)
        try:
            runner = await serve_http(app, listen_address, "castore HTTP server")
        except ListenAddressError as e:
            raise click.ClickException(str(e)) from e
        try:
            await wait_for_signal()
        finally:
            await runner.cleanup()
            await watchdog.close()

    run_async(lambda: with_store(addrs, main))
