"""In-memory BlobService (`memory://`): a dict, for tests and ephemeral stores. Each blob's Bao
outboard is computed in the same pass as its digest and kept beside it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

from pytvix_bao import OutboardHasher

from pytvix.castore.bao import BlobOutboard
from pytvix.castore.blobservice import BlobReader, BlobService, BlobWriter, BytesBlobReader
from pytvix.castore.blobservice.chunking import Piece, immutable_piece
from pytvix.castore.composition import Composition, ServiceConfig, ServiceUrl
from pytvix.castore.digests import B3Digest
from pytvix.castore.gc import StoredObject, TimedValues


class MemoryBlobService(BlobService):
    def __init__(self) -> None:
        self._blobs = TimedValues("blob")
        self._outboards: dict[B3Digest, bytes] = {}

    async def has(self, digest: B3Digest) -> bool:
        return digest in self._blobs.values

    async def open_read(self, digest: B3Digest) -> BlobReader | None:
        data = self._blobs.values.get(digest)
        return None if data is None else BytesBlobReader(data)

    async def outboard(self, digest: B3Digest) -> BlobOutboard | None:
        data = self._blobs.values.get(digest)
        return None if data is None else BlobOutboard(len(data), self._outboards[digest])

    async def open_write(self) -> BlobWriter:
        return _MemoryBlobWriter(self._blobs, self._outboards)

    async def gc_objects(self) -> AsyncIterator[StoredObject]:
        for obj in self._blobs.objects():
            yield obj

    async def gc_expand(self, live: set[B3Digest]) -> Iterable[B3Digest]:
        return ()

    async def gc_delete(
        self, objects: Sequence[StoredObject], written_before: float
    ) -> list[StoredObject]:
        deleted = self._blobs.delete(objects, written_before)
        for obj in deleted:
            if obj.digest is not None:
                self._outboards.pop(obj.digest, None)
        return deleted


class _MemoryBlobWriter(BlobWriter):
    def __init__(self, blobs: TimedValues, outboards: dict[B3Digest, bytes]) -> None:
        self._blobs = blobs
        self._outboards = outboards
        self._pieces: list[Piece] = []  # joined once, at close
        self._size = 0
        self._hasher = OutboardHasher()
        self._digest: B3Digest | None = None

    async def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._digest is not None:
            raise ValueError("write after close")
        piece = immutable_piece(data)
        self._pieces.append(piece)
        self._size += len(piece)
        self._hasher.update(piece)
        return len(piece)

    async def close(self) -> B3Digest:
        if self._digest is None:
            root, pairs = self._hasher.finalize()
            self._digest = B3Digest(root)
            self._outboards.setdefault(self._digest, pairs)
            new = self._blobs.put(self._digest, b"".join(self._pieces))
            self.new_bytes = self._size if new else 0
            self._pieces = []
        return self._digest

    async def abort(self) -> None:
        self._pieces = []


@dataclass(frozen=True)
class MemoryBlobServiceConfig(ServiceConfig[BlobService]):
    """`memory://` or `type = "memory"`: no options."""

    @classmethod
    def from_url(cls, url: ServiceUrl) -> MemoryBlobServiceConfig:
        url.require_memory_form()
        return cls()

    async def build(self, instance: str, composition: Composition) -> BlobService:
        return MemoryBlobService()

    def durable(self, composition: Composition) -> bool:
        return False
