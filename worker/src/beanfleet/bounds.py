"""The numbers beanfleet takes (seconds, megabytes, counts, ids, ports): finite and in range,
checked once at start, with one message format for the command line and for code.

Integers typed by people are parsed here (:func:`parse_int`, :class:`Count`) and never with a
bare ``int()``: Python refuses more than 4,300 digits with a ValueError, and a number beyond
what beanstalkd reads (32 or 64 bits) comes back as BAD_FORMAT at run time.  Both are usage
errors, reported on one line with the value cut short."""

from __future__ import annotations

import math
import re

from beanfleet.errors import ConfigError

MAX_SECONDS = 2**32 - 1  # beanstalkd's delays and TTRs are unsigned 32-bit seconds
MAX_MEGABYTES = 2**32 - 1
MAX_RETRIES = 2**32 - 2  # beanstalkd counts reserves in 32 bits: max_retries + 1 must fit
MAX_U32 = 2**32 - 1  # beanstalkd's counts (kick bound) and priorities
MAX_JOB_ID = 2**64 - 1  # beanstalkd's job ids are unsigned 64-bit
MAX_COUNT = 2**63 - 1  # counts kept by Python only (max-jobs): any sane bound


def check_number(
    value: object, what: str, *, low: float, high: float, low_open: bool = False
) -> float:
    """``value`` as a float if it is a finite real number in ``[low, high]`` (``(low, high]``
    with ``low_open``); else ConfigError naming ``what`` and the range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"invalid {what} {shown(value)}: not a number")
    number = float(value) if isinstance(value, float) or abs(value) < 2**1000 else math.inf
    low_ok = number > low if low_open else number >= low
    if not (math.isfinite(number) and low_ok and number <= high):
        lower = f"> {low:g}" if low_open else f">= {low:g}"
        raise ConfigError(
            f"invalid {what} {shown(value)}: must be a finite number {lower} and <= {high:.0f}"
        )
    return number


def check_count(value: object, what: str, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"invalid {what} {shown(value)}: must be an integer {low}..{high}")
    return value


def parse_int(text: str, what: str, *, low: int, high: int) -> int:
    """``text`` (decimal digits, an optional sign, leading zeros allowed) as an int in
    ``[low, high]``; ConfigError naming ``what`` otherwise.  The digits are counted before
    ``int()`` sees them, so a number of any length is an error, never a ValueError."""
    body = text.strip()
    digits = body.lstrip("+-")
    if not (digits.isascii() and digits.isdigit()) or len(body) - len(digits) > 1:
        raise ConfigError(f"invalid {what} {shown(text)}: not an integer")
    significant = digits.lstrip("0") or "0"
    if len(significant) > max(len(str(abs(low))), len(str(abs(high)))):
        number = None  # out of range whatever the digits; int() might refuse them anyway
    else:
        number = -int(significant) if body.startswith("-") else int(significant)
    if number is None or not low <= number <= high:
        raise ConfigError(f"invalid {what} {shown(text)}: must be an integer {low}..{high}")
    return number


def shown(value: object, limit: int = 40) -> str:
    """``repr(value)`` cut short, so a 5,000-digit number still gives a one-line message
    (and an int too long for ``repr`` gives no ValueError)."""
    # An int surely longer than the limit (and maybe over 4,300 digits, which repr refuses):
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4 * limit:
        return f"<an integer of about {int(value.bit_length() * 0.30103) + 1} digits>"
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


# -- settings (the fleet description's values, named by their variable) ----------------------
# One set of checks for every setting of beanfleet.fleet (pools, queue host, monitoring):
# each returns the value or raises ConfigError with one line, "NAME must be ..., got VALUE".
# ``text``: a string of digits counts as the number (Ansible may template numbers to
# strings); without it only a real int / float does.


def is_integer(value: object, *, text: bool = True) -> bool:
    """``value`` is an int (not a bool) or, with ``text``, a string of decimal digits."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return text and isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value) is not None


def is_real(value: object, *, text: bool = True) -> bool:
    """``value`` is an int or float (not a bool) or, with ``text``, a string float() reads."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if text and isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def setting_number(
    name: str,
    value: object,
    *,
    low: float,
    high: float | None = None,
    low_open: bool = False,
    text: bool = True,
    integer: bool = False,
    noun: str | None = None,
) -> float:
    """A number setting, ``>= low`` (``> low`` with ``low_open``) and ``<= high`` (no upper
    bound when ``high`` is None): an int with ``integer`` (its range said "between LOW and
    HIGH"), else a finite float."""
    if integer:
        noun = noun or "an integer"
        first = math.floor(low) + 1 if low_open else math.ceil(low)
        bound = f"between {first} and {math.floor(high)}" if high is not None else f">= {first}"
    else:
        noun = noun or "a number"
        bound = f"> {low:g}" if low_open else f">= {low:g}"
        if high is not None:
            bound += f" and <= {high:g}"
    if not (is_integer(value, text=text) if integer else is_real(value, text=text)):
        got = f"{noun}, got {shown(value)}" if text else f"{noun} {bound}, got {shown(value)}"
        raise ConfigError(f"{name} must be {got}")
    number: float | None
    if integer:
        digits = str(value).strip()
        number = int(digits) if len(digits.lstrip("+-")) <= 40 else None
    else:
        number = float(value)  # type: ignore[arg-type]  # is_real: int, float or a float's text
    if number is not None:
        low_ok = number > low if low_open else number >= low
        if math.isfinite(number) and low_ok and (high is None or number <= high):
            return number
    if integer:
        got = str(number) if number is not None else shown(value)
    else:
        got = f"{number:g}" if text else shown(value)
    raise ConfigError(f"{name} must be {noun} {bound}, got {got}")


def setting_bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigError(f"{name} must be true or false, got {shown(value)}")


def setting_str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {shown(value)}")
    return value


def setting_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{name} must be one of: {', '.join(choices)}, got {shown(value)}")
    return str(value)


def setting_match(name: str, value: object, pattern: str, rule: str) -> str:
    """A string setting matching ``pattern``; ``rule`` says what it must be ("a ...")."""
    if not isinstance(value, str) or re.match(pattern, value) is None:
        raise ConfigError(f"{name} must be {rule}, got {shown(value)}")
    return value
