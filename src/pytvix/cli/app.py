"""The `tvix-store` command group; subcommands live in the cmd_* modules."""

from __future__ import annotations

import click

from pytvix import __version__
from pytvix.cli.common import global_options, setup_logging
from pytvix.cli.observability import setup_tracing


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@global_options
@click.version_option(__version__, prog_name="tvix-store (pytvix)")
def cli(log_level: str, log_format: str, otlp: bool, otlp_endpoint: str) -> None:
    """A content-addressed store for file trees and Nix store paths, compatible with tvix.

    Blobs are addressed by blake3, directories are Merkle nodes, and Nix store paths map to
    root nodes (PathInfo). Without service addresses every command uses the embedded store in
    $TVIX_STORE_HOME (default: ~/.local/share/pytvix).

    A STORE_PATH argument may be /nix/store/<hash>-<name>, <hash>-<name> or the 32-character
    hash, optionally followed by /sub/path where a command looks inside the tree.
    """
    setup_logging(log_level, log_format)
    setup_tracing(otlp, otlp_endpoint, "tvix-store")
