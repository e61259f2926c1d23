"""Subprocess for the crash and concurrency tests: writes synthetic paths into the embedded
store at $TVIX_STORE_HOME, printing `done <seed>` after each path info is stored.

Usage: python -m tests.store.crash_writer FIRST_SEED COUNT
"""

from __future__ import annotations

import asyncio
import sys

from pytvix.store.composition import open_store_from_urls
from pytvix.store.defaults import embedded_urls, store_home
from pytvix.testing.synthetic import write_synthetic_path


async def main(first: int, count: int) -> None:
    services = await open_store_from_urls(*embedded_urls(store_home()))
    try:
        for seed in range(first, first + count):
            await write_synthetic_path(services, seed)
            print(f"done {seed}", flush=True)
    finally:
        await services.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
