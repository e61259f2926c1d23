"""Shrinking the store: `pin`, `unpin`, `pins`, `delete`, `gc` and `trim-cache`."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from pytvix.castore.gc import write_refresh
from pytvix.cli.app import cli
from pytvix.cli.common import ServiceAddrs, error_line, run_async, service_options, with_store
from pytvix.cli.observability import gc_report_path
from pytvix.cli.priority import Priority, apply_priority, priority_option
from pytvix.cli.progress import human_bytes, progress_display
from pytvix.cli.units import DURATION, SIZE
from pytvix.observability.gc_report import write_report
from pytvix.store.composition import StoreServices
from pytvix.store.gc import GcOptions, GcReport, collect, plan_delete, root_store
from pytvix.store.gc.report import DEFAULT_GRACE
from pytvix.store.gc.roots import load_graph
from pytvix.store.gc.trim import NotACache, TrimReport, near_caches, trim
from pytvix.store.lookup import StorePathLookupError, find_path_info, parse_path_arg


async def _digests(services: StoreServices, args: tuple[str, ...]) -> list[bytes]:
    """The digests of store path arguments that name path infos in the store."""
    out = []
    for arg in args:
        try:
            info = await find_path_info(services.path_info, parse_path_arg(arg))
        except StorePathLookupError as e:
            raise click.ClickException(str(e)) from e
        out.append(info.store_path.digest)
    return out


def _run(options: dict[str, Any], fn: Any) -> Any:
    addrs = ServiceAddrs.from_options(options)
    return run_async(lambda: with_store(addrs, fn))


@cli.command()
@service_options
@click.argument("name")
@click.argument("store_paths", nargs=-1, required=True)
def pin(name: str, store_paths: tuple[str, ...], **options: Any) -> None:
    """Keep STORE_PATHS and their closures under the pin NAME (replacing what NAME held).

    Garbage collection never removes a pinned path or anything it refers to, whatever the
    retention policy; `tvix-store delete` refuses pinned paths unless forced.
    """

    async def main(services: StoreServices) -> None:
        store = root_store(services.path_info)
        await store.set_pin(name, await _digests(services, store_paths))
        click.echo(f"pinned {len(store_paths)} path(s) as {name!r}", err=True)

    _run(options, main)


@cli.command()
@service_options
@click.argument("name")
def unpin(name: str, **options: Any) -> None:
    """Remove the pin NAME (the paths stay until a retention policy or delete drops them)."""

    async def main(services: StoreServices) -> None:
        if not await root_store(services.path_info).unpin(name):
            raise click.ClickException(f"there is no pin {name!r}")

    _run(options, main)


@cli.command()
@service_options
def pins(**options: Any) -> None:
    """List the pins: name, paths, and the NAR bytes of what each keeps (closures)."""

    async def main(services: StoreServices) -> None:
        graph = await load_graph(services.path_info)
        held = await root_store(services.path_info).pins()
        for name, digests in sorted(held.items()):
            closure = graph.closure(digests)
            size = sum(graph.infos[d].nar_size for d in closure)
            click.echo(
                f"{name}: {len(digests)} path(s), closure {len(closure)}, {human_bytes(size)}"
            )
            for digest in digests:
                shown = graph.name(digest) if digest in graph.infos else f"{digest.hex()} (gone)"
                click.echo(f"  {shown}")

    _run(options, main)


@cli.command()
@service_options
@click.option("--force", is_flag=True, help="Delete even paths other paths or pins still need.")
@click.option(
    "--closure",
    is_flag=True,
    help="Also delete what only these paths kept: their references no other path (or pin) "
    "refers to.",
)
@click.argument("store_paths", nargs=-1, required=True)
def delete(store_paths: tuple[str, ...], force: bool, closure: bool, **options: Any) -> None:
    """Remove the path infos of STORE_PATHS (their data stays until `tvix-store gc`).

    Refuses (exit code 1) paths another kept path refers to or a pin holds, unless --force.
    """

    async def main(services: StoreServices) -> int:
        store = root_store(services.path_info)
        graph = await load_graph(services.path_info)
        targets = await _digests(services, store_paths)
        plan = await plan_delete(store, graph, targets, closure=closure, force=force)
        for digest, users in plan.refused.items():
            why = ", ".join(graph.name(u) for u in users[:3]) or "a pin"
            more = f" and {len(users) - 3} more" if len(users) > 3 else ""
            error_line(f"{graph.name(digest)} is still needed by {why}{more} (--force deletes it)")
        for digest in plan.delete:
            await store.delete(digest)
            click.echo(graph.name(digest))
        click.echo(
            f"deleted {len(plan.delete)} path info(s); `tvix-store gc` reclaims their data",
            err=True,
        )
        return len(plan.refused)

    if _run(options, main):
        sys.exit(1)


@cli.command()
@service_options
@click.option("--dry-run", is_flag=True, help="Report what would be deleted; change nothing.")
@click.option(
    "--grace",
    type=DURATION,
    default=f"{DEFAULT_GRACE:.0f}s",
    show_default=True,
    help="Keep objects written this recently (must exceed the longest import or upload that "
    "may run meanwhile).",
)
@click.option(
    "--keep-since",
    type=DURATION,
    help="First drop store paths neither added nor read for this long (e.g. 30d).",
)
@click.option(
    "--max-size",
    type=SIZE,
    help="First drop least recently used store paths until the data kept fits (e.g. 500G).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option(
    "--report-file",
    type=click.Path(dir_okay=False),
    envvar="GC_REPORT_FILE",
    help="Leave the report (as --json prints it) in this file, for a daemon's or "
    "nar-bridge's metrics (default for the embedded store: $TVIX_STORE_HOME/gc-report.json). "
    "Dry runs leave it alone.",
)
@priority_option
def gc(
    dry_run: bool,
    grace: float,
    keep_since: float | None,
    max_size: int | None,
    as_json: bool,
    *,
    priority: Priority,
    **options: Any,
) -> None:
    """Delete blobs and directories no store path or pin reaches.

    Marks everything reachable from the store's path infos and pins, then sweeps the rest,
    keeping anything written within --grace of the start (and during the run), so imports,
    uploads and copies running meanwhile lose nothing. With --keep-since or --max-size,
    path infos are dropped first (never pinned closures, never paths a kept path refers to).
    One collection at a time per store.
    """
    if grace < 2 * write_refresh():
        click.echo(
            f"warning: a grace period under {2 * write_refresh():.0f}s is only safe when nothing "
            "writes to the store meanwhile",
            err=True,
        )
    gc_options = GcOptions(dry_run, grace, keep_since, max_size)
    apply_priority(priority)
    report_file: str | None = options.pop("report_file")
    report_path = gc_report_path(
        report_file, ServiceAddrs.from_options(dict(options)).uses_embedded
    )

    async def main(services: StoreServices) -> GcReport:
        with progress_display("collecting") as progress:
            return await collect(services, gc_options, progress)

    report: GcReport = _run(options, main)
    if report_path is not None and not dry_run:
        write_report(report_path, report.as_json())
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
        return
    _print_summary(report)


def _print_summary(report: GcReport) -> None:
    verb = "would delete" if report.dry_run else "deleted"
    for path in report.dropped_paths:
        click.echo(f"{verb} path info {path}", err=True)
    for kind, totals in sorted(report.kinds.items()):
        click.echo(
            f"{kind}: {totals.found} found ({human_bytes(totals.found_bytes)}), {verb} "
            f"{totals.deleted} ({human_bytes(totals.deleted_bytes)})",
            err=True,
        )
    click.echo(
        f"{report.roots} root(s), {report.marked} live object(s); {report.seconds:.2f}s "
        f"(mark {report.mark_seconds:.2f}s, sweep {report.sweep_seconds:.2f}s)",
        err=True,
    )


@cli.command("trim-cache")
@service_options
@click.option(
    "--max-size",
    type=SIZE,
    required=True,
    help="Bytes each near blob cache may keep (e.g. 50G).",
)
@click.option("--dry-run", is_flag=True, help="Report what would be evicted; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@priority_option
def trim_cache(
    max_size: int, dry_run: bool, as_json: bool, priority: Priority, **options: Any
) -> None:
    """Evict the oldest objects of the near blob caches until each fits in --max-size.

    For compositions with a `cache` (or upstream's `combined`) blob service: the near store
    in front of a far one keeps its most recently filled objects, the far store is not
    touched, and reads fill the near store again. A `combined` local store keeps blobs only
    it holds (written through it, not yet in the remote). Unlike gc, this needs no lock and
    can run on each node of a cluster for its own cache.
    """

    async def main(services: StoreServices) -> TrimReport:
        try:
            caches = near_caches(services.blob)
        except NotACache as e:
            raise click.ClickException(str(e)) from e
        with progress_display("trimming") as progress:
            return await trim(caches, max_size, dry_run=dry_run, progress=progress)

    apply_priority(priority)
    report: TrimReport = _run(options, main)
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
        return
    verb = "would evict" if dry_run else "evicted"
    click.echo(
        f"{', '.join(report.caches)}: {report.found} objects ({human_bytes(report.found_bytes)})"
        f", {verb} {report.evicted} ({human_bytes(report.evicted_bytes)}) in "
        f"{report.seconds:.2f}s",
        err=True,
    )
    if report.kept_local_only:
        click.echo(f"kept {report.kept_local_only} blob(s) the remote lacks", err=True)
