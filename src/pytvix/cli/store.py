"""`tvix-store`: run the store daemon and work with store paths."""

from __future__ import annotations

from typing import Any

import click

from pytvix import __version__
from pytvix.cli.common import global_options, not_yet_available, service_options, setup_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@global_options
@click.version_option(__version__, prog_name="tvix-store (pytvix)")
def cli(log_level: str, otlp: bool) -> None:
    """A content-addressed store for file trees and Nix store paths, compatible with tvix.

    Blobs are addressed by blake3, directories are Merkle nodes, and Nix store paths map to
    root nodes (PathInfo). Without service addresses every command uses the embedded store in
    $TVIX_STORE_HOME (default: ~/.local/share/pytvix).
    """
    setup_logging(log_level)


@cli.command()
@service_options
@click.option(
    "-l",
    "--listen-address",
    default="[::]:8000",
    show_default=True,
    envvar="LISTEN_ADDRESS",
    help="host:port, [::]:port, or a unix socket path starting with / or .",
)
def daemon(**_: Any) -> None:
    """Serve the BlobService, DirectoryService and PathInfoService over gRPC."""
    not_yet_available("tvix-store daemon")


@cli.command(name="import")
@service_options
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=False))
def import_(**_: Any) -> None:
    """Import file trees; prints one /nix/store path per PATH (as `nix-store --add`)."""
    not_yet_available("tvix-store import")


@cli.command()
@service_options
@click.option("--threads", type=int, envvar="THREADS", help="Worker threads.")
@click.option("--allow-other", is_flag=True, envvar="ALLOW_OTHER", help="Allow other users.")
@click.option("-l", "--list-root", is_flag=True, help="Allow listing the root directory.")
@click.option("--show-xattr", is_flag=True, default=True, help="Expose blake3 digests as xattrs.")
@click.argument("mountpoint", type=click.Path(file_okay=False))
def mount(**_: Any) -> None:
    """Mount the store read-only with FUSE; content is fetched lazily."""
    not_yet_available("tvix-store mount")


@cli.command()
@service_options
@click.argument("nix_attrs_json_file", envvar="NIX_ATTRS_JSON_FILE", required=False)
def copy(**_: Any) -> None:
    """Copy the closure listed in a structured-attrs JSON file from /nix/store into the store."""
    not_yet_available("tvix-store copy")


def main() -> None:
    cli(prog_name="tvix-store", auto_envvar_prefix=None)
