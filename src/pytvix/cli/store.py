"""`tvix-store`: run the store daemon and work with store paths."""

from __future__ import annotations

from pytvix.allocator import tune_allocator
from pytvix.cli import cmd_admin, cmd_castore, cmd_gc, cmd_inspect, cmd_paths
from pytvix.cli.app import cli
from pytvix.cli.common import configure_from_environment

COMMAND_MODULES = (cmd_admin, cmd_castore, cmd_gc, cmd_inspect, cmd_paths)


def main() -> None:
    tune_allocator()
    configure_from_environment()
    cli(prog_name="tvix-store")
