"""Admin commands: ``stats``, ``peek``, ``buried``, ``kick``, ``delete``, ``pause``.

Human-readable tables by default, ``--json`` where offered.  A tube that is not in
``list-tubes`` is an error (exit 1); so is a job id that does not exist.  Every wait on a
server is bounded by ``--timeout``; the servers (one or several: the same path) are asked
at once (kick: in turn), and one that fails is named on stderr (exit 1) after what the
others said; when none answered nothing is printed but the error.  Job bodies are shown
with control characters escaped (beanfleet.display); ``--json`` has the exact bytes.

Owns the commands' options and their one path over :class:`~beanfleet.admin.group.Admins`;
how the answers look (and all that depends on the number of servers) is :mod:`.format`.
May import: ``admin``, ``wire.jobref`` (job id syntax), :mod:`.options`, :mod:`.format`,
the base modules and click.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from beanfleet.admin.group import Admins, PerServer, first_job, optional
from beanfleet.admin.queries import Admin, PeekState
from beanfleet.bounds import MAX_COUNT, MAX_JOB_ID, MAX_SECONDS, MAX_U32
from beanfleet.cli import format as fmt
from beanfleet.cli.options import Count, Number, json_option, server_option
from beanfleet.cli.produce import check_tube_param
from beanfleet.errors import ConfigError
from beanfleet.wire.jobref import locate_job, parse_job_id

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_SCAN_LIMIT = 1_000_000
DEFAULT_TIMEOUT = 5.0


def _job_param(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """``ID`` or ``SERVER/ID``; anything else is a usage error (exit 2)."""
    if value is None:
        return None
    try:
        parse_job_id(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def _locate(job: str, servers: list[str]) -> tuple[str, int]:
    # A bare id with several servers is a usage error: which server is a guess.
    try:
        return locate_job(job, servers)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="'--job'") from None


def _job_option(*, required: bool = False) -> Callable[[F], F]:
    return click.option(
        "--job",
        "job_id",
        callback=_job_param,
        required=required,
        metavar="ID|SERVER/ID",
        help="a job id; SERVER/ID with several servers",
    )


def _timeout_option(func: F) -> F:
    return click.option(
        "--timeout",
        type=Number("timeout", low=0, low_open=True, high=MAX_SECONDS),
        default=DEFAULT_TIMEOUT,
        show_default=True,
        metavar="SECONDS",
        help="longest wait for each server to connect and for each reply (a frozen server "
        "is then reported, not waited for)",
    )(func)


# The commands' whole-number options: flag -> (name in errors, lowest, highest, help).
_COUNTS: dict[str, tuple[str, int, int, str]] = {
    "--scan-limit": (
        "scan limit",
        0,
        MAX_COUNT,
        "most job ids to examine when finding the oldest ready jobs (past it, "
        "OLDEST-AGE is a lower bound shown as >=N)",
    ),
    "--limit": ("limit", 1, MAX_COUNT, "list at most this many jobs"),
    "--after-id": (
        "after-id",
        0,
        MAX_JOB_ID,
        "list jobs with ids above this (to page through a long list)",
    ),
    "--count": ("count", 1, MAX_U32, "with --tube: how many jobs at most"),
    "--seconds": (
        "seconds",
        0,
        MAX_U32,
        "how long no job may be reserved from the tube (0 resumes it)",
    ),
}


def _count_option(flag: str, **extra: Any) -> Callable[[F], F]:
    """``flag`` taking a whole number within its bounds (outside them a usage error)."""
    what, low, high, text = _COUNTS[flag]
    return click.option(flag, type=Count(what, low=low, high=high), help=text, **extra)


def _answered(servers: list[str], found: PerServer[Any], tube: str | None = None) -> None:
    """Before printing anything: raise when no server answered (every server failed, or
    none knows ``tube``), so nothing on stdout reads as an answer."""
    if found.results:
        return
    error = found.error()
    if error is None and tube is not None:
        raise fmt.unknown_tube(servers, tube, found)
    if error is not None:
        raise error


def _finish(found: PerServer[Any]) -> None:
    """After printing what the reachable servers said: exit 1 naming the others."""
    error = found.error()
    if error is not None:
        raise error


# -- stats ---------------------------------------------------------------------------------


@click.command("stats")
@server_option
@click.option("--tube", "-t", callback=check_tube_param, help="only this tube")
@json_option
@_count_option("--scan-limit", default=DEFAULT_SCAN_LIMIT, show_default=True)
@_timeout_option
def stats_command(
    servers: list[str], tube: str | None, as_json: bool, scan_limit: int, timeout: float
) -> None:
    """Server summary and a table of tubes.

    NEXT-AGE is the age in seconds of the job the next reserve gets (peek-ready: most
    urgent priority first).  OLDEST-AGE is the age of the oldest ready job of any priority,
    found by walking job ids below the next job's (see `beanfleet buried` for the cost).
    With several servers: a summary per server, and per tube a row per server plus an
    'all' row (counts summed, ages the oldest over all servers); an unreachable server is
    named on stderr (exit 1) and the others are shown.
    """
    with Admins(servers, scan_budget=scan_limit, timeout=timeout) as admins:
        found = admins.each(
            lambda admin: (
                admin.server_stats(),
                admin.tube_stats(None if tube is None else [tube]),
            )
        )
    _answered(servers, found, tube)
    if as_json:
        fmt.echo_json(fmt.stats_json(servers, found))
    else:
        click.echo(fmt.stats_text(servers, found))
    _finish(found)


# -- peek ----------------------------------------------------------------------------------


@click.command("peek")
@server_option
@click.option("--tube", "-t", callback=check_tube_param, help="tube to peek into")
@click.option("--ready", "state", flag_value="ready", help="the next job to be reserved [default]")
@click.option("--delayed", "state", flag_value="delayed", help="the delayed job due first")
@click.option("--buried", "state", flag_value="buried", help="the first buried job")
@_job_option()
@json_option
@_timeout_option
def peek_command(
    servers: list[str],
    tube: str | None,
    state: PeekState | None,
    job_id: str | None,
    as_json: bool,
    timeout: float,
) -> None:
    """Show a job's id, stats and body without changing it.

    Either --tube T with --ready (default), --delayed or --buried, or --job ID.  With
    several servers --job takes SERVER/ID, and --tube shows the job the state names over
    all servers (ready: most urgent, then oldest; delayed: due first; buried: oldest).
    """
    if (tube is None) == (job_id is None):
        raise click.UsageError("give either --tube (with --ready/--delayed/--buried) or --job")
    if job_id is not None and state is not None:
        raise click.UsageError("--ready/--delayed/--buried go with --tube, not --job")
    if job_id is not None:
        server, number = _locate(job_id, servers)
        with Admin(server, timeout=timeout) as admin:
            _show_job(servers, server, admin.job(number), as_json)
        return
    name, state = str(tube), state or "ready"
    with Admins(servers, timeout=timeout) as admins:
        found = admins.each(optional(lambda admin: admin.peek(name, state)))
    _answered(servers, found, name)
    first = first_job(state, found)
    if first is not None:
        _show_job(servers, *first, as_json)
    _finish(found)
    if first is None:
        raise fmt.no_job(servers, state, name)


def _show_job(servers: list[str], server: str, job: Any, as_json: bool) -> None:
    if as_json:
        fmt.echo_json(fmt.job_json(servers, server, job))
    else:
        click.echo(fmt.job_text(servers, server, job))


# -- buried --------------------------------------------------------------------------------


@click.command("buried")
@server_option
@click.option("--tube", "-t", required=True, callback=check_tube_param, help="tube to list")
@_count_option("--limit", default=100, show_default=True)
@_count_option("--after-id", default=0)
@json_option
@_timeout_option
def buried_command(
    servers: list[str], tube: str, limit: int, after_id: int, as_json: bool, timeout: float
) -> None:
    """List a tube's buried jobs, oldest id first, leaving them buried.

    beanstalkd can only peek at the first buried job, so this walks job ids upward with
    stats-job (one command per id, deleted ids included, pipelined 1000 per round trip) and
    stops once it has found the tube's buried count or --limit jobs.  Its cost grows with
    the id of the last buried job listed, roughly 200k ids per second.  With several
    servers every server is listed (--limit and --after-id apply to each) and ids are
    SERVER/ID.
    """
    with Admins(servers, timeout=timeout) as admins:
        found = admins.each(lambda admin: admin.buried(tube, limit=limit, after_id=after_id))
    _answered(servers, found, tube)
    listings = found.results
    more = {
        server: listing.next_id - 1
        for server, listing in listings.items()
        if len(listing.jobs) == limit and (after_id > 0 or len(listing.jobs) < listing.buried)
    }
    if as_json:
        fmt.echo_json(fmt.buried_json(servers, tube, found, more))
    elif any(listing.jobs for listing in listings.values()):
        click.echo(fmt.buried_table(servers, found))
    else:
        # Not "none" when a server could not be asked: only the ones that answered.
        where = f" on {', '.join(listings)}" if found.failures else ""
        click.echo(f"no buried jobs in tube {tube!r}{where}")
    if not as_json:
        for note in fmt.buried_notes(servers, found, more):
            click.echo(note, err=True)
    _finish(found)


# -- kick, delete, pause -------------------------------------------------------------------


@click.command("kick")
@server_option
@click.option("--tube", "-t", callback=check_tube_param, help="kick jobs of this tube")
@_count_option("--count", default=1, show_default=True)
@_job_option()
@_timeout_option
def kick_command(
    servers: list[str], tube: str | None, count: int, job_id: str | None, timeout: float
) -> None:
    """Move buried (or, if none are buried, delayed) jobs back to ready.

    --tube T kicks up to --count jobs of T: its buried jobs if it has any, otherwise its
    delayed ones (beanstalkd's rule).  --job ID kicks one buried or delayed job.  With
    several servers --tube kicks on every server in turn (up to --count in all; a server
    that is down is reported even when the others had enough) and --job takes SERVER/ID.
    """
    if (tube is None) == (job_id is None):
        raise click.UsageError("give either --tube or --job")
    if job_id is not None:
        server, number = _locate(job_id, servers)
        with Admin(server, timeout=timeout) as admin:
            admin.kick_job(number)
        click.echo(f"kicked job {fmt.job_label(servers, server, number)}")
        return
    name = str(tube)
    with Admins(servers, timeout=timeout) as admins:
        kicked, found = admins.kick(name, count)
    _answered(servers, found, name)
    click.echo(f"kicked {kicked} job{'s' if kicked != 1 else ''} in tube {name!r}")
    _finish(found)


@click.command("delete")
@server_option
@_job_option(required=True)
@_timeout_option
def delete_command(servers: list[str], job_id: str, timeout: float) -> None:
    """Delete a job by id (ready, delayed or buried; a reserved job only its worker can).

    With several servers the id is SERVER/ID."""
    server, number = _locate(job_id, servers)
    with Admin(server, timeout=timeout) as admin:
        admin.delete(number)
    click.echo(f"deleted job {fmt.job_label(servers, server, number)}")


@click.command("pause")
@server_option
@click.option("--tube", "-t", required=True, callback=check_tube_param, help="tube to pause")
@_count_option("--seconds", required=True)
@_timeout_option
def pause_command(servers: list[str], tube: str, seconds: int, timeout: float) -> None:
    """Stop workers reserving from a tube for a while (on every server that has it)."""
    done = f"resumed tube {tube!r}" if seconds == 0 else f"paused tube {tube!r} for {seconds}s"
    with Admins(servers, timeout=timeout) as admins:
        found = admins.each(lambda admin: admin.pause(tube, seconds))
    _answered(servers, found, tube)
    # With a server failing, say where it was done; the failure follows on stderr.
    click.echo(f"{done} on {', '.join(found.results)}" if found.failures else done)
    _finish(found)


COMMANDS: list[click.Command] = [
    stats_command,
    peek_command,
    buried_command,
    kick_command,
    delete_command,
    pause_command,
]
