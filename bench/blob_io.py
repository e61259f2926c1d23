"""Subprocess helpers for bench_store: write or read one blob through the embedded store's
blob service and print the seconds it took (excluding interpreter start-up).

    python bench/blob_io.py write STORE_URL SRC_FILE   -> prints "<seconds> <digest>"
    python bench/blob_io.py read STORE_URL DIGEST      -> prints "<seconds> <bytes>"
    python bench/blob_io.py files DIR SRC_FILE         -> prints "<seconds> -"

`files` writes the source as 256 KiB files in sharded directories, each atomically (temporary
file + rename) from 8 threads: what the object store layout costs with no hashing,
chunking or compression, the floor of a write on this file system.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from pytvix.allocator import tune_allocator
from pytvix.castore.blobservice import BlobService
from pytvix.castore.composition import BLOB_SERVICES, from_addr
from pytvix.castore.digests import B3Digest
from pytvix.castore.workers import run

PIECE = 4 << 20
FILE_PIECE = 256 << 10


async def write_blob(service: BlobService, src: str | os.PathLike[str]) -> tuple[float, B3Digest]:
    """Write a file as one blob in 4 MiB pieces; (seconds, digest)."""
    start = time.perf_counter()
    writer = await service.open_write()
    with open(src, "rb", buffering=0) as f:
        while piece := await run(f.read, PIECE):
            await writer.write(piece)
    digest = await writer.close()
    return time.perf_counter() - start, digest


async def write(url: str, src: str) -> None:
    seconds, digest = await write_blob(await from_addr(BLOB_SERVICES, url), src)
    print(f"{seconds:.6f} {digest}")


async def read(url: str, digest: str) -> None:
    start = time.perf_counter()
    service = await from_addr(BLOB_SERVICES, url)
    reader = await service.open_read(B3Digest.parse(digest))
    assert reader is not None, "blob missing"
    total = 0
    while piece := await reader.read(PIECE):
        total += len(piece)
    print(f"{time.perf_counter() - start:.6f} {total}")


def write_files(root: str, src: str) -> None:
    def store(index: int, data: bytes) -> None:
        shard = f"{root}/{(index * 2654435761) & 0xFFFF:04x}"
        os.makedirs(shard, exist_ok=True)
        tmp = f"{shard}/{index}.tmp"
        with open(tmp, "wb", buffering=0) as f:
            f.write(data)
        os.rename(tmp, f"{shard}/{index}")

    start = time.perf_counter()
    with open(src, "rb", buffering=0) as f, ThreadPoolExecutor(8) as pool:
        pending = []
        index = 0
        while piece := f.read(FILE_PIECE):
            pending.append(pool.submit(store, index, piece))
            index += 1
            if len(pending) >= 32:
                pending.pop(0).result()
        for future in pending:
            future.result()
    print(f"{time.perf_counter() - start:.6f} -")


if __name__ == "__main__":
    tune_allocator()  # as the tvix-store command does
    op, url, arg = sys.argv[1:4]
    if op == "files":
        write_files(url, arg)
    else:
        asyncio.run(write(url, arg) if op == "write" else read(url, arg))
