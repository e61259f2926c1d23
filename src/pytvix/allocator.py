"""Process-wide malloc settings for the store's commands (glibc only; elsewhere a no-op).

Blob writes and reads allocate and free buffers of 256 KiB to 4 MiB all the time. glibc
serves those from fresh mmap()s or gives freed heap back to the kernel (trim), so each new
buffer page-faults its pages in again; on VMs whose free memory is returned to the host
(free page reporting, as on the development VM) each such fault costs several microseconds.
Keeping buffers up to MMAP_THRESHOLD on the heap, and up to TRIM_THRESHOLD of free heap
before returning it, saves about half the page faults of a large blob write (README,
"Measurements behind the code") at the price of holding on to that much freed memory.
"""

from __future__ import annotations

import ctypes

MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 256 << 20
# Long-running servers hold many clients' buffers at once and must give memory back when
# they go, yet fault in every page of a fresh mmap: buffers up to the 4 MiB store reads
# (and the header and pairs that ride along) come from the heap, reused; larger ones from
# mmap (returned on free); each arena keeps at most 16 MiB of free heap (README,
# "Measurements behind the code").
SERVER_MMAP_THRESHOLD = (4 << 20) + (64 << 10)
SERVER_TRIM_THRESHOLD = 16 << 20
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_allocator(
    mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD
) -> bool:
    """Apply the settings (the defaults suit commands that run and exit; servers pass the
    SERVER_ ones); False where malloc is not glibc's (nothing changed)."""
    try:
        # the process's own symbols (libc among them); find_library("c") would run ldconfig
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(
        mallopt(_M_MMAP_THRESHOLD, mmap_threshold) and mallopt(_M_TRIM_THRESHOLD, trim_threshold)
    )


def tune_allocator_for_server() -> bool:
    return tune_allocator(SERVER_MMAP_THRESHOLD, SERVER_TRIM_THRESHOLD)
