"""NARs uploaded recently, by NAR hash, waiting for the narinfo that names them (upstream
keeps the last 1000 in an LRU)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from pytvix.castore.nodes import Node

CAPACITY = 1000


@dataclass(frozen=True)
class Upload:
    node: Node
    nar_size: int
    nar_sha256: bytes
    file_sha256: bytes  # of the bytes as uploaded (compressed or not)
    file_size: int


class RecentUploads:
    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        self._by_nar_hash: OrderedDict[bytes, Upload] = OrderedDict()

    def add(self, upload: Upload) -> None:
        self._by_nar_hash[upload.nar_sha256] = upload
        self._by_nar_hash.move_to_end(upload.nar_sha256)
        while len(self._by_nar_hash) > self._capacity:
            self._by_nar_hash.popitem(last=False)

    def get(self, nar_sha256: bytes) -> Upload | None:
        return self._by_nar_hash.get(nar_sha256)
