"""The FUSE operations (pyfuse3) of the read-only castore file system (PROTOCOL.md §5).

Content is immutable, so entries and attributes are cached by the kernel "forever" and file
pages are kept between opens (keep_cache). Directories are fetched on first lookup/readdir,
blobs on first read; chunked blobs fetch only the chunks a read touches. Service failures
are logged with the store path they concern and answered with EIO, never with wrong data.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, NoReturn

import pyfuse3

from pytvix.castore.blobservice import BlobReader, BlobService, BytesBlobReader
from pytvix.castore.blobservice.chunked_reader import ChunkedBlobReader
from pytvix.castore.directoryservice import DirectoryService
from pytvix.castore.errors import CastoreError
from pytvix.castore.fs.inodes import ROOT_INODE, InodeData, InodeTracker
from pytvix.castore.fs.roots import RootNodes
from pytvix.castore.nodes import DirectoryNode, FileNode, Node, SymlinkNode
from pytvix.castore.singleflight import SingleFlight

log = logging.getLogger(__name__)

FOREVER = float(1 << 31)  # entry/attribute timeouts: content never changes
BLKSIZE = 1024
XATTR_DIRECTORY = b"user.tvix.castore.directory.digest"
XATTR_BLOB = b"user.tvix.castore.blob.digest"
DOTS = 2  # "." and ".." come first in every listing


def fuse_error(code: int) -> NoReturn:
    raise pyfuse3.FUSEError(code)


@dataclass
class _OpenFile:
    inode: int
    node: FileNode
    reader: BlobReader | None = None
    # the kernel issues concurrent reads on one handle
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def positional(self) -> bool:
        """Whether the reader serves concurrent read_at calls itself."""
        return isinstance(self.reader, ChunkedBlobReader | BytesBlobReader)


@dataclass
class _OpenDir:
    inode: int
    root_listing: list[tuple[bytes, int]] | None = None
    root_done: bool = False
    root_stream: AsyncIterator[tuple[bytes, Node]] | None = field(default=None, repr=False)


class CastoreFs(pyfuse3.Operations):
    supports_dot_lookup = False

    def __init__(
        self,
        roots: RootNodes,
        blobs: BlobService,
        directories: DirectoryService,
        *,
        list_root: bool = False,
        show_xattr: bool = True,
    ) -> None:
        super().__init__()
        self.roots = roots
        self.blobs = blobs
        self.directories = directories
        self.list_root = list_root
        self.show_xattr = show_xattr
        self.inodes = InodeTracker()
        self._root_names: dict[bytes, int] = {}
        self._files: dict[int, _OpenFile] = {}
        self._dirs: dict[int, _OpenDir] = {}
        self._next_fh = 1
        self._populating: SingleFlight[int, list[tuple[bytes, int]]] = SingleFlight()

    # --- helpers -------------------------------------------------------------------------

    def _fh(self) -> int:
        self._next_fh += 1
        return self._next_fh

    def _data(self, inode: int) -> InodeData:
        data = self.inodes.get(inode)
        if data is None:
            fuse_error(errno.ENOENT)
        return data

    def _eio(self, data: InodeData | None, what: str, e: BaseException) -> NoReturn:
        where = self.roots.describe(data.origin) if data is not None else "?"
        log.error("%s: %s: %s", where, what, e)
        fuse_error(errno.EIO)

    def attrs(self, inode: int) -> pyfuse3.EntryAttributes:
        entry = pyfuse3.EntryAttributes()
        entry.st_ino = inode
        entry.entry_timeout = FOREVER
        entry.attr_timeout = FOREVER
        entry.st_nlink = 1
        entry.st_blksize = BLKSIZE
        if inode == ROOT_INODE:
            entry.st_mode = stat.S_IFDIR | 0o555
            return entry
        data = self._data(inode)
        node = data.node
        if isinstance(node, FileNode):
            entry.st_mode = stat.S_IFREG | (0o555 if node.executable else 0o444)
            entry.st_size = node.size
        elif isinstance(node, SymlinkNode):
            entry.st_mode = stat.S_IFLNK | 0o444
            entry.st_size = len(node.target)
        else:
            entry.st_mode = stat.S_IFDIR | 0o555
            entry.st_size = node.size if data.children is None else len(data.children)
        entry.st_blocks = (entry.st_size + 511) // 512
        return entry

    async def _children(self, inode: int) -> list[tuple[bytes, int]]:
        """A directory's entries (name, inode) in castore order, fetched on first use."""
        data = self._data(inode)
        if data.children is not None:
            return data.children
        return await self._populating.run(inode, lambda: self._populate(inode, data))

    async def _populate(self, inode: int, data: InodeData) -> list[tuple[bytes, int]]:
        assert isinstance(data.node, DirectoryNode)
        try:
            directory = await self.directories.get(data.node.digest)
        except CastoreError as e:
            self._eio(data, f"fetching directory {data.node.digest}", e)
        if directory is None:
            self._eio(data, "directory missing", LookupError(str(data.node.digest)))
        children = [
            (bytes(name), self.inodes.put(node, data.origin, inode)) for name, node in directory
        ]
        data.lookup = dict(children)
        data.children = children
        return children

    # --- lookups and attributes ----------------------------------------------------------

    async def lookup(
        self, parent_inode: int, name: bytes, ctx: Any = None
    ) -> pyfuse3.EntryAttributes:
        if parent_inode == ROOT_INODE:
            inode = self._root_names.get(name)
            if inode is None:
                try:
                    node = await self.roots.get(name)
                except CastoreError as e:
                    log.error("%s: lookup failed: %s", self.roots.describe(name), e)
                    fuse_error(errno.EIO)
                if node is None:
                    fuse_error(errno.ENOENT)
                inode = self.inodes.put(node, name)
                self._root_names[name] = inode
            return self.attrs(inode)
        if not self.inodes.is_directory(parent_inode):
            fuse_error(errno.ENOTDIR)
        await self._children(parent_inode)
        inode = self._data(parent_inode).lookup.get(name)
        if inode is None:
            fuse_error(errno.ENOENT)
        return self.attrs(inode)

    async def getattr(self, inode: int, ctx: Any = None) -> pyfuse3.EntryAttributes:
        return self.attrs(inode)

    async def readlink(self, inode: int, ctx: Any = None) -> bytes:
        node = self._data(inode).node if inode != ROOT_INODE else None
        if not isinstance(node, SymlinkNode):
            fuse_error(errno.EINVAL)
        return node.target

    # --- directories ---------------------------------------------------------------------

    async def opendir(self, inode: int, ctx: Any = None) -> int:
        if inode == ROOT_INODE:
            if not self.list_root:
                fuse_error(errno.EPERM)
        elif not self.inodes.is_directory(inode):
            fuse_error(errno.ENOTDIR)
        fh = self._fh()
        self._dirs[fh] = _OpenDir(inode)
        return fh

    async def readdir(self, fh: int, start_id: int, token: Any) -> None:
        """Entries are numbered from 1: "." is 1, ".." is 2, children follow (the kernel
        resumes a listing at the number of the last entry it took)."""
        opened = self._dirs.get(fh)
        if opened is None:
            fuse_error(errno.EBADF)
        for position, (name, inode) in enumerate(self._dots(opened.inode)):
            if start_id <= position and not pyfuse3.readdir_reply(
                token, name, self.attrs(inode), position + 1
            ):
                return
        start_id = max(start_id - DOTS, 0)
        if opened.inode == ROOT_INODE:
            await self._readdir_root(opened, start_id, token)
            return
        children = await self._children(opened.inode)
        for index in range(start_id, len(children)):
            name, inode = children[index]
            if not pyfuse3.readdir_reply(token, name, self.attrs(inode), DOTS + index + 1):
                return

    def _dots(self, inode: int) -> tuple[tuple[bytes, int], tuple[bytes, int]]:
        """ "." and "..": a directory shared by several parents (same digest, one inode) shows
        the parent it was first reached from."""
        parent = ROOT_INODE if inode == ROOT_INODE else self._data(inode).parent
        return (b".", inode), (b"..", parent)

    async def _readdir_root(self, opened: _OpenDir, start_id: int, token: Any) -> None:
        """The root listing is streamed from the roots once per open handle."""
        if opened.root_listing is None:
            opened.root_listing = []
            opened.root_stream = self.roots.list()
        listing = opened.root_listing
        index = start_id
        while True:
            if index >= len(listing):
                if opened.root_done or opened.root_stream is None:
                    return
                try:
                    item = await anext(opened.root_stream, None)
                except CastoreError as e:
                    log.error("listing the root failed: %s", e)
                    fuse_error(errno.EIO)
                if item is None:
                    opened.root_done = True
                    return
                name, node = item
                inode = self.inodes.put(node, name)
                self._root_names.setdefault(name, inode)
                listing.append((name, inode))
            name, inode = listing[index]
            if not pyfuse3.readdir_reply(token, name, self.attrs(inode), DOTS + index + 1):
                return
            index += 1

    async def releasedir(self, fh: int) -> None:
        self._dirs.pop(fh, None)

    # --- files ---------------------------------------------------------------------------

    async def open(self, inode: int, flags: int, ctx: Any = None) -> pyfuse3.FileInfo:
        if inode == ROOT_INODE:
            fuse_error(errno.ENOSYS)
        node = self._data(inode).node
        if not isinstance(node, FileNode):
            fuse_error(errno.EISDIR)
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND):
            fuse_error(errno.EROFS)
        fh = self._fh()
        self._files[fh] = _OpenFile(inode, node)
        return pyfuse3.FileInfo(fh=fh, keep_cache=True)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        opened = self._files.get(fh)
        if opened is None:
            fuse_error(errno.EBADF)
        if off >= opened.node.size:
            return b""
        data = self.inodes.get(opened.inode)
        try:
            if opened.reader is None:
                async with opened.lock:  # one open_read per handle
                    if opened.reader is None:
                        opened.reader = await self.blobs.open_read(opened.node.digest)
                        if opened.reader is None:
                            self._eio(data, "blob missing", LookupError(str(opened.node.digest)))
            if opened.positional:
                return await opened.reader.read_at(off, min(size, opened.node.size - off))
            async with opened.lock:  # readers without positional reads: no interleaving
                return await opened.reader.read_at(off, min(size, opened.node.size - off))
        except CastoreError as e:
            self._eio(data, f"reading blob {opened.node.digest}", e)

    async def release(self, fh: int) -> None:
        opened = self._files.pop(fh, None)
        if opened is not None and opened.reader is not None:
            await opened.reader.close()

    # --- extended attributes -------------------------------------------------------------

    async def getxattr(self, inode: int, name: bytes, ctx: Any = None) -> bytes:
        if not self.show_xattr:
            fuse_error(errno.ENOSYS)
        node = self._data(inode).node if inode != ROOT_INODE else None
        if isinstance(node, DirectoryNode) and name == XATTR_DIRECTORY:
            return str(node.digest).encode()
        if isinstance(node, FileNode) and name == XATTR_BLOB:
            return str(node.digest).encode()
        fuse_error(pyfuse3.ENOATTR)

    async def listxattr(self, inode: int, ctx: Any = None) -> list[bytes]:
        if not self.show_xattr:
            fuse_error(errno.ENOSYS)
        node = self._data(inode).node if inode != ROOT_INODE else None
        if isinstance(node, DirectoryNode):
            return [XATTR_DIRECTORY]
        if isinstance(node, FileNode):
            return [XATTR_BLOB]
        return []

    async def statfs(self, ctx: Any = None) -> pyfuse3.StatvfsData:
        data = pyfuse3.StatvfsData()
        data.f_bsize = BLKSIZE
        data.f_frsize = BLKSIZE
        data.f_namemax = 255
        return data
