"""Bao outboards for backends that do not store one for a blob: derived from the blob's
verified bytes, and a bounded cache of derived ones."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from pytvix_bao import OutboardHasher

from pytvix.castore.bao import BlobOutboard
from pytvix.castore.digests import B3Digest
from pytvix.castore.errors import StorageError
from pytvix.castore.workers import run

if TYPE_CHECKING:
    from pytvix.castore.blobservice import BlobReader

PIECE = 4 << 20
INLINE_HASH = 64 << 10  # pieces up to this size are hashed on the event loop
CACHE_BYTES = 64 << 20


async def derive_outboard(reader: BlobReader, digest: B3Digest) -> BlobOutboard:
    """The outboard of the blob `reader` reads (verified bytes), computed in one pass."""
    hasher = OutboardHasher()
    position = 0
    while data := await reader.read_at(position, PIECE):
        if len(data) > INLINE_HASH:
            await run(hasher.update, data)
        else:
            hasher.update(data)
        position += len(data)
    root, pairs = hasher.finalize()
    if position != reader.size or root != digest:
        raise StorageError(f"blob {digest} read back as {position} bytes hashing elsewhere")
    return BlobOutboard(position, pairs)


class OutboardCache:
    """Recently derived outboards, least recently used dropped first beyond `capacity`
    bytes of pairs."""

    def __init__(self, capacity: int = CACHE_BYTES) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[B3Digest, BlobOutboard] = OrderedDict()
        self._bytes = 0

    def get(self, digest: B3Digest) -> BlobOutboard | None:
        found = self._entries.get(digest)
        if found is not None:
            self._entries.move_to_end(digest)
        return found

    def put(self, digest: B3Digest, outboard: BlobOutboard) -> None:
        if len(outboard.pairs) > self.capacity or digest in self._entries:
            return
        self._entries[digest] = outboard
        self._bytes += len(outboard.pairs)
        while self._bytes > self.capacity:
            _, old = self._entries.popitem(last=False)
            self._bytes -= len(old.pairs)
