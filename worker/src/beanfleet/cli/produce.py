"""``beanfleet put``: one JSON job from the command line, or JSON lines from stdin in bulk."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from typing import Any

import click

from beanfleet.bounds import shown
from beanfleet.cli.options import Count, choice_option, number_option, server_option
from beanfleet.errors import BeanfleetError, BodyError, ConfigError, JobTooBig, PartialPut
from beanfleet.names import check_tube
from beanfleet.priorities import (
    DEFAULT_TTR,
    MAX_SECONDS,
    PRIORITIES,
    parse_priority,
    parse_ttr,
)
from beanfleet.produce import Producer
from beanfleet.wire.servers import PLACEMENTS, Placement


def _usage(parse: Callable[[Any], int], value: Any) -> int:
    try:
        return parse(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


def priority_param(_ctx: click.Context, _param: click.Parameter, value: str | int) -> int:
    """A priority name or an integer 0..2**32-1; anything else is a usage error (exit 2)."""
    try:
        return parse_priority(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from exc


def check_tube_param(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A malformed tube name is a usage error (exit 2), not a runtime one."""
    if value is None:
        return None
    try:
        return check_tube(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from exc


def _refuse_constant(name: str) -> Any:
    # json.loads takes NaN and Infinity, which are not JSON and which no consumer (our
    # worker, PHP, Node, Ruby) accepts: refuse them as the invalid JSON they are.
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"number {shown(text)} is out of range")
    return number


def parse_json(text: str) -> Any:
    """The JSON document ``text``; ValueError with a one-line reason if it is not one that
    can be a job body (NaN, Infinity, numbers out of range, nesting too deep)."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise ValueError(exc.msg) from exc
    except RecursionError as exc:
        raise ValueError("nested too deep") from exc
    except ValueError as exc:  # ours above, or an integer of thousands of digits
        reason = str(exc)
        if "integer string conversion" in reason:
            reason = "integer too large"
        raise ValueError(reason) from exc


def _read_json_lines(stream: Any) -> tuple[list[Any], list[int]]:
    """The documents on non-blank lines, and the line number of each."""
    # Parse everything first: a bad line must stop the run before any job is enqueued.
    items: list[Any] = []
    numbers: list[int] = []
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            items.append(parse_json(line))
        except ValueError as exc:
            raise BodyError(f"stdin line {number}: invalid JSON: {exc}") from exc
        numbers.append(number)
    return items, numbers


def _in_lines(exc: BeanfleetError, numbers: list[int]) -> BeanfleetError | None:
    """``exc`` of a bulk put told in stdin line numbers instead of item indexes (the reader
    thinks in lines); None if it names no item."""
    if isinstance(exc, PartialPut):
        reason = _in_lines(exc.reason, numbers) or exc.reason
        return BeanfleetError(f"{exc.summary('stdin lines', numbers)}: {reason}")
    if isinstance(exc, JobTooBig) and exc.index is not None:
        return BeanfleetError(
            f"stdin line {numbers[exc.index]}: job body is {exc.size} bytes, "
            f"server max-job-size is {exc.limit} bytes"
        )
    if isinstance(exc, BodyError) and exc.index is not None:
        where = f"item {exc.index}: "
        return BodyError(f"stdin line {numbers[exc.index]}: {str(exc).removeprefix(where)}")
    return None


@click.command("put")
@server_option
@click.option("--tube", "-t", required=True, callback=check_tube_param, help="tube to put into")
@click.option(
    "--priority",
    "-p",
    callback=priority_param,
    default="normal",
    metavar="NAME|INT",
    show_default=True,
    help=f"{', '.join(PRIORITIES)} or 0..{2**32 - 1} (lower is more urgent)",
)
@number_option(
    "--delay", Count("delay", low=0, high=MAX_SECONDS), 0, "seconds before the job becomes ready"
)
@number_option(
    "--ttr",
    Count("ttr", low=0, high=MAX_SECONDS),
    DEFAULT_TTR,
    "seconds a worker may hold the job",
    callback=lambda _ctx, _param, value: _usage(parse_ttr, value),
)
@choice_option(
    "--placement",
    PLACEMENTS,
    "spread",
    "with several servers: spread jobs over them, or keep each tube on one server",
)
@click.option(
    "--at-least-once",
    is_flag=True,
    help="with several servers: put a job whose reply was lost with its connection again "
    "on another server (it may then run twice) instead of failing",
)
@click.argument("body", metavar="JSON")
def put_command(
    *,
    servers: list[str],
    tube: str,
    priority: int,
    delay: int,
    ttr: int,
    placement: Placement,
    at_least_once: bool,
    body: str,
) -> None:
    """Put a job whose body is JSON and print its id.

    With JSON '-', read one JSON document per line from stdin (blank lines skipped), put
    them all in one pipelined bulk put and print how many.  Invalid JSON on the command line
    (NaN and Infinity included) is a usage error (exit 2); an invalid stdin line fails the
    run (exit 1) before anything is enqueued.  If the bulk put is cut off midway, the error
    gives the stdin lines enqueued, maybe inserted and not enqueued (exit 1).  With several
    servers the ids printed are SERVER/ID.
    """

    def open_producer() -> Producer:
        return Producer(servers=servers, placement=placement, at_least_once=at_least_once)

    if body == "-":
        items, numbers = _read_json_lines(sys.stdin)
        with open_producer() as producer:
            try:
                ids = producer.put_many(tube, items, priority=priority, delay=delay, ttr=ttr)
            except BeanfleetError as exc:
                told = _in_lines(exc, numbers)
                if told is None:
                    raise
                raise told from exc
        click.echo(len(ids))
        return
    try:
        data = parse_json(body)
    except ValueError as exc:
        raise click.BadParameter(f"invalid JSON: {exc}", param_hint="'JSON'") from exc
    with open_producer() as producer:
        try:
            job_id = producer.put(tube, data, priority=priority, delay=delay, ttr=ttr)
        except BodyError as exc:  # parsed, yet not encodable (nested near the limit)
            raise click.BadParameter(str(exc), param_hint="'JSON'") from exc
    click.echo(job_id)


COMMANDS: list[click.Command] = [put_command]
