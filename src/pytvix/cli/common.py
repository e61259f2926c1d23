"""Options and helpers shared by the `tvix-store` and `nar-bridge` commands."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

LOG_LEVELS = ["ERROR", "WARN", "WARNING", "INFO", "DEBUG", "TRACE"]


def not_yet_available(command: str) -> None:
    raise click.ClickException(f"`{command}` is not yet available in this version of pytvix")


def service_options(f: F) -> F:
    """The three service addresses and the composition file, each with upstream's env var."""
    options = [
        click.option(
            "--blob-service-addr",
            envvar="BLOB_SERVICE_ADDR",
            show_envvar=True,
            metavar="URL",
            help="Blob service URL, e.g. objectstore+file:///srv/blobs, memory://, "
            "grpc+unix:///run/tvix.sock. Default: the embedded store.",
        ),
        click.option(
            "--directory-service-addr",
            envvar="DIRECTORY_SERVICE_ADDR",
            show_envvar=True,
            metavar="URL",
            help="Directory service URL, e.g. lmdb:///srv/store.lmdb, memory://, "
            "grpc+http://h:8000. "
            "Default: the embedded store.",
        ),
        click.option(
            "--path-info-service-addr",
            envvar="PATH_INFO_SERVICE_ADDR",
            show_envvar=True,
            metavar="URL",
            help="PathInfo service URL, e.g. lmdb:///srv/store.lmdb, nix+https://cache.nixos.org. "
            "Default: the embedded store.",
        ),
        click.option(
            "--experimental-store-composition",
            envvar="EXPERIMENTAL_STORE_COMPOSITION",
            show_envvar=True,
            type=click.Path(dir_okay=False, exists=True),
            metavar="TOML",
            help="A TOML file composing named services ([blobservices.default] ...); "
            "takes precedence over the three address options.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def setup_logging(level: str) -> None:
    """Configure logging; RUST_LOG overrides the level as upstream (a plain level name)."""
    env = os.environ.get("RUST_LOG", "").strip()
    chosen = (env.split(",")[0].split("=")[-1] if env else level).upper()
    chosen = {"WARN": "WARNING", "TRACE": "DEBUG"}.get(chosen, chosen)
    if chosen not in logging.getLevelNamesMapping():
        chosen = "INFO"
    logging.basicConfig(
        level=chosen, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )


def global_options(f: F) -> F:
    """`--log-level` and upstream's `--otlp` (accepted; OpenTelemetry export is not built in)."""
    f = click.option(
        "--otlp",
        type=click.BOOL,
        default=True,
        show_default=True,
        metavar="BOOL",
        help="Accepted for compatibility with upstream; pytvix does not export OTLP traces.",
    )(f)
    return click.option(
        "--log-level",
        default="INFO",
        show_default=True,
        type=click.Choice(LOG_LEVELS, case_sensitive=False),
        help="Log level (RUST_LOG, if set, overrides it).",
    )(f)
