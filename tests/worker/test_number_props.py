"""Hypothesis properties of every number the worker and the producer parse: finite and in
range or refused with one ConfigError/usage error, and every computed delay within
beanstalkd's 32-bit limit (a larger one would get BAD_FORMAT)."""

from __future__ import annotations

import math

import click
import pytest
from beanfleet.bounds import MAX_SECONDS, check_number
from beanfleet.cli.options import Number
from beanfleet.errors import ConfigError
from beanfleet.priorities import MAX_PRIORITY, PRIORITIES, parse_priority, parse_ttr
from beanfleet.work.outcome import MAX_DELAY, RetryPolicy, clamp_delay
from beanfleet.work.recycle import RecycleLimits
from hypothesis import given
from hypothesis import strategies as st

any_float = st.floats(allow_nan=True, allow_infinity=True)
number_text = st.one_of(
    st.text(max_size=12),
    any_float.map(repr),
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["nan", "inf", "-inf", "1e308", " 5", "5 ", "0x10", "1_000", "\u0663"]),
)


@given(any_float)
def test_check_number_accepts_exactly_the_finite_numbers_in_range(x: float) -> None:
    in_range = math.isfinite(x) and 0 < x <= MAX_SECONDS
    try:
        value = check_number(x, "timeout", low=0, low_open=True, high=MAX_SECONDS)
    except ConfigError as exc:
        assert not in_range
        assert str(exc).startswith("invalid timeout ") and "\n" not in str(exc)
    else:
        assert in_range and value == x


@given(number_text)
def test_command_line_numbers_are_accepted_or_a_usage_error(text: str) -> None:
    param = Number("backoff base", low=0, high=MAX_SECONDS)
    try:
        expected: float | None = float(text)
    except ValueError:
        expected = None
    try:
        value = param.convert(text, None, None)
    except click.BadParameter as exc:  # exit 2 with this one line
        assert "\n" not in exc.format_message()
        assert expected is None or not (math.isfinite(expected) and 0 <= expected <= MAX_SECONDS)
    else:
        assert expected is not None and value == expected
        assert math.isfinite(value) and 0 <= value <= MAX_SECONDS


@given(any_float)
def test_a_computed_delay_is_always_a_valid_release_delay(x: float) -> None:
    delay = clamp_delay(x)
    assert isinstance(delay, int) and 0 <= delay <= MAX_DELAY
    if 0 <= x <= MAX_DELAY:
        assert delay == math.ceil(x)  # never earlier than asked


@given(
    st.floats(0, MAX_SECONDS),
    st.floats(0, MAX_SECONDS),
    st.integers(1, 2**40),
    st.integers(0, 2**32 - 2),
)
def test_backoff_of_any_accepted_policy_fits_beanstalkd(
    base: float, cap: float, attempt: int, max_retries: int
) -> None:
    policy = RetryPolicy(max_retries=max_retries, backoff_base=base, backoff_cap=cap)
    delay = policy.backoff(attempt)
    assert 0 <= delay <= min(MAX_DELAY, math.ceil(cap))


@given(any_float, any_float)
def test_policy_and_limits_refuse_what_the_command_line_refuses(base: float, cap: float) -> None:
    ok = all(math.isfinite(v) and 0 <= v <= MAX_DELAY for v in (base, cap))
    try:
        RetryPolicy(backoff_base=base, backoff_cap=cap)
    except ConfigError:
        assert not ok
    else:
        assert ok
    try:
        RecycleLimits(max_time=base)
    except ConfigError:
        assert not (math.isfinite(base) and 0 < base <= MAX_SECONDS)


@given(
    st.one_of(
        st.text(max_size=12), st.integers(0, 2**33).map(str), st.sampled_from(list(PRIORITIES))
    )
)
def test_priority_is_ascii_digits_or_a_name(text: str) -> None:
    named = PRIORITIES.get(text.lower())
    digits = text.isascii() and text.isdigit() and int(text) <= MAX_PRIORITY
    try:
        value = parse_priority(text)
    except ConfigError:
        assert named is None and not digits
    else:
        assert value == (named if named is not None else int(text))


@given(st.one_of(any_float, st.integers(-5, 2**33)))
def test_one_ttr_rule(ttr: float) -> None:
    ok = math.isfinite(ttr) and ttr > 0 and math.ceil(ttr) <= MAX_SECONDS
    try:
        value = parse_ttr(ttr)
    except ConfigError:
        assert not ok
    else:
        assert ok and value == max(1, math.ceil(ttr))


def test_the_limit_itself_is_accepted() -> None:
    assert clamp_delay(MAX_DELAY) == MAX_DELAY == MAX_SECONDS
    with pytest.raises(ConfigError):
        RetryPolicy(max_retries=-1)
