"""Job priorities by name or number, and the put arguments measured in seconds."""

from __future__ import annotations

import math
from datetime import timedelta

from beanfleet.bounds import parse_int, shown
from beanfleet.errors import ConfigError

# Lower is more urgent.  beanstalkd counts jobs with priority < 1024 as "urgent" in its
# stats, so "normal" sits exactly on that line and "high"/"critical" show up as urgent.
PRIORITIES: dict[str, int] = {"critical": 0, "high": 256, "normal": 1024, "low": 2048}
DEFAULT_PRIORITY = PRIORITIES["normal"]
MAX_PRIORITY = 2**32 - 1

# beanstalkd keeps delay and ttr as unsigned 32-bit seconds on the wire.
MAX_SECONDS = 2**32 - 1
DEFAULT_TTR = 60

Priority = int | str
Seconds = int | float | timedelta


def _ascii_digits(text: str) -> bool:
    # str.isdigit() also accepts "٣" or "³", and int() would take " 5": neither is a number
    # a shell user typed on purpose.
    return text.isascii() and text.isdigit()


def parse_priority(value: Priority) -> int:
    """A priority name (case-insensitive) or an integer 0..2**32-1 (ASCII digits only).

    Not a float (beanstalkd's priorities are whole numbers: 1.5 would be truncated
    silently) and not a bool (True as a priority is surely a mistake)."""
    if isinstance(value, str):
        named = PRIORITIES.get(value.lower())
        if named is not None:
            return named
        if not _ascii_digits(value):
            names = ", ".join(PRIORITIES)
            raise ConfigError(f"invalid priority {shown(value)}: use {names} or 0..{MAX_PRIORITY}")
        return parse_int(value, "priority", low=0, high=MAX_PRIORITY)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise ConfigError(
            f"invalid priority {shown(value)}: must be an integer 0..{MAX_PRIORITY} "
            f"or one of {', '.join(PRIORITIES)}"
        )
    if not 0 <= number <= MAX_PRIORITY:
        raise ConfigError(f"invalid priority {shown(value)}: must be 0..{MAX_PRIORITY}")
    return number


def whole_seconds(value: Seconds, what: str) -> int:
    """Seconds as beanstalkd's whole seconds, rounded up so nothing happens early."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ConfigError(f"invalid {what} {shown(value)}: not a number of seconds")
    if isinstance(seconds, float) and not math.isfinite(seconds):
        raise ConfigError(f"invalid {what} {value!r}")
    # (ints are compared as ints: float() of one with hundreds of digits overflows)
    whole = seconds if isinstance(seconds, int) else math.ceil(seconds)
    if seconds < 0 or whole > MAX_SECONDS:
        raise ConfigError(f"invalid {what} {shown(value)}: must be 0..{MAX_SECONDS} seconds")
    return whole


def parse_ttr(value: Seconds) -> int:
    """The one TTR rule, for the producer API and ``beanfleet put``: more than 0 seconds
    (rounded up to whole seconds), at most 2**32-1.  beanstalkd would silently turn 0 into 1."""
    ttr = whole_seconds(value, "ttr")
    if ttr < 1:
        raise ConfigError(f"invalid ttr {value!r}: must be 1..{MAX_SECONDS} seconds")
    return ttr
