"""Putting store paths in: `import`, `import-nar`, `copy`."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import click

from pytvix.castore.ingest.fs import IngestStats
from pytvix.castore.ingest.walk import IngestError
from pytvix.cli.app import cli
from pytvix.cli.common import (
    ServiceAddrs,
    error_line,
    failure_message,
    run_async,
    service_options,
    with_store,
)
from pytvix.cli.progress import human_bytes, progress_display
from pytvix.store.composition import StoreServices
from pytvix.store.copy import copy_closure, parse_closure
from pytvix.store.import_ import Imported, StoreImportError, import_nar, import_path
from pytvix.store.nar.errors import NarError
from pytvix.store.nar.io import FileSource

IMPORT_PARALLELISM = 50
USER_ERRORS = (IngestError, StoreImportError, NarError, OSError)


@cli.command(name="import")
@service_options
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=False))
def import_(paths: tuple[str, ...], **options: Any) -> None:
    """Import file trees as Nix store paths.

    Prints one /nix/store path per PATH, the same path `nix-store --add PATH` prints, and
    records its NAR hash and size. Symlinks are stored, never followed. Up to 50 paths are
    imported in parallel; a summary goes to stderr.
    """
    addrs = ServiceAddrs.from_options(options)

    async def main(services: StoreServices) -> int:
        semaphore = asyncio.Semaphore(IMPORT_PARALLELISM)
        start = time.monotonic()
        with progress_display("importing") as progress:

            async def one(path: str) -> Imported | BaseException:
                async with semaphore:
                    try:
                        return await import_path(path, services, progress=progress)
                    except USER_ERRORS as e:
                        return e

            results = await asyncio.gather(*(one(p) for p in paths))
        failures = 0
        totals = IngestStats()
        for path, result in zip(paths, results, strict=True):
            if isinstance(result, BaseException):
                failures += 1
                error_line(failure_message(path, result))
                continue
            click.echo(result.info.store_path.to_absolute_path())
            if result.stats is not None:
                totals.merge(result.stats)
        if failures < len(paths):
            _summary(len(paths) - failures, totals, time.monotonic() - start)
        return failures

    if run_async(lambda: with_store(addrs, main)):
        sys.exit(1)


def _summary(count: int, stats: IngestStats, seconds: float) -> None:
    dedup = "unknown" if stats.new_bytes is None else human_bytes(stats.bytes - stats.new_bytes)
    rate = human_bytes(stats.bytes / max(seconds, 1e-9))
    click.echo(
        f"imported {count} path(s): {stats.files} files, {human_bytes(stats.bytes)} "
        f"({dedup} deduplicated) in {seconds:.2f}s, {rate}/s",
        err=True,
    )


@cli.command(name="import-nar")
@service_options
@click.option("--name", help="Store path name (default: FILE's name without .nar).")
@click.argument("file", type=click.Path(allow_dash=True, dir_okay=False))
def import_nar_cmd(file: str, name: str | None, **options: Any) -> None:
    """Import a NAR (for example from `nix-store --dump`) and print its store path.

    FILE may be - for standard input (then --name is required). The NAR is validated
    strictly; trailing data is an error and a failed import registers nothing.
    """
    addrs = ServiceAddrs.from_options(options)
    if name is None:
        if file == "-":
            raise click.UsageError("--name is required when reading the NAR from stdin")
        name = Path(file).name.removesuffix(".nar")

    try:
        stream = sys.stdin.buffer if file == "-" else open(file, "rb")  # noqa: SIM115
    except OSError as e:
        raise click.ClickException(f"cannot open {file}: {e.strerror}") from e

    async def main(services: StoreServices) -> Imported:
        try:
            return await import_nar(FileSource(stream), services, name)
        except USER_ERRORS as e:
            raise click.ClickException(failure_message(file, e)) from e
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()

    click.echo(run_async(lambda: with_store(addrs, main)).info.store_path.to_absolute_path())


@cli.command()
@service_options
@click.argument(
    "nix_attrs_json_file",
    envvar="NIX_ATTRS_JSON_FILE",
    type=click.Path(exists=True, dir_okay=False),
)
def copy(nix_attrs_json_file: str, **options: Any) -> None:
    """Copy the closure listed in a structured-attrs JSON file from /nix/store.

    Reads the `closure` key (as written by Nix for `exportReferencesGraph` with structured
    attrs, $NIX_ATTRS_JSON_FILE inside a build), skips paths already present, and ingests
    the others from the local /nix/store, checking each NAR hash and size.
    """
    addrs = ServiceAddrs.from_options(options)
    entries = parse_closure(Path(nix_attrs_json_file).read_text(), nix_attrs_json_file)

    async def main(services: StoreServices) -> None:
        with progress_display("copying") as progress:
            try:
                written = await copy_closure(entries, services, progress=progress)
            except USER_ERRORS as e:
                raise click.ClickException(str(e)) from e
        for info in written:
            click.echo(info.store_path.to_absolute_path())
        click.echo(
            f"copied {len(written)} path(s), {len(entries) - len(written)} already present",
            err=True,
        )

    run_async(lambda: with_store(addrs, main))
