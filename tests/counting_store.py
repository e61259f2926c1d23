"""An object store that records what is asked of it, for tests of what gets fetched."""

from __future__ import annotations

from collections.abc import Iterator

from pytvix.buffers import Buffer, Parts
from pytvix.castore.drivers.objectstore import (
    NOT_CACHED,
    ObjectMeta,
    ObjectStore,
    open_object_store,
)


class CountingStore(ObjectStore):
    """The store at `url`, counting operations by kind (a read that was NOT_CACHED counts
    once, as the get() that follows it)."""

    def __init__(self, url: str, options: dict[str, str] | None = None) -> None:
        self.inner = open_object_store(url, options)
        self.url, self.remote, self.executor = (
            self.inner.url,
            self.inner.remote,
            self.inner.executor,
        )
        self.gets: list[str] = []
        self.puts: list[str] = []
        self.exists_checks: list[str] = []
        self.creates: list[str] = []

    def exists(self, key: str) -> bool:
        self.exists_checks.append(key)
        return self.inner.exists(key)

    def create(self, key: str, data: Buffer | Parts) -> bool:
        self.creates.append(key)
        return self.inner.create(key, data)

    def get(self, key: str) -> Buffer | None:
        self.gets.append(key)
        return self.inner.get(key)

    def get_cached(self, key: str, max_size: int):  # type: ignore[no-untyped-def]
        data = self.inner.get_cached(key, max_size)
        if data is not NOT_CACHED:
            self.gets.append(key)
        return data

    def put(self, key: str, data: Buffer | Parts) -> None:
        self.puts.append(key)
        self.inner.put(key, data)

    def replace(self, key: str, data: Buffer | Parts) -> None:
        self.puts.append(key)
        self.inner.replace(key, data)

    def copy(self, key: str, new_key: str) -> bool:
        self.gets.append(key)
        return self.inner.copy(key, new_key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def list(self, prefix: str) -> Iterator[ObjectMeta]:
        return self.inner.list(prefix)

    def modified(self, key: str) -> float | None:
        self.exists_checks.append(key)
        return self.inner.modified(key)

    def sync(self) -> None:
        self.inner.sync()
