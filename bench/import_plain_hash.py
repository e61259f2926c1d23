"""`tvix-store` with the embedded store's outboard computation replaced by plain BLAKE3 (the
outboards it records are zeros of the right length): the peer that tells what computing Bao
outboards on ingest costs (bench_castore). For benchmarks only; such a store fails its reads.

    python bench/import_plain_hash.py import TREE
"""

from __future__ import annotations

import blake3
from pytvix_bao import outboard_size

from pytvix.buffers import Buffer
from pytvix.castore.blobservice import local
from pytvix.cli.store import main


class PlainHasher:
    """OutboardHasher's interface over blake3 alone."""

    def __init__(self, *, max_threads: int = 1) -> None:
        self._hasher = blake3.blake3()
        self._size = 0

    def update(self, data: Buffer) -> None:
        self._hasher.update(data)
        self._size += len(data)

    def finalize(self) -> tuple[bytes, bytes]:
        return self._hasher.digest(), bytes(outboard_size(self._size))

    def __len__(self) -> int:
        return self._size


def plain_outboard(data: Buffer, *, max_threads: int = 1) -> tuple[bytes, bytes]:
    return blake3.blake3(data).digest(), bytes(outboard_size(len(data)))


if __name__ == "__main__":
    local.OutboardHasher = PlainHasher  # type: ignore[attr-defined,assignment]
    local.outboard = plain_outboard  # type: ignore[attr-defined,assignment]
    main()
