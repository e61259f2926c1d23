"""Getting store paths out and looking inside: `dump`, `export`, `path-info`, `ls`, `cat`."""

from __future__ import annotations

import json
import stat
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from pytvix.castore.blobservice import read_range
from pytvix.castore.errors import StorageError
from pytvix.castore.export import ExportError, export_node
from pytvix.castore.nodes import DirectoryNode, FileNode, Node, SymlinkNode
from pytvix.cli.app import cli
from pytvix.cli.common import ServiceAddrs, run_async, service_options, with_store
from pytvix.cli.progress import progress_display
from pytvix.nixcompat.nixhash import HashAlgo, NixHash, render_ca
from pytvix.store.composition import StoreServices
from pytvix.store.lookup import (
    PathArg,
    StorePathLookupError,
    find_path_info,
    parse_path_arg,
    resolve_subpath,
)
from pytvix.store.nar.io import FileSink
from pytvix.store.nar.render import render_nar
from pytvix.store.path_info import PathInfo

R = TypeVar("R")

STDOUT_WRITE = 1 << 20
"""dump writes the NAR to stdout in pieces of this size, each a hop to a worker thread."""


def _run(options: dict[str, Any], fn: Callable[[StoreServices], Awaitable[R]]) -> R:
    addrs = ServiceAddrs.from_options(options)

    async def guarded(services: StoreServices) -> R:
        try:
            return await fn(services)
        except (StorePathLookupError, ExportError, OSError) as e:
            raise click.ClickException(str(e)) from e

    return run_async(lambda: with_store(addrs, guarded))


def _arg(text: str) -> PathArg:
    try:
        return parse_path_arg(text)
    except StorePathLookupError as e:
        raise click.BadParameter(str(e)) from e


async def _node_at(services: StoreServices, arg: PathArg) -> tuple[PathInfo, Node]:
    info = await find_path_info(services.path_info, arg)
    node = await resolve_subpath(services.directory, info.node, arg.subpath, arg.display)
    return info, node


@cli.command()
@service_options
@click.argument("store_path")
def dump(store_path: str, **options: Any) -> None:
    """Write the NAR of STORE_PATH[/sub/path] to stdout, as `nix-store --dump` would."""
    arg = _arg(store_path)

    async def main(services: StoreServices) -> None:
        _, node = await _node_at(services, arg)
        sink = FileSink(sys.stdout.buffer)
        blobs, directories = services.blob, services.directory
        await render_nar(sink, node, blobs, directories, buffer_size=STDOUT_WRITE)
        sys.stdout.buffer.flush()

    _run(options, main)


@cli.command()
@service_options
@click.argument("store_path")
@click.argument("dest", type=click.Path(exists=False))
def export(store_path: str, dest: str, **options: Any) -> None:
    """Materialize STORE_PATH[/sub/path] as files at DEST (which must not exist).

    Executable bits and symlinks are preserved; nothing is written outside DEST.
    """
    arg = _arg(store_path)

    async def main(services: StoreServices) -> None:
        _, node = await _node_at(services, arg)
        with progress_display("exporting") as progress:
            await export_node(node, dest, services.blob, services.directory, progress=progress)

    _run(options, main)


def path_info_json(info: PathInfo) -> dict[str, Any]:
    """The fields `nix path-info --json` prints for a path."""
    out: dict[str, Any] = {
        "path": info.store_path.to_absolute_path(),
        "narHash": NixHash(HashAlgo.SHA256, info.nar_sha256).to_sri_str(),
        "narSize": info.nar_size,
        "references": sorted(r.to_absolute_path() for r in info.references),
    }
    if info.deriver is not None:
        out["deriver"] = info.deriver.to_absolute_path() + ".drv"
    if info.signatures:
        out["signatures"] = [str(s) for s in info.signatures]
    if info.ca is not None:
        out["ca"] = render_ca(info.ca)
    return out


@cli.command(name="path-info")
@service_options
@click.argument("store_paths", nargs=-1, required=True)
def path_info(store_paths: tuple[str, ...], **options: Any) -> None:
    """Print what the store knows about STORE_PATHS as JSON, like `nix path-info --json`."""
    args = [_arg(p) for p in store_paths]

    async def main(services: StoreServices) -> list[dict[str, Any]]:
        return [path_info_json(await find_path_info(services.path_info, a)) for a in args]

    click.echo(json.dumps(_run(options, main)))


def _mode_line(name: str, node: Node) -> str:
    if isinstance(node, DirectoryNode):
        return f"{stat.filemode(stat.S_IFDIR | 0o555)} {'':>12} {name}/"
    if isinstance(node, FileNode):
        mode = 0o555 if node.executable else 0o444
        return f"{stat.filemode(stat.S_IFREG | mode)} {node.size:>12} {name}"
    target = node.target.decode("utf-8", "backslashreplace")
    return f"{stat.filemode(stat.S_IFLNK | 0o777)} {'':>12} {name} -> {target}"


@cli.command()
@service_options
@click.argument("store_path")
def ls(store_path: str, **options: Any) -> None:
    """List STORE_PATH[/sub/path]: mode, size and name of each entry."""
    arg = _arg(store_path)

    async def main(services: StoreServices) -> list[str]:
        _, node = await _node_at(services, arg)
        if not isinstance(node, DirectoryNode):
            return [_mode_line(arg.display.rsplit("/", 1)[-1], node)]
        directory = await services.directory.get(node.digest)
        if directory is None:
            raise StorageError(f"{arg.display}: directory {node.digest} is missing")
        return [_mode_line(n.decode("utf-8", "backslashreplace"), c) for n, c in directory]

    for line in _run(options, main):
        click.echo(line)


@cli.command()
@service_options
@click.option(
    "--offset",
    type=click.IntRange(min=0),
    default=0,
    help="Start at this byte of the file (must not be past its end).",
)
@click.option(
    "--length",
    type=click.IntRange(min=0),
    default=None,
    help="Write at most this many bytes (default: to the end).",
)
@click.argument("store_path")
def cat(store_path: str, offset: int, length: int | None, **options: Any) -> None:
    """Write the contents of the file STORE_PATH/sub/path to stdout.

    With --offset and --length only that byte range is written, and only the chunks holding
    it are read (as the FUSE mount reads): `tvix-store cat --offset 1048576 --length 4096
    <hash>/big.iso`.
    """
    arg = _arg(store_path)

    async def main(services: StoreServices) -> None:
        _, node = await _node_at(services, arg)
        if isinstance(node, DirectoryNode):
            raise StorePathLookupError(f"{arg.display} is a directory")
        if isinstance(node, SymlinkNode):
            target = node.target.decode("utf-8", "backslashreplace")
            raise StorePathLookupError(f"{arg.display} is a symlink to {target}")
        if offset > node.size:
            raise StorePathLookupError(
                f"{arg.display}: offset {offset} is past the end of the file ({node.size} bytes)"
            )
        end = node.size if length is None else min(node.size, offset + length)
        reader = await services.blob.open_read(node.digest)
        if reader is None:
            raise StorageError(f"{arg.display}: blob {node.digest} is missing")
        sink = FileSink(sys.stdout.buffer)
        position = offset
        async with reader:
            async for piece in read_range(reader, offset, end):
                position += len(piece)
                await sink.write(piece)
        if position != end:
            raise StorageError(f"{arg.display}: blob has {position} bytes, expected {node.size}")
        sys.stdout.buffer.flush()

    _run(options, main)
