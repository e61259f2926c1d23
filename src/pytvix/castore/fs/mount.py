"""Mounting the file system: foreground, read-only, until SIGINT/SIGTERM or an external
`fusermount3 -u`, always leaving the mount point clean."""

from __future__ import annotations

import asyncio
import logging
import signal

import pyfuse3
import pyfuse3.asyncio

from pytvix.castore.fs.filesystem import CastoreFs

log = logging.getLogger(__name__)


async def run_mount(
    fs: CastoreFs, mountpoint: str, *, allow_other: bool = False, threads: int = 16
) -> None:
    """Serve `fs` at `mountpoint` until signalled or unmounted."""
    pyfuse3.asyncio.enable()
    options = {"ro", "fsname=tvix-store", "subtype=pytvix", "default_permissions"}
    if allow_other:
        options.add("allow_other")
    pyfuse3.init(fs, mountpoint, options)
    loop = asyncio.get_running_loop()
    stopping = False

    def stop() -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            log.info("unmounting %s", mountpoint)
            pyfuse3.terminate()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    log.info("mounted at %s", mountpoint)
    try:
        # several idle request workers keep the kernel's concurrent requests (readahead,
        # parallel readers) flowing; measured 712 MB/s with 1 vs 2 GB/s with 4 on a no-op FS
        await pyfuse3.main(min_tasks=max(4, threads), max_tasks=max(64, 4 * threads))
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        pyfuse3.close(unmount=True)
