"""`nar-bridge`: an HTTP Nix binary cache over the store."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from pytvix import __version__
from pytvix.allocator import tune_allocator_for_server
from pytvix.castore.composition import ConfigError
from pytvix.castore.readahead import set_limit as set_readahead_limit
from pytvix.cli.common import (
    ServiceAddrs,
    configure_from_environment,
    global_options,
    run_async,
    service_options,
    setup_logging,
    with_store,
)
from pytvix.cli.observability import (
    MetricsSettings,
    metrics_options,
    on_bridge,
    serving_metrics,
    setup_tracing,
)
from pytvix.cli.units import DURATION, SIZE
from pytvix.store.composition import StoreServices
from pytvix.store.listen import ListenAddressError

if TYPE_CHECKING:
    from pytvix.narbridge.app import BridgeConfig

F = TypeVar("F", bound=Callable[..., Any])


def listen_option(
    default: str, help: str = "host:port, [::]:port, or a unix socket path starting with / or ."
) -> Callable[[F], F]:
    """`-l/--listen-address` (LISTEN_ADDRESS)."""
    return click.option(
        "-l",
        "--listen-address",
        default=default,
        show_default=True,
        envvar="LISTEN_ADDRESS",
        help=help,
    )


MAX_REQUESTS = click.option(
    "--max-requests",
    type=click.IntRange(min=1),
    default=512,
    show_default=True,
    envvar="MAX_REQUESTS",
    help="HTTP requests handled at once; more get 503 with Retry-After.",
)
STALL_TIMEOUT = click.option(
    "--stall-timeout",
    type=DURATION,
    default="60s",
    show_default=True,
    envvar="STALL_TIMEOUT",
    help="Close a connection whose client has neither read nor sent anything for this long "
    "during a transfer.",
)


def bridge_options(f: F) -> F:
    """The nar-bridge options shared by `nar-bridge` and `tvix-store daemon`."""
    options = [
        click.option(
            "--priority",
            type=click.IntRange(min=0),
            default=39,
            show_default=True,
            envvar="PRIORITY",
            help="Priority advertised in /nix-cache-info.",
        ),
        click.option(
            "--signing-key-file",
            type=click.Path(exists=True, dir_okay=False),
            envvar="SIGNING_KEY_FILE",
            help="A Nix secret key (nix-store --generate-binary-cache-key): narinfos served "
            "carry its signature, for store paths whose NAR hash the bridge computed or "
            "checked itself.",
        ),
        click.option(
            "--upload-token-file",
            type=click.Path(exists=True, dir_okay=False),
            envvar="UPLOAD_TOKEN_FILE",
            help="Accept uploads (nix copy --to) from holders of the token in this file, sent "
            "as `Authorization: Bearer TOKEN` or as HTTP Basic auth with TOKEN as password "
            "(nix: --option netrc-file with `machine HOST login x password TOKEN`). "
            "Without it uploads are refused. Reads stay public.",
        ),
        click.option(
            "--allow-anonymous-uploads",
            is_flag=True,
            envvar="ALLOW_ANONYMOUS_UPLOADS",
            help="Accept uploads from anyone who can reach the bridge, without a token: they "
            "can add any store path (never replace one), and with --signing-key-file the "
            "bridge signs what they upload. For trusted networks only.",
        ),
        click.option(
            "--trusted-public-keys",
            metavar="KEYS",
            envvar="TRUSTED_PUBLIC_KEYS",
            default="",
            help="Space-separated Nix public keys (NAME:BASE64): Sig: lines of uploaded "
            "narinfos are kept if they verify against one of them, dropped otherwise.",
        ),
        click.option(
            "--compression",
            type=click.Choice(["none", "zstd"]),
            default="none",
            show_default=True,
            help="How NARs are served: narinfos point to plain or .zst URLs.",
        ),
        click.option(
            "--max-nar-size",
            type=SIZE,
            default="64G",
            show_default=True,
            envvar="MAX_NAR_SIZE",
            help="Largest NAR accepted as an upload, both as sent and decompressed "
            "(decompression bombs stop here).",
        ),
        MAX_REQUESTS,
        STALL_TIMEOUT,
        click.option(
            "--access-log",
            is_flag=True,
            envvar="ACCESS_LOG",
            help="Log one line per HTTP request (method, path, route, status, bytes in and "
            "out, seconds, client, user agent) as key=value pairs, or JSON keys with "
            "--log-format json.",
        ),
        click.option(
            "--serve-castore",
            is_flag=True,
            envvar="SERVE_CASTORE",
            help="Also serve the castore read-only below /castore/ (blobs with Range and "
            "Bao-verified ranges, directories; the README's Protocol notes), as "
            "`tvix-store serve-castore` does.",
        ),
        click.option(
            "--max-readahead",
            type=SIZE,
            default="256M",
            show_default=True,
            envvar="MAX_READAHEAD",
            help="Bytes read ahead of all clients together (the memory stalled readers can "
            "hold); more clients share it.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def bridge_config(options: dict[str, Any]) -> BridgeConfig:
    """The bridge's configuration from its options (imports aiohttp: `tvix-store daemon`
    shares these options, and its other commands should not load the HTTP stack)."""
    from pytvix.narbridge.server import load_config  # noqa: PLC0415

    names = (
        "priority",
        "signing_key_file",
        "upload_token_file",
        "allow_anonymous_uploads",
        "trusted_public_keys",
        "compression",
        "max_nar_size",
        "max_requests",
        "stall_timeout",
        "access_log",
        "serve_castore",
    )
    values = {name: options.pop(name) for name in names}
    set_readahead_limit(options.pop("max_readahead"))
    try:
        return load_config(**values)
    except (ConfigError, ValueError, OSError) as e:
        raise click.ClickException(str(e)) from e


async def wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@global_options
@service_options
@listen_option("[::]:9000")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    envvar="NAR_BRIDGE_WORKERS",
    help="Processes serving the listen address together (one per core serves NARs from every "
    "core; each opens the store, so use a store several processes can share: the embedded "
    "store, or shared services). Not with --metrics-listen: metrics are per process.",
)
@bridge_options
@metrics_options
@click.version_option(__version__, prog_name="nar-bridge (pytvix)")
def cli(
    log_level: str,
    log_format: str,
    otlp: bool,
    otlp_endpoint: str,
    listen_address: str,
    *,
    workers: int,
    **options: Any,
) -> None:
    """Serve the store as a Nix HTTP binary cache.

    `nix copy --from http://HOST:PORT` reads from it (narinfo, NARs with Range support) and
    `nix copy --to http://HOST:PORT` uploads to it (plain, xz, bzip2 or zstd NARs). Without
    service addresses the embedded store in $TVIX_STORE_HOME is used.
    """
    setup_logging(log_level, log_format)
    config = bridge_config(options)
    addrs = ServiceAddrs.from_options(options)
    metrics = MetricsSettings.from_options(options, addrs.uses_embedded)
    if on_bridge(metrics, listen_address):
        config = dataclasses.replace(config, serve_metrics=True)

    from pytvix.narbridge.server import start_bridge  # noqa: PLC0415 (see bridge_config)

    def serve(config: BridgeConfig, listener: socket.socket | None = None) -> int:
        setup_tracing(otlp, otlp_endpoint, "nar-bridge")  # in each worker: it starts threads

        async def main(services: StoreServices) -> None:
            try:
                async with serving_metrics(metrics, services, bridge_listen=listen_address):
                    runner = await start_bridge(services, config, listen_address, listener)
                    try:
                        await wait_for_signal()
                    finally:
                        await runner.cleanup()
            except ListenAddressError as e:
                raise click.ClickException(str(e)) from e

        run_async(lambda: with_store(addrs, main))
        return 0

    if workers == 1:
        serve(config)
        return
    if metrics.listen is not None:
        raise click.ClickException(
            "--metrics-listen needs --workers 1: metrics are kept per process"
        )
    sys.exit(serve_in_workers(workers, listen_address, config, serve))


def serve_in_workers(
    workers: int,
    listen_address: str,
    config: BridgeConfig,
    serve: Callable[[BridgeConfig, socket.socket], int],
) -> int:
    """Run `serve` in `workers` processes on one listening socket, sharing uploads through a
    private directory; the group's exit status."""
    from pytvix.narbridge.workers import Listener, run_workers  # noqa: PLC0415

    try:
        listener = Listener(listen_address)
    except ListenAddressError as e:
        raise click.ClickException(str(e)) from e
    uploads = tempfile.mkdtemp(prefix="nar-bridge-uploads-")
    shared = dataclasses.replace(config, uploads_dir=uploads)
    try:
        return run_workers(workers, lambda: serve(shared, listener.for_worker()))
    finally:
        listener.close()
        shutil.rmtree(uploads, ignore_errors=True)
        if listen_address.startswith(("/", ".")):
            Path(listen_address).unlink(missing_ok=True)


def main() -> None:
    tune_allocator_for_server()
    configure_from_environment()
    cli(prog_name="nar-bridge")
