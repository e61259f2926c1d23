"""Object files below a local directory (`file:///dir`), handled directly (not through
obstore): atomic writes, a page-cache read that never waits, listings, and a durability
barrier (drivers.local_files does the file work)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from pytvix.buffers import Buffer, Parts, as_parts
from pytvix.castore.drivers.local_files import LocalFiles
from pytvix.castore.drivers.objectstore import NOT_CACHED, ObjectMeta, ObjectStore, _NotCached
from pytvix.castore.errors import StorageError
from pytvix.castore.workers import pool


class LocalObjectStore(ObjectStore):
    def __init__(self, root: str, url: str | None = None) -> None:
        self.url = url or f"file://{root}"
        self.root = root
        self.remote = False
        self.executor = pool()
        try:
            Path(root).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create {root}: {e.strerror}") from e
        self.files = LocalFiles(root)

    def get(self, key: str) -> Buffer | None:
        try:
            return self.files.read(key)
        except OSError as e:
            raise self._error("get", key, e) from e

    def get_cached(self, key: str, max_size: int) -> Buffer | _NotCached | None:
        try:
            return self.files.read_cached(key, max_size)
        except BlockingIOError:
            return NOT_CACHED
        except OSError as e:
            raise self._error("get", key, e) from e

    def put(self, key: str, data: Buffer | Parts) -> None:
        """Create or replace the object (a stray staging file at most, after a crash)."""
        try:
            self.files.write(key, as_parts(data))
        except OSError as e:
            raise self._error("put", key, e) from e

    def copy(self, key: str, new_key: str) -> bool:
        """A hard link (no bytes copied)."""
        try:
            return self.files.link(key, new_key)
        except OSError as e:
            raise self._error("copy", key, e) from e

    def create(self, key: str, data: Buffer | Parts) -> bool:
        if self.exists(key):
            return False
        self.put(key, data)
        return True

    def exists(self, key: str) -> bool:
        return self.files.exists(key)

    def delete(self, key: str) -> None:
        try:
            os.unlink(f"{self.root}/{key}")
        except FileNotFoundError:
            pass
        except OSError as e:
            raise self._error("delete", key, e) from e

    def list(self, prefix: str) -> Iterator[ObjectMeta]:
        """Objects below the directory `prefix` (path segments, as obstore lists), depth
        first; staging files of writes in progress (`name#digits`) are not objects."""
        directory = prefix.strip("/")
        try:
            yield from self._walk(f"{self.root}/{directory}" if directory else self.root, directory)
        except OSError as e:
            raise self._error("list", prefix, e) from e

    def _walk(self, path: str, key_dir: str) -> Iterator[ObjectMeta]:
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            key = f"{key_dir}/{entry.name}" if key_dir else entry.name
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(entry.path, key)
            elif entry.is_file(follow_symlinks=False) and "#" not in entry.name:
                st = entry.stat(follow_symlinks=False)
                yield ObjectMeta(key, st.st_size, st.st_mtime)

    def modified(self, key: str) -> float | None:
        try:
            return os.stat(f"{self.root}/{key}", follow_symlinks=False).st_mtime
        except FileNotFoundError:
            return None

    def sync(self) -> None:
        """A syncfs(); concurrent callers share one (group commit)."""
        try:
            self.files.sync()
        except OSError as e:
            raise StorageError(f"syncfs of {self.url} failed: {e.strerror or e}") from e
