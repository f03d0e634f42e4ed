"""Admin commands: ``stats``, ``peek``, ``buried``, ``kick``, ``delete``, ``pause``.

Human-readable tables by default, ``--json`` where offered.  A tube that is not in
``list-tubes`` is an error (exit 1); so is a job id that does not exist.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from beanfleet.admin import Admin, JobInfo, PeekState, Stats, TubeStats
from beanfleet.commands.options import json_option, server_option
from beanfleet.commands.produce import check_tube_param

F = TypeVar("F", bound=Callable[..., Any])

BODY_PREVIEW = 60
DEFAULT_SCAN_LIMIT = 1_000_000

_job_option = click.option("--job", "job_id", type=click.IntRange(min=1), metavar="ID")


def _scan_limit_option(default: int) -> Callable[[F], F]:
    return click.option(
        "--scan-limit",
        type=click.IntRange(min=0),
        default=default,
        show_default=True,
        help="most job ids to examine when finding the oldest ready jobs (past it, "
        "OLDEST-AGE is a lower bound shown as >=N)",
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(headers)] + [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    # Text columns left-aligned, numbers right-aligned, as people read them.
    numeric = [all(row[i].lstrip(">=-").isdigit() for row in cells[1:]) for i in range(len(widths))]
    lines = []
    for row in cells:
        parts = [
            cell.rjust(width) if is_num else cell.ljust(width)
            for cell, width, is_num in zip(row, widths, numeric, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def _age(seconds: int | None, exact: bool = True) -> str:
    if seconds is None:
        return "-"
    return f"{seconds}" if exact else f">={seconds}"


def _preview(body: bytes) -> str:
    text = body.decode("utf-8", "replace").replace("\n", " ")
    return text if len(text) <= BODY_PREVIEW else text[: BODY_PREVIEW - 3] + "..."


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False))


# -- stats ---------------------------------------------------------------------------------


def _server_summary(server: str, stats: Stats) -> str:
    def get(key: str) -> object:
        return stats.get(key, "?")

    return "\n".join(
        [
            f"beanstalkd {get('version')} at {server}  pid {get('pid')}  "
            f"uptime {get('uptime')}s  draining {get('draining')}",
            f"jobs: ready {get('current-jobs-ready')}  reserved {get('current-jobs-reserved')}  "
            f"delayed {get('current-jobs-delayed')}  buried {get('current-jobs-buried')}  "
            f"urgent {get('current-jobs-urgent')}  created {get('total-jobs')}  "
            f"timeouts {get('job-timeouts')}",
            f"connections {get('current-connections')}  producers {get('current-producers')}  "
            f"workers {get('current-workers')}  waiting {get('current-waiting')}  "
            f"tubes {get('current-tubes')}  max-job-size {get('max-job-size')}",
            f"binlog: oldest {get('binlog-oldest-index')}  current {get('binlog-current-index')}  "
            f"max-size {get('binlog-max-size')}  written {get('binlog-records-written')}  "
            f"migrated {get('binlog-records-migrated')}",
        ]
    )


def _tube_table(tubes: Sequence[TubeStats]) -> str:
    headers = [
        *("TUBE", "READY", "RESERVED", "DELAYED", "BURIED", "URGENT", "WAITING", "WATCHING"),
        *("PAUSED", "TOTAL", "NEXT-AGE", "OLDEST-AGE"),
    ]
    rows = [
        (
            t.name,
            t.ready,
            t.reserved,
            t.delayed,
            t.buried,
            t.urgent,
            t.waiting,
            t.watching,
            f"{t.pause_time_left}s" if t.paused else "no",
            t.total,
            _age(t.next_ready_age),
            _age(t.oldest_ready_age, t.oldest_ready_exact),
        )
        for t in tubes
    ]
    return _table(headers, rows)


@click.command("stats")
@server_option
@click.option("--tube", "-t", callback=check_tube_param, help="only this tube")
@json_option
@_scan_limit_option(DEFAULT_SCAN_LIMIT)
def stats_command(server: str, tube: str | None, as_json: bool, scan_limit: int) -> None:
    """Server summary and a table of tubes.

    NEXT-AGE is the age in seconds of the job the next reserve gets (peek-ready: most
    urgent priority first).  OLDEST-AGE is the age of the oldest ready job of any priority,
    found by walking job ids below the next job's (see `beanfleet buried` for the cost).
    """
    with Admin(server, scan_budget=scan_limit) as admin:
        summary = admin.server_stats()
        tubes = admin.tube_stats(None if tube is None else [tube])
    if as_json:
        _echo_json({"server": summary, "tubes": [t.as_dict() for t in tubes]})
        return
    click.echo(_server_summary(server, summary))
    click.echo()
    click.echo(_tube_table(tubes))


# -- peek ----------------------------------------------------------------------------------


def _show_job(job: JobInfo, as_json: bool) -> None:
    if as_json:
        _echo_json(job.as_dict())
        return
    for key, value in job.stats.items():
        click.echo(f"{key}: {value}")
    click.echo("body:")
    click.echo(job.body.decode("utf-8", "replace"))


@click.command("peek")
@server_option
@click.option("--tube", "-t", callback=check_tube_param, help="tube to peek into")
@click.option("--ready", "state", flag_value="ready", help="the next job to be reserved [default]")
@click.option("--delayed", "state", flag_value="delayed", help="the delayed job due first")
@click.option("--buried", "state", flag_value="buried", help="the first buried job")
@_job_option
@json_option
def peek_command(
    server: str, tube: str | None, state: PeekState | None, job_id: int | None, as_json: bool
) -> None:
    """Show a job's id, stats and body without changing it.

    Either --tube T with --ready (default), --delayed or --buried, or --job ID.
    """
    if (tube is None) == (job_id is None):
        raise click.UsageError("give either --tube (with --ready/--delayed/--buried) or --job")
    if job_id is not None and state is not None:
        raise click.UsageError("--ready/--delayed/--buried go with --tube, not --job")
    with Admin(server) as admin:
        job = admin.job(job_id) if job_id is not None else admin.peek(str(tube), state or "ready")
    _show_job(job, as_json)


# -- buried --------------------------------------------------------------------------------


@click.command("buried")
@server_option
@click.option("--tube", "-t", required=True, callback=check_tube_param, help="tube to list")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="list at most this many jobs",
)
@click.option(
    "--after-id",
    type=click.IntRange(min=0),
    default=0,
    help="list jobs with ids above this (to page through a long list)",
)
@json_option
def buried_command(server: str, tube: str, limit: int, after_id: int, as_json: bool) -> None:
    """List a tube's buried jobs, oldest id first, leaving them buried.

    beanstalkd can only peek at the first buried job, so this walks job ids upward with
    stats-job (one command per id, deleted ids included, pipelined 1000 per round trip) and
    stops once it has found the tube's buried count or --limit jobs.  Its cost grows with
    the id of the last buried job listed, roughly 200k ids per second.
    """
    with Admin(server) as admin:
        listing = admin.buried(tube, limit=limit, after_id=after_id)
    more = len(listing.jobs) == limit and (after_id > 0 or len(listing.jobs) < listing.buried)
    if as_json:
        _echo_json(
            {
                "tube": tube,
                "buried": listing.buried,
                "jobs": [job.as_dict() for job in listing.jobs],
                "next_after_id": listing.next_id - 1 if more else None,
            }
        )
        return
    if not listing.jobs:
        click.echo(f"no buried jobs in tube {tube!r}")
        return
    rows = [
        (
            job.id,
            job.stats.get("age", "?"),
            job.stats.get("pri", "?"),
            job.stats.get("reserves", "?"),
            job.stats.get("timeouts", "?"),
            job.stats.get("buries", "?"),
            job.stats.get("kicks", "?"),
            _preview(job.body),
        )
        for job in listing.jobs
    ]
    headers = ("ID", "AGE", "PRI", "RESERVES", "TIMEOUTS", "BURIES", "KICKS", "BODY")
    click.echo(_table(headers, rows))
    if more:
        click.echo(
            f"(listed {len(listing.jobs)} of {listing.buried} buried jobs; "
            f"continue with --after-id {listing.next_id - 1})",
            err=True,
        )


# -- kick, delete, pause -------------------------------------------------------------------


@click.command("kick")
@server_option
@click.option("--tube", "-t", callback=check_tube_param, help="kick jobs of this tube")
@click.option(
    "--count",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="with --tube: how many jobs at most",
)
@_job_option
def kick_command(server: str, tube: str | None, count: int, job_id: int | None) -> None:
    """Move buried (or, if none are buried, delayed) jobs back to ready.

    --tube T kicks up to --count jobs of T: its buried jobs if it has any, otherwise its
    delayed ones (beanstalkd's rule).  --job ID kicks one buried or delayed job.
    """
    if (tube is None) == (job_id is None):
        raise click.UsageError("give either --tube or --job")
    with Admin(server) as admin:
        if job_id is not None:
            admin.kick_job(job_id)
            click.echo(f"kicked job {job_id}")
        else:
            kicked = admin.kick(str(tube), count)
            click.echo(f"kicked {kicked} job{'s' if kicked != 1 else ''} in tube {tube!r}")


@click.command("delete")
@server_option
@click.option("--job", "job_id", type=click.IntRange(min=1), metavar="ID", required=True)
def delete_command(server: str, job_id: int) -> None:
    """Delete a job by id (ready, delayed or buried; a reserved job only its worker can)."""
    with Admin(server) as admin:
        admin.delete(job_id)
    click.echo(f"deleted job {job_id}")


@click.command("pause")
@server_option
@click.option("--tube", "-t", required=True, callback=check_tube_param, help="tube to pause")
@click.option(
    "--seconds",
    type=click.IntRange(0, 2**32 - 1),
    required=True,
    help="how long no job may be reserved from the tube (0 resumes it)",
)
def pause_command(server: str, tube: str, seconds: int) -> None:
    """Stop workers reserving from a tube for a while."""
    with Admin(server) as admin:
        admin.pause(tube, seconds)
    click.echo(f"resumed tube {tube!r}" if seconds == 0 else f"paused tube {tube!r} for {seconds}s")


COMMANDS: list[click.Command] = [
    stats_command,
    peek_command,
    buried_command,
    kick_command,
    delete_command,
    pause_command,
]
