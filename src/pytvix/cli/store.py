"""`tvix-store`: run the store daemon and work with store paths."""

from __future__ import annotations

from pytvix.cli import cmd_admin, cmd_inspect, cmd_paths
from pytvix.cli.app import cli

COMMAND_MODULES = (cmd_admin, cmd_inspect, cmd_paths)


def main() -> None:
    cli(prog_name="tvix-store")
