"""The Python entry point: open a store in one line, then import, look up, dump and export.

    store = await pytvix.open_store()                    # the embedded default store
    store = await pytvix.open_store(blob="memory://", directory="memory://",
                                    path_info="memory://")
    store = await pytvix.open_store(composition="store.toml")

`Store` is asynchronous (asyncio); `pytvix.open_store_sync(...)` gives the same operations as
plain blocking calls for scripts, running the store on an event loop of its own. Both close
their services on `close()` or at the end of a `with`/`async with` block. The three services
are there as `store.blob`, `store.directory` and `store.path_info` for everything else.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Self, TypeVar

from pytvix.castore.blobservice import BlobService, read_range
from pytvix.castore.directoryservice import DirectoryService
from pytvix.castore.export import export_node
from pytvix.castore.nodes import FileNode, Node
from pytvix.store.composition import StoreServices, open_store_from_toml, open_store_from_urls
from pytvix.store.defaults import embedded_urls, store_home
from pytvix.store.import_ import import_nar, import_path
from pytvix.store.lookup import (
    StorePathLookupError,
    find_path_info,
    parse_path_arg,
    resolve_subpath,
)
from pytvix.store.nar.io import FileSink, FileSource, ListSink
from pytvix.store.nar.render import render_nar
from pytvix.store.path_info import PathInfo
from pytvix.store.pathinfoservice import PathInfoService

R = TypeVar("R")


async def open_store(
    *,
    blob: str | None = None,
    directory: str | None = None,
    path_info: str | None = None,
    composition: str | os.PathLike[str] | None = None,
    home: str | os.PathLike[str] | None = None,
) -> Store:
    """Open a store from service URLs (those not given: the embedded store at `home`, default
    $TVIX_STORE_HOME or ~/.local/share/pytvix) or from a composition TOML file."""
    if composition is not None:
        return Store(await open_store_from_toml(Path(composition)))
    defaults = embedded_urls(Path(home) if home is not None else store_home())
    urls = (blob or defaults[0], directory or defaults[1], path_info or defaults[2])
    return Store(await open_store_from_urls(*urls))


class Store:
    """A store's three services and the common operations on store paths. A STORE_PATH is
    /nix/store/<hash>-<name>, <hash>-<name> or the hash, optionally with /sub/path."""

    def __init__(self, services: StoreServices) -> None:
        self.services = services

    @property
    def blob(self) -> BlobService:
        return self.services.blob

    @property
    def directory(self) -> DirectoryService:
        return self.services.directory

    @property
    def path_info(self) -> PathInfoService:
        return self.services.path_info

    async def import_path(self, path: str | os.PathLike[str], name: str | None = None) -> PathInfo:
        """Import a file tree as `nix-store --add` would; returns its PathInfo."""
        return (await import_path(path, self.services, name=name)).info

    async def import_nar(self, nar: BinaryIO, name: str) -> PathInfo:
        """Import a NAR read from a binary file object as the store path `name`."""
        return (await import_nar(FileSource(nar), self.services, name)).info

    async def get(self, store_path: str) -> PathInfo | None:
        """The PathInfo of a store path, or None if the store does not have it (a malformed
        store path raises StorePathLookupError)."""
        arg = parse_path_arg(store_path)
        info = await self.path_info.get(arg.digest)
        if info is None or (arg.name is not None and info.store_path.name != arg.name):
            return None
        return info

    async def node(self, store_path: str) -> Node:
        """The castore node at STORE_PATH[/sub/path]; StorePathLookupError if absent."""
        arg = parse_path_arg(store_path)
        info = await find_path_info(self.path_info, arg)
        return await resolve_subpath(self.directory, info.node, arg.subpath, arg.display)

    async def dump(self, store_path: str, out: BinaryIO | None = None) -> bytes | None:
        """The NAR of STORE_PATH[/sub/path]: written to `out` if given, else returned."""
        node = await self.node(store_path)
        if out is not None:
            await render_nar(FileSink(out), node, self.blob, self.directory)
            return None
        sink = ListSink()
        await render_nar(sink, node, self.blob, self.directory)
        return sink.getvalue()

    async def read(self, store_path: str, offset: int = 0, length: int | None = None) -> bytes:
        """Bytes of the file at STORE_PATH/sub/path (a range of it, if asked)."""
        node = await self.node(store_path)
        if not isinstance(node, FileNode):
            raise StorePathLookupError(f"{store_path} is not a regular file")
        reader = await self.blob.open_read(node.digest)
        if reader is None:
            raise StorePathLookupError(f"{store_path}: blob {node.digest} is missing")
        end = node.size if length is None else min(node.size, offset + length)
        async with reader:
            return b"".join([piece async for piece in read_range(reader, offset, end)])

    async def export(self, store_path: str, target: str | os.PathLike[str]) -> None:
        """Materialize STORE_PATH[/sub/path] as files at `target` (which must not exist)."""
        await export_node(await self.node(store_path), target, self.blob, self.directory)

    async def close(self) -> None:
        await self.services.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def open_store_sync(**kwargs: Any) -> SyncStore:
    """`open_store` for scripts without asyncio: the same arguments, blocking methods."""
    return SyncStore(**kwargs)


class SyncStore:
    """The operations of `Store` as blocking calls, on an event loop owned by this object.
    Not thread-safe: use one SyncStore per thread."""

    def __init__(self, **kwargs: Any) -> None:
        self._runner = asyncio.Runner()
        try:
            self.store = self._run(open_store(**kwargs))
        except BaseException:
            self._runner.close()
            raise

    def _run(self, coroutine: Coroutine[Any, Any, R]) -> R:
        return self._runner.run(coroutine)

    def import_path(self, path: str | os.PathLike[str], name: str | None = None) -> PathInfo:
        return self._run(self.store.import_path(path, name))

    def import_nar(self, nar: BinaryIO, name: str) -> PathInfo:
        return self._run(self.store.import_nar(nar, name))

    def get(self, store_path: str) -> PathInfo | None:
        return self._run(self.store.get(store_path))

    def dump(self, store_path: str, out: BinaryIO | None = None) -> bytes | None:
        return self._run(self.store.dump(store_path, out))

    def read(self, store_path: str, offset: int = 0, length: int | None = None) -> bytes:
        return self._run(self.store.read(store_path, offset, length))

    def export(self, store_path: str, target: str | os.PathLike[str]) -> None:
        self._run(self.store.export(store_path, target))

    def close(self) -> None:
        try:
            self._run(self.store.close())
        finally:
            self._runner.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
