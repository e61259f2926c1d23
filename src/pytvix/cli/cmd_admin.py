"""`info`, `verify` and the long-running services (`daemon`, `mount`).

The subsystems behind `daemon` and `mount` (the gRPC server, aiohttp, pyfuse3 and trio) are
imported by those commands only: they take long to load (README), which every other command
(`dump`, `cat`, `import` ...) would otherwise pay at start.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

import click

from pytvix.allocator import tune_allocator_for_server
from pytvix.castore.composition import BLOB_SERVICES, ConfigError, from_addr
from pytvix.castore.extras import needs_extra
from pytvix.castore.scrub import Describable, ScrubReport
from pytvix.cli.app import cli
from pytvix.cli.common import (
    ServiceAddrs,
    run_async,
    service_options,
    with_store,
)
from pytvix.cli.narbridge import bridge_config, bridge_options, listen_option
from pytvix.cli.observability import MetricsSettings, metrics_options, on_bridge, serving_metrics
from pytvix.cli.progress import human_bytes, progress_display
from pytvix.observability import tracing_enabled
from pytvix.store.composition import StoreServices, open_store_from_urls
from pytvix.store.defaults import embedded_urls, legacy_blob_url, store_home, uses_legacy_layout
from pytvix.store.gc import GcUnsupported
from pytvix.store.listen import ListenAddressError
from pytvix.store.migrate import copy_blobs, referenced_blobs, retire_legacy_blobs
from pytvix.store.secrets import read_secret
from pytvix.store.server_security import ServerSecurity
from pytvix.store.verify import remove_damaged, verify_store


@cli.command()
@service_options
@listen_option(
    "localhost:8000",
    "host:port, [::]:port, or a unix socket path starting with / or . (upstream's default is "
    "[::]:8000; listening beyond loopback needs --write-token-file or "
    "--allow-unauthenticated-writes).",
)
@click.option(
    "--max-calls",
    type=click.IntRange(min=1),
    default=1024,
    show_default=True,
    envvar="MAX_CALLS",
    help="gRPC calls handled at once; more are refused with RESOURCE_EXHAUSTED (each "
    "stalled blob reader holds about 1 MiB besides the shared --max-readahead).",
)
@click.option(
    "--write-token-file",
    type=click.Path(exists=True, dir_okay=False),
    envvar="WRITE_TOKEN_FILE",
    help="Require the token in this file for every write (Put) as `authorization: Bearer "
    "TOKEN` metadata; clients give it with ?token_file=PATH on their grpc+ URL. Reads stay "
    "public.",
)
@click.option(
    "--allow-unauthenticated-writes",
    is_flag=True,
    envvar="ALLOW_UNAUTHENTICATED_WRITES",
    help="Listen beyond loopback without a write token: anyone who can reach the port can "
    "add blobs, directories and store paths. For trusted networks only.",
)
@click.option(
    "--tls-cert-file",
    type=click.Path(exists=True, dir_okay=False),
    envvar="TLS_CERT_FILE",
    help="Serve TLS with this PEM certificate chain (clients use grpc+https://; "
    "?ca_file=PEM for a private CA). Needs --tls-key-file.",
)
@click.option(
    "--tls-key-file",
    type=click.Path(exists=True, dir_okay=False),
    envvar="TLS_KEY_FILE",
    help="The PEM private key of --tls-cert-file.",
)
@click.option(
    "--shutdown-grace",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds in-flight calls may take to finish after SIGINT/SIGTERM.",
)
@click.option(
    "--nar-bridge-listen",
    metavar="ADDR",
    envvar="NAR_BRIDGE_LISTEN",
    help="Also serve nar-bridge (the HTTP binary cache) on this address.",
)
@bridge_options
@metrics_options
def daemon(
    listen_address: str,
    shutdown_grace: float,
    nar_bridge_listen: str | None,
    max_calls: int,
    **options: Any,
) -> None:
    """Serve the BlobService, DirectoryService and PathInfoService over gRPC.

    Also serves grpc.health.v1 and server reflection, and with --nar-bridge-listen the HTTP
    binary cache from the same process. Stops gracefully on SIGINT or SIGTERM: no new calls
    are accepted, in-flight calls finish, a unix socket file is removed.
    """
    from pytvix.narbridge.server import start_bridge  # noqa: PLC0415 (see module docstring)
    from pytvix.store.grpc_daemon import serve_until_signalled  # noqa: PLC0415

    tune_allocator_for_server()
    security = _server_security(options)
    config = bridge_config(options)
    addrs = ServiceAddrs.from_options(options)
    metrics = MetricsSettings.from_options(options, addrs.uses_embedded)
    if on_bridge(metrics, nar_bridge_listen):
        config = dataclasses.replace(config, serve_metrics=True)

    async def main(services: StoreServices) -> None:
        runner = None
        try:
            async with serving_metrics(metrics, services, bridge_listen=nar_bridge_listen):
                if nar_bridge_listen is not None:
                    runner = await start_bridge(services, config, nar_bridge_listen)
                await serve_until_signalled(
                    services, listen_address, shutdown_grace, security, max_calls
                )
        except ListenAddressError as e:
            raise click.ClickException(str(e)) from e
        finally:
            if runner is not None:
                await runner.cleanup()

    run_async(lambda: with_store(addrs, main))


def _server_security(options: dict[str, Any]) -> ServerSecurity:
    """The daemon's ServerSecurity from its options (files read here)."""
    token_file = options.pop("write_token_file")
    cert_file, key_file = options.pop("tls_cert_file"), options.pop("tls_key_file")
    if (cert_file is None) != (key_file is None):
        raise click.UsageError("--tls-cert-file and --tls-key-file go together")
    try:
        return ServerSecurity(
            write_token=read_secret(token_file) if token_file else None,
            tls_cert=Path(cert_file).read_bytes() if cert_file else None,
            tls_key=Path(key_file).read_bytes() if key_file else None,
            allow_unauthenticated_writes=options.pop("allow_unauthenticated_writes"),
        )
    except (OSError, ValueError) as e:
        raise click.ClickException(str(e)) from e


@cli.command()
@service_options
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    envvar="THREADS",
    default=lambda: os.cpu_count() or 4,
    show_default="CPU count",
    help="FUSE requests handled concurrently.",
)
@click.option(
    "--allow-other", is_flag=True, envvar="ALLOW_OTHER", help="Let other users use the mount."
)
@click.option("-l", "--list-root", is_flag=True, help="Allow listing the root (all store paths).")
@click.option(
    "--show-xattr/--no-show-xattr",
    default=True,
    show_default=True,
    help="Expose digests as user.tvix.castore.{directory,blob}.digest xattrs.",
)
@click.argument("mountpoint", type=click.Path(file_okay=False, exists=True))
def mount(
    mountpoint: str,
    threads: int,
    allow_other: bool,
    list_root: bool,
    show_xattr: bool,
    **options: Any,
) -> None:
    """Mount the store read-only at MOUNTPOINT with FUSE; content is fetched lazily.

    The root contains store paths (/nix/store basenames), found by lookup; listing it needs
    --list-root. Runs in the foreground until SIGINT/SIGTERM or `fusermount3 -u MOUNTPOINT`.
    """
    try:
        with needs_extra("tvix-store mount"):
            from pytvix.castore.fs.filesystem import CastoreFs  # noqa: PLC0415 (module docstring)
            from pytvix.castore.fs.mount import run_mount  # noqa: PLC0415
    except ConfigError as e:
        raise click.ClickException(str(e)) from e
    from pytvix.store.fs import StorePathRoots  # noqa: PLC0415

    addrs = ServiceAddrs.from_options(options)

    async def main(services: StoreServices) -> None:
        fs = CastoreFs(
            StorePathRoots(services.path_info),
            services.blob,
            services.directory,
            list_root=list_root,
            show_xattr=show_xattr,
        )
        if tracing_enabled():
            from pytvix.observability.fuse import trace_batches  # noqa: PLC0415

            trace_batches(fs)
        try:
            await run_mount(fs, mountpoint, allow_other=allow_other, threads=threads)
        except RuntimeError as e:
            raise click.ClickException(f"cannot mount {mountpoint}: {e}") from e

    run_async(lambda: with_store(addrs, main))


@cli.command()
@service_options
def info(**options: Any) -> None:
    """Show where the store is, which backends it uses and how much it holds."""
    addrs = ServiceAddrs.from_options(options)

    async def main(services: StoreServices) -> None:
        if addrs.uses_embedded:
            click.echo(f"store home: {store_home()}")
        if addrs.composition:
            click.echo(f"composition: {addrs.composition}")
        for label, service in (
            ("blob service", services.blob),
            ("directory service", services.directory),
            ("path info service", services.path_info),
        ):
            click.echo(f"{label}: {type(service).__name__}")
            if isinstance(service, Describable):
                for key, value in (await service.describe()).items():
                    shown = (
                        human_bytes(value) if isinstance(value, int) and "bytes" in key else value
                    )
                    click.echo(f"  {key}: {shown}")

    run_async(lambda: with_store(addrs, main))


@cli.command()
@service_options
@click.option(
    "--nar",
    is_flag=True,
    help="Also render every store path's NAR and check its hash and size against the path "
    "info (reads all data once more).",
)
@click.option(
    "--repair",
    is_flag=True,
    help="Delete the damaged blobs found, so that importing or copying the DAMAGED paths "
    "again stores them afresh (a write finding a blob present would keep the damaged one).",
)
def verify(nar: bool, repair: bool, **options: Any) -> None:
    """Re-hash every chunk, blob and directory and check every store path's closure.

    Prints each problem found and exits with status 1 if there is any. To repair damaged
    data: run again with --repair, then import or copy the DAMAGED paths again from a good
    source (`tvix-store import DIR`, `tvix-store copy`, `nix copy --to`).
    """
    addrs = ServiceAddrs.from_options(options)

    async def main(services: StoreServices) -> tuple[ScrubReport, int]:
        with progress_display("verifying") as progress:
            report = await verify_store(services, progress, check_nar=nar)
        removed = 0
        if repair and report.damaged_blobs:
            try:
                removed = await remove_damaged(services.blob, report.damaged_blobs)
            except GcUnsupported as e:
                raise click.ClickException(f"cannot repair: {e}") from e
        return report, removed

    report, removed = run_async(lambda: with_store(addrs, main))
    for problem in report.problems:
        click.echo(f"PROBLEM: {problem}")
    for store_path in report.affected:
        click.echo(f"DAMAGED: {store_path} (its closure holds damaged data)")
    for note in report.unsupported:
        click.echo(f"skipped: {note}", err=True)
    checked = ", ".join(f"{n} {what}" for what, n in sorted(report.checked.items()))
    click.echo(f"checked: {checked or 'nothing'}")
    if not report.problems:
        click.echo("no problems found")
        return
    click.echo(f"{len(report.problems)} problem(s) found", err=True)
    if repair:
        click.echo(
            f"removed {removed} damaged object(s); now import or copy the DAMAGED paths "
            "again from a good source, then verify again",
            err=True,
        )
    elif report.damaged_blobs:
        click.echo(
            "to repair: `tvix-store verify --repair` removes the damaged blobs; then import or "
            "copy the DAMAGED paths again from a good source (tvix-store import/copy, nix copy)",
            err=True,
        )
    sys.exit(1)


@cli.command()
def migrate() -> None:
    """Move the embedded store's blobs to the current layout.

    Stores made by earlier versions keep blobs in upstream's object layout under
    $TVIX_STORE_HOME/blobs (one file per chunk); the current layout keeps small blobs in LMDB
    and large ones as whole files, which imports, dumps and the mount read much faster. Every
    blob a store path refers to is copied and verified; then blobs/ is renamed to
    blobs.migrated (remove it when satisfied). Safe to interrupt and run again.
    """
    home = store_home()
    if not uses_legacy_layout(home):
        click.echo(f"{home} already uses the current layout: nothing to do", err=True)
        return
    _, directory_url, path_info_url = embedded_urls(home)

    async def main() -> None:
        old = await open_store_from_urls(legacy_blob_url(home), directory_url, path_info_url)
        new = await from_addr(BLOB_SERVICES, f"local://{home}")
        try:
            wanted = await referenced_blobs(old.path_info, old.directory)
            with progress_display("migrating") as progress:
                stats = await copy_blobs(wanted, old.blob, new, progress)
        finally:
            await new.close()
            await old.close()
        retired = retire_legacy_blobs(home)
        click.echo(
            f"copied {stats.copied} of {stats.blobs} blob(s), {human_bytes(stats.bytes)}; "
            f"the old blobs are in {retired} (remove it when satisfied)",
            err=True,
        )

    run_async(main)
