"""Options and helpers shared by the `tvix-store` and `nar-bridge` commands."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from pytvix.castore import workers
from pytvix.castore.composition import ConfigError
from pytvix.castore.errors import CastoreError
from pytvix.castore.gc import set_write_refresh
from pytvix.cli.observability import tracing_options
from pytvix.observability.logs import configure as configure_logs
from pytvix.store.composition import StoreServices, open_store_from_toml, open_store_from_urls
from pytvix.store.defaults import embedded_urls, store_home, uses_legacy_layout

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")

LOG_LEVELS = ["ERROR", "WARN", "WARNING", "INFO", "DEBUG", "TRACE"]


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
            help="PathInfo service URL, e.g. lmdb:///srv/store.lmdb, "
            "nix+https://cache.nixos.org?trusted-public-keys=NAME:KEY (fetch-through: it "
            "downloads on every lookup; a composition with a `cache` in front keeps what it "
            "fetched, see the README). Default: the embedded store.",
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


def configure_from_environment() -> None:
    """Process settings from the environment: worker pool sizes (PYTVIX_WORKER_THREADS,
    PYTVIX_IO_THREADS, PYTVIX_CPU_THREADS) and how often writers refresh objects they find
    present for garbage collection (PYTVIX_WRITE_REFRESH, seconds)."""

    def number(name: str) -> int | None:
        value = os.environ.get(name, "").strip()
        if not value:
            return None
        if not value.isdigit():
            raise SystemExit(f"Error: {name} must be a number of threads, got {value!r}")
        return int(value)

    workers.configure(
        worker=number("PYTVIX_WORKER_THREADS"),
        io=number("PYTVIX_IO_THREADS"),
        cpu=number("PYTVIX_CPU_THREADS"),
    )
    refresh = os.environ.get("PYTVIX_WRITE_REFRESH", "").strip()
    if refresh:
        try:
            set_write_refresh(float(refresh))
        except ValueError:
            raise SystemExit(
                f"Error: PYTVIX_WRITE_REFRESH must be a number of seconds, got {refresh!r}"
            ) from None


def setup_logging(level: str, fmt: str = "text") -> None:
    """Configure logging in the format `fmt` (text or json); RUST_LOG overrides the level as
    upstream (a plain level name)."""
    env = os.environ.get("RUST_LOG", "").strip()
    chosen = (env.split(",")[0].split("=")[-1] if env else level).upper()
    chosen = {"WARN": "WARNING", "TRACE": "DEBUG"}.get(chosen, chosen)
    if chosen not in logging.getLevelNamesMapping():
        chosen = "INFO"
    configure_logs(chosen, fmt)


def global_options(f: F) -> F:
    """`--log-level`, `--log-format` and upstream's `--otlp` with its endpoint."""
    f = tracing_options(f)
    return click.option(
        "--log-level",
        default="INFO",
        show_default=True,
        type=click.Choice(LOG_LEVELS, case_sensitive=False),
        help="Log level (RUST_LOG, if set, overrides it).",
    )(f)


@dataclass(frozen=True)
class ServiceAddrs:
    """Where the three services are: URLs (None = embedded default) or a composition file."""

    blob: str | None = None
    directory: str | None = None
    path_info: str | None = None
    composition: str | None = None

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> ServiceAddrs:
        return cls(
            options.pop("blob_service_addr", None),
            options.pop("directory_service_addr", None),
            options.pop("path_info_service_addr", None),
            options.pop("experimental_store_composition", None),
        )

    @property
    def uses_embedded(self) -> bool:
        return self.composition is None and None in (self.blob, self.directory, self.path_info)

    def urls(self) -> tuple[str, str, str]:
        """The three URLs, the embedded store's filling in what was not given."""
        home = store_home()
        blob, directory, path_info = embedded_urls(home)
        if self.blob is None and uses_legacy_layout(home):
            log.warning(
                "%s keeps its blobs in the layout of earlier versions; `tvix-store migrate` "
                "moves them to the current one (much faster imports, dumps and reads)",
                home,
            )
        return (self.blob or blob, self.directory or directory, self.path_info or path_info)

    async def open(self) -> StoreServices:
        if self.composition is not None:
            return await open_store_from_toml(Path(self.composition))
        return await open_store_from_urls(*self.urls())


def error_line(message: str) -> None:
    """One error on stderr, styled as click's own errors (which end the command)."""
    click.echo(f"Error: {message}", err=True)


def failure_message(subject: str, e: BaseException) -> str:
    """`subject: reason` with the subject named once (many errors name their path already)."""
    if isinstance(e, OSError) and e.strerror:
        return f"{e.filename or subject}: {e.strerror}"
    text = str(e) or type(e).__name__
    return text if subject in text else f"{subject}: {text}"


def run_async(main: Callable[[], Coroutine[Any, Any, R]]) -> R:
    """Run a command's coroutine; store and configuration errors become clean CLI errors."""
    try:
        return asyncio.run(main())
    except (ConfigError, CastoreError) as e:
        raise click.ClickException(str(e)) from e


async def with_store(addrs: ServiceAddrs, fn: Callable[[StoreServices], Awaitable[R]]) -> R:
    """Open the services, run `fn`, close them."""
    services = await addrs.open()
    try:
        return await fn(services)
    finally:
        await services.close()
