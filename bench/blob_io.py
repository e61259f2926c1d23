"""Subprocess helpers for bench_store: write or read one blob through the embedded store's
blob service and print the seconds it took (excluding interpreter start-up).

    python bench/blob_io.py write STORE_URL SRC_FILE   -> prints "<seconds> <digest>"
    python bench/blob_io.py read STORE_URL DIGEST      -> prints "<seconds> <bytes>"
"""

from __future__ import annotations

import asyncio
import sys
import time

from pytvix.castore.composition import BLOB_SERVICES, from_addr
from pytvix.castore.digests import B3Digest
from pytvix.castore.workers import run

PIECE = 4 << 20


async def write(url: str, src: str) -> None:
    service = await from_addr(BLOB_SERVICES, url)
    start = time.perf_counter()
    writer = await service.open_write()
    with open(src, "rb", buffering=0) as f:
        while piece := await run(f.read, PIECE):
            await writer.write(piece)
    digest = await writer.close()
    print(f"{time.perf_counter() - start:.6f} {digest}")


async def read(url: str, digest: str) -> None:
    start = time.perf_counter()
    service = await from_addr(BLOB_SERVICES, url)
    reader = await service.open_read(B3Digest.parse(digest))
    assert reader is not None, "blob missing"
    total = 0
    while piece := await reader.read(PIECE):
        total += len(piece)
    print(f"{time.perf_counter() - start:.6f} {total}")


if __name__ == "__main__":
    op, url, arg = sys.argv[1:4]
    asyncio.run(write(url, arg) if op == "write" else read(url, arg))
