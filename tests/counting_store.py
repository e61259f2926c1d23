"""An object store that records what is asked of it, for tests of what gets fetched."""

from __future__ import annotations

from pytvix.castore.objectstore import ObjectStore


class CountingStore(ObjectStore):
    """An ObjectStore that counts operations by kind."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.gets: list[str] = []
        self.puts: list[str] = []
        self.exists_checks: list[str] = []
        self.creates: list[str] = []

    def exists(self, key: str) -> bool:
        self.exists_checks.append(key)
        return super().exists(key)

    def create(self, key: str, data):  # type: ignore[no-untyped-def]
        self.creates.append(key)
        return super().create(key, data)

    def get(self, key: str):  # type: ignore[no-untyped-def]
        self.gets.append(key)
        return super().get(key)

    def get_cached(self, key: str, max_size: int):  # type: ignore[no-untyped-def]
        data = super().get_cached(key, max_size)  # a BlockingIOError is followed by a get()
        self.gets.append(key)
        return data

    async def aget(self, key: str):  # type: ignore[no-untyped-def]
        self.gets.append(key)
        return await super().aget(key)

    def put(self, key: str, data):  # type: ignore[no-untyped-def]
        self.puts.append(key)
        super().put(key, data)

    async def aput(self, key: str, data):  # type: ignore[no-untyped-def]
        self.puts.append(key)
        await super().aput(key, data)
