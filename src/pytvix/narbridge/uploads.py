"""NARs uploaded recently, by NAR hash, waiting for the narinfo that names them (upstream
keeps the last 1000 in an LRU).

`RecentUploads` keeps them in the process. `SharedUploads` keeps them as files in a directory
the worker processes of one nar-bridge share (`--workers`), since a client's narinfo PUT may
reach another worker than its NAR PUT: one file per upload, named by the NAR hash, written
atomically; only the newest CAPACITY are kept.
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from pytvix.castore.nodes import Node
from pytvix.castore.proto import decode_node, node_to_proto

CAPACITY = 1000
_SIZES = struct.Struct("<QQ32s32s")  # nar size, file size, nar sha256, file sha256
PRUNE_EVERY = 100  # shared uploads: look for files over CAPACITY every this many uploads


@dataclass(frozen=True)
class Upload:
    node: Node
    nar_size: int
    nar_sha256: bytes
    file_sha256: bytes  # of the bytes as uploaded (compressed or not)
    file_size: int

    def encode(self) -> bytes:
        sizes = _SIZES.pack(self.nar_size, self.file_size, self.nar_sha256, self.file_sha256)
        return sizes + node_to_proto(b"", self.node).SerializeToString(deterministic=True)

    @classmethod
    def decode(cls, data: bytes) -> Upload:
        nar_size, file_size, nar_sha256, file_sha256 = _SIZES.unpack_from(data)
        _, node = decode_node(data[_SIZES.size :], anonymous=True)
        return cls(node, nar_size, nar_sha256, file_sha256, file_size)


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


class SharedUploads:
    """Uploads as files in `directory` (private to the nar-bridge's processes)."""

    def __init__(self, directory: str, capacity: int = CAPACITY) -> None:
        self.directory = Path(directory)
        self._capacity = capacity
        self._added = 0

    def add(self, upload: Upload) -> None:
        fd, staging = tempfile.mkstemp(dir=self.directory, prefix=".staging-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(upload.encode())
            os.replace(staging, self.directory / upload.nar_sha256.hex())
        except BaseException:
            Path(staging).unlink(missing_ok=True)
            raise
        self._added += 1
        if self._added % PRUNE_EVERY == 0:
            self._prune()

    def get(self, nar_sha256: bytes) -> Upload | None:
        try:
            data = (self.directory / nar_sha256.hex()).read_bytes()
        except FileNotFoundError:
            return None
        return Upload.decode(data)

    def _prune(self) -> None:
        entries: list[tuple[float, str]] = []
        for entry in os.scandir(self.directory):
            if entry.name.startswith("."):
                continue
            try:
                entries.append((entry.stat().st_mtime, entry.path))
            except FileNotFoundError:  # another worker pruned it
                continue
        entries.sort()
        for _, path in entries[: max(0, len(entries) - self._capacity)]:
            Path(path).unlink(missing_ok=True)
