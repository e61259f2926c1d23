"""Mounting the file system: foreground, read-only, until SIGINT/SIGTERM or an external
`fusermount3 -u`, always leaving the mount point clean."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal

import pyfuse3
import pyfuse3.asyncio

from pytvix.castore.fs.filesystem import CastoreFs

log = logging.getLogger(__name__)

# The kernel gives FUSE mounts 128 KiB of readahead, so a sequential read arrives as 128 KiB
# requests, each a round trip through Python. With 4 MiB, reads come as 1 MiB requests
# (libfuse's max_pages), measurably faster (README, "Measurements behind the code").
READAHEAD_KB = 4096


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
    readahead = asyncio.create_task(_raise_readahead(mountpoint))
    try:
        # several idle request workers keep the kernel's concurrent requests (readahead,
        # parallel readers) flowing (one worker left sequential reads three times slower)
        await pyfuse3.main(min_tasks=max(4, threads), max_tasks=max(64, 4 * threads))
    finally:
        readahead.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        pyfuse3.close(unmount=True)


async def _raise_readahead(mountpoint: str) -> None:
    """Once the kernel has the FUSE INIT reply (which sets the readahead to the 128 KiB it
    proposed), raise it. A stat() of the mount point is answered only after that reply, by
    the request loop, so it runs in a thread."""
    try:
        path = await asyncio.to_thread(_stat_resolved, mountpoint)
    except OSError as e:
        log.info("readahead left as is: %s", e)
        return
    set_readahead(path, READAHEAD_KB)


def _stat_resolved(path: str) -> str:
    """`path` made absolute, without symlinks, after a stat() of it."""
    os.stat(path)
    return os.path.realpath(path)


def set_readahead(mountpoint: str, kib: int) -> bool:
    """Set the readahead of the mount at `mountpoint` (an absolute path without symlinks;
    via its backing device info in sysfs, needs root). False (and a log line) where it
    could not be set."""
    device = _mount_device(mountpoint)
    if device is None:
        log.info("readahead left as is: %s not found in /proc/self/mountinfo", mountpoint)
        return False
    try:
        with open(f"/sys/class/bdi/{device}/read_ahead_kb", "w") as f:
            f.write(f"{kib}\n")
    except OSError as e:
        log.info("readahead left as is (%s): %s", device, e)
        return False
    return True


def _mount_device(path: str) -> str | None:
    """`major:minor` of the newest mount at `path` (mountinfo escapes space, tab, newline
    and backslash in paths as octal)."""
    device = None
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split(" ")
            if _unescape(fields[4]) == path:
                device = fields[2]
    return device


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)
