"""Sizes and durations on the command line: `64G`, `512MiB`, `1.5 GB`; `90s`, `1h`, `7d`."""

from __future__ import annotations

import re
from typing import Any

import click

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)(I?B?)\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d|w)?\s*$", re.IGNORECASE)
_DURATION_SECONDS = {
    None: 1.0,
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}


def parse_size(text: str) -> int:
    """Bytes from `123`, `64K`, `512MiB`, `1.5G`, `2TB` (K, M, G, T, P are powers of 1024,
    as Nix and most storage tools use them); ValueError if malformed."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size (examples: 4096, 64M, 1.5G, 2TiB)")
    number, prefix, _ = match.groups()
    scale = 1024 ** ("KMGTP".index(prefix.upper()) + 1) if prefix else 1
    return int(float(number) * scale)


def parse_duration(text: str) -> float:
    """Seconds from `90`, `90s`, `15m`, `1.5h`, `7d`, `2w`; ValueError if malformed."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration (examples: 90s, 15m, 1h, 7d)")
    number, unit = match.groups()
    return float(number) * _DURATION_SECONDS[unit.lower() if unit else None]


class SizeType(click.ParamType[int]):
    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)


class DurationType(click.ParamType[float]):
    name = "DURATION"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)


SIZE = SizeType()
DURATION = DurationType()
