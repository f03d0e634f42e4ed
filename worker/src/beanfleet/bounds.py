"""The numbers the worker takes (seconds, megabytes, counts): finite and in range, checked
once at start, with one message format for the command line and for code."""

from __future__ import annotations

import math
from typing import Any

import click

from beanfleet.errors import ConfigError

MAX_SECONDS = 2**32 - 1  # beanstalkd's delays and TTRs are unsigned 32-bit seconds
MAX_MEGABYTES = 2**32 - 1
MAX_RETRIES = 2**32 - 2  # beanstalkd counts reserves in 32 bits: max_retries + 1 must fit


def check_number(
    value: object, what: str, *, low: float, high: float, low_open: bool = False
) -> float:
    """``value`` as a float if it is a finite real number in ``[low, high]`` (``(low, high]``
    with ``low_open``); else ConfigError naming ``what`` and the range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"invalid {what} {value!r}: not a number")
    number = float(value) if isinstance(value, float) or abs(value) < 2**1000 else math.inf
    low_ok = number > low if low_open else number >= low
    if not (math.isfinite(number) and low_ok and number <= high):
        lower = f"> {low:g}" if low_open else f">= {low:g}"
        raise ConfigError(
            f"invalid {what} {value!r}: must be a finite number {lower} and <= {high:.0f}"
        )
    return number


def check_count(value: object, what: str, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"invalid {what} {value!r}: must be an integer {low}..{high}")
    return value


class Number(click.ParamType[float, Any]):
    """A command-line number: parsed as a float, then :func:`check_number` (exit 2)."""

    name = "number"

    def __init__(self, what: str, *, low: float, high: float, low_open: bool = False) -> None:
        self.what = what
        self.low, self.high, self.low_open = low, high, low_open

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        try:
            return check_number(
                number, self.what, low=self.low, high=self.high, low_open=self.low_open
            )
        except ConfigError as exc:
            self.fail(str(exc).replace(repr(number), repr(value)), param, ctx)
