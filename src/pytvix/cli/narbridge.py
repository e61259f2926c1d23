"""`nar-bridge`: an HTTP Nix binary cache over the store."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from pytvix import __version__
from pytvix.allocator import tune_allocator
from pytvix.castore.composition import ConfigError
from pytvix.cli.common import (
    ServiceAddrs,
    global_options,
    run_async,
    service_options,
    setup_logging,
    with_store,
)
from pytvix.store.composition import StoreServices
from pytvix.store.listen import ListenAddressError

if TYPE_CHECKING:
    from pytvix.narbridge.app import BridgeConfig

F = TypeVar("F", bound=Callable[..., Any])


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
            help="A Nix secret key (nix-store --generate-binary-cache-key); narinfos served "
            "carry its signature in addition to the stored ones.",
        ),
        click.option(
            "--upload-token-file",
            type=click.Path(exists=True, dir_okay=False),
            envvar="UPLOAD_TOKEN_FILE",
            help="Require `Authorization: Bearer <token>` (token read from this file) for "
            "uploads; reads stay public.",
        ),
        click.option(
            "--compression",
            type=click.Choice(["none", "zstd"]),
            default="none",
            show_default=True,
            help="How NARs are served: narinfos point to plain or .zst URLs.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def bridge_config(options: dict[str, Any]) -> BridgeConfig:
    """The bridge's configuration from its options (imports aiohttp: `tvix-store daemon`
    shares these options, and its other commands should not load the HTTP stack)."""
    from pytvix.narbridge.server import load_config  # noqa: PLC0415

    try:
        return load_config(
            priority=options.pop("priority"),
            signing_key_file=options.pop("signing_key_file"),
            upload_token_file=options.pop("upload_token_file"),
            compression=options.pop("compression"),
        )
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
@click.option(
    "-l",
    "--listen-address",
    default="[::]:9000",
    show_default=True,
    envvar="LISTEN_ADDRESS",
    help="host:port, [::]:port, or a unix socket path starting with / or .",
)
@bridge_options
@click.version_option(__version__, prog_name="nar-bridge (pytvix)")
def cli(log_level: str, otlp: bool, listen_address: str, **options: Any) -> None:
    """Serve the store as a Nix HTTP binary cache.

    `nix copy --from http://HOST:PORT` reads from it (narinfo, NARs with Range support) and
    `nix copy --to http://HOST:PORT` uploads to it (plain, xz, bzip2 or zstd NARs). Without
    service addresses the embedded store in $TVIX_STORE_HOME is used.
    """
    setup_logging(log_level)
    config = bridge_config(options)
    addrs = ServiceAddrs.from_options(options)

    from pytvix.narbridge.server import start_bridge  # noqa: PLC0415 (see bridge_config)

    async def main(services: StoreServices) -> None:
        try:
            runner = await start_bridge(services, config, listen_address)
        except ListenAddressError as e:
            raise click.ClickException(str(e)) from e
        try:
            await wait_for_signal()
        finally:
            await runner.cleanup()

    run_async(lambda: with_store(addrs, main))


def main() -> None:
    tune_allocator()
    cli(prog_name="nar-bridge")
