"""Scheduling priority of background maintenance (`gc`, `trim-cache`).

A collection shares the machine with imports, uploads and reads that users wait for. In the
background priority the process gets the lowest CPU priority (nice 19) and the lowest level of
the best-effort I/O class: it still progresses on a busy machine, and never by the idle I/O
class, which can starve a collection that holds the store's write lock while it commits.

Linux applies both per thread and threads inherit them: call `apply_priority` before the
command starts its event loop and worker pools.
"""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import click

from pytvix.castore.drivers.local_files import libc

Priority = Literal["background", "normal"]
PRIORITIES: tuple[Priority, ...] = ("background", "normal")

BACKGROUND_NICE = 19
_IOPRIO_WHO_PROCESS = 1
_IOPRIO_CLASS_SHIFT = 13
IOPRIO_CLASS_BEST_EFFORT = 2
IOPRIO_LOWEST_LEVEL = 7
# ioprio_set / ioprio_get: the generic table's numbers differ from x86_64's
_IOPRIO_SYSCALLS = {"x86_64": (251, 252), "aarch64": (30, 31)}

F = TypeVar("F", bound=Callable[..., Any])


def priority_option(command: F) -> F:
    """The `--priority` option of maintenance commands."""
    return click.option(
        "--priority",
        type=click.Choice(PRIORITIES),
        default="background",
        show_default=True,
        help="background: lowest CPU priority (nice 19) and lowest best-effort I/O priority, "
        "so imports, uploads and reads on this machine go first; normal: compete with them "
        "as equals (finishes sooner on a busy machine).",
    )(command)


def apply_priority(priority: Priority) -> None:
    """Set the calling thread's (and its future threads') CPU and I/O priority.

    "normal" changes nothing. Never fails: a kernel or architecture without I/O priorities
    keeps the CPU part.
    """
    if priority == "normal":
        return
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if current < BACKGROUND_NICE:
        os.setpriority(os.PRIO_PROCESS, 0, BACKGROUND_NICE)
    set_io_priority(IOPRIO_CLASS_BEST_EFFORT, IOPRIO_LOWEST_LEVEL)


def set_io_priority(io_class: int, level: int) -> bool:
    """ioprio_set for the calling thread; False where the kernel or architecture cannot."""
    numbers = _IOPRIO_SYSCALLS.get(platform.machine())
    if numbers is None:
        return False
    value = (io_class << _IOPRIO_CLASS_SHIFT) | level
    return _syscall(numbers[0], _IOPRIO_WHO_PROCESS, 0, value) == 0


def io_priority(tid: int = 0) -> tuple[int, int] | None:
    """(class, level) of thread `tid` (0: the caller); None where it cannot be read."""
    numbers = _IOPRIO_SYSCALLS.get(platform.machine())
    if numbers is None:
        return None
    value = _syscall(numbers[1], _IOPRIO_WHO_PROCESS, tid)
    if value < 0:
        return None
    return value >> _IOPRIO_CLASS_SHIFT, value & ((1 << _IOPRIO_CLASS_SHIFT) - 1)


def _syscall(*args: int) -> int:
    # syscall() is variadic and reads every argument as a long: pass them as such
    return int(libc().syscall(*(ctypes.c_long(arg) for arg in args)))
