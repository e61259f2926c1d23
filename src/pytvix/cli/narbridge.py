"""`nar-bridge`: an HTTP Nix binary cache over the store."""

from __future__ import annotations

from typing import Any

import click

from pytvix import __version__
from pytvix.cli.common import global_options, not_yet_available, service_options, setup_logging


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
@click.option(
    "--priority",
    type=click.IntRange(min=0),
    default=39,
    show_default=True,
    envvar="PRIORITY",
    help="Priority advertised in /nix-cache-info.",
)
@click.version_option(__version__, prog_name="nar-bridge (pytvix)")
def cli(log_level: str, otlp: bool, **_: Any) -> None:
    """Serve the store as a Nix HTTP binary cache (`nix copy --from/--to http://...`)."""
    setup_logging(log_level)
    not_yet_available("nar-bridge")


def main() -> None:
    cli(prog_name="nar-bridge")
