"""Admin commands: ``stats``, ``peek``, ``buried``, ``kick``, ``delete``, ``pause``.

Human-readable tables by default, ``--json`` where offered.  A tube that is not in
``list-tubes`` is an error (exit 1); so is a job id that does not exist.  Every wait on a
server is bounded by ``--timeout``; with several servers they are asked at once (kick: in
turn), and one that fails is named on stderr (exit 1) after what the others said.  Job
bodies are shown with control characters escaped (beanfleet.display); ``--json`` has the
exact bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from beanfleet.admin.group import AdminGroup, PerServer, optional, sum_tube_stats
from beanfleet.admin.queries import Admin, BuriedListing, JobInfo, PeekState, Stats, TubeStats
from beanfleet.bounds import MAX_COUNT, MAX_JOB_ID, MAX_SECONDS, MAX_U32, Count, Number
from beanfleet.cli.options import json_option, server_option
from beanfleet.cli.produce import check_tube_param
from beanfleet.display import for_terminal
from beanfleet.errors import ConfigError, ConnectError, JobNotFound, UnknownTube
from beanfleet.wire.jobref import JobRef, locate_job, parse_job_id

F = TypeVar("F", bound=Callable[..., Any])

BODY_PREVIEW = 60
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


def _finish(found: PerServer[Any]) -> None:
    """After printing what the reachable servers said: exit 1 naming the others."""
    error = found.error()
    if error is not None:
        raise error


def _scan_limit_option(default: int) -> Callable[[F], F]:
    return click.option(
        "--scan-limit",
        type=Count("scan limit", low=0, high=MAX_COUNT),
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
    """One table cell: every control character escaped (a newline too: one row per job)."""
    text = for_terminal(body)
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


def _tube_table(tubes: Sequence[TubeStats], servers: Sequence[str] | None = None) -> str:
    headers = [
        *(("TUBE", "SERVER") if servers is not None else ("TUBE",)),
        *("READY", "RESERVED", "DELAYED", "BURIED", "URGENT", "WAITING", "WATCHING"),
        *("PAUSED", "TOTAL", "NEXT-AGE", "OLDEST-AGE"),
    ]
    rows = [
        (
            *((t.name, servers[i]) if servers is not None else (t.name,)),
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
        for i, t in enumerate(tubes)
    ]
    return _table(headers, rows)


@click.command("stats")
@server_option
@click.option("--tube", "-t", callback=check_tube_param, help="only this tube")
@json_option
@_scan_limit_option(DEFAULT_SCAN_LIMIT)
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
    if len(servers) > 1:
        _stats_many(servers, tube, as_json, scan_limit, timeout)
        return
    server = servers[0]
    with Admin(server, scan_budget=scan_limit, timeout=timeout) as admin:
        summary = admin.server_stats()
        tubes = admin.tube_stats(None if tube is None else [tube])
    if as_json:
        _echo_json({"server": summary, "tubes": [t.as_dict() for t in tubes]})
        return
    click.echo(_server_summary(server, summary))
    click.echo()
    click.echo(_tube_table(tubes))


def _stats_many(
    servers: list[str], tube: str | None, as_json: bool, scan_limit: int, timeout: float
) -> None:
    with AdminGroup(servers, scan_budget=scan_limit, timeout=timeout) as group:
        found = group.each(
            lambda admin: (
                admin.server_stats(),
                admin.tube_stats(None if tube is None else [tube]),
            ),
            tube=tube,
            parallel=True,
        )
    per_tube: dict[str, dict[str, TubeStats]] = {}
    for server, (_summary, tubes) in found.results.items():
        for t in tubes:
            per_tube.setdefault(t.name, {})[server] = t
    summed = {name: sum_tube_stats(name, list(parts.values())) for name, parts in per_tube.items()}
    if as_json:
        servers_json: dict[str, Any] = {
            server: {"server": found.results[server][0]}
            if server in found.results
            else {"error": found.failures[server]}
            for server in servers
        }
        tubes_json = [
            {**summed[name].as_dict(), "servers": {s: t.as_dict() for s, t in parts.items()}}
            for name, parts in sorted(per_tube.items())
        ]
        _echo_json({"servers": servers_json, "tubes": tubes_json})
    else:
        for server in servers:
            if server in found.results:
                click.echo(_server_summary(server, found.results[server][0]))
            else:
                click.echo(f"beanstalkd at {server}: unreachable")
            click.echo()
        rows: list[tuple[str, TubeStats]] = []
        for name, parts in sorted(per_tube.items()):
            rows.extend(parts.items())
            rows.append(("all", summed[name]))
        if found.results:  # no table of nothing when no server answered
            click.echo(_tube_table([t for _, t in rows], [server for server, _ in rows]))
    _finish(found)


# -- peek ----------------------------------------------------------------------------------


def _show_job(job: JobInfo, as_json: bool, server: str | None = None) -> None:
    """With ``server`` (several servers) the id is shown as SERVER/ID."""
    if as_json:
        shown = job.as_dict()
        if server is not None:
            shown = {**shown, "id": str(JobRef(server, job.id)), "server": server}
        _echo_json(shown)
        return
    if server is not None:
        click.echo(f"job: {JobRef(server, job.id)}")
    for key, value in job.stats.items():
        click.echo(for_terminal(f"{key}: {value}"))
    click.echo("body:")
    # Its lines kept (a pretty-printed JSON body reads as such); nothing else raw.
    click.echo(for_terminal(job.body, keep="\n\t"))


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
            job = admin.job(number)
        _show_job(job, as_json, server if len(servers) > 1 else None)
        return
    if len(servers) == 1:
        with Admin(servers[0], timeout=timeout) as admin:
            job = admin.peek(str(tube), state or "ready")
        _show_job(job, as_json)
        return
    _peek_many(servers, str(tube), state or "ready", as_json, timeout)


def _peek_rank(state: PeekState, job: JobInfo) -> tuple[int, ...]:
    def get(key: str) -> int:
        return int(job.stats.get(key, 0))

    if state == "ready":
        return (get("pri"), -get("age"))
    if state == "delayed":
        return (get("time-left"),)
    return (-get("age"),)


def _peek_many(
    servers: list[str], tube: str, state: PeekState, as_json: bool, timeout: float
) -> None:
    with AdminGroup(servers, scan_budget=DEFAULT_SCAN_LIMIT, timeout=timeout) as group:
        found = group.each(
            optional(lambda admin: admin.peek(tube, state)), tube=tube, parallel=True
        )
    jobs = [(s, job) for s, job in found.results.items() if job is not None]
    if jobs:
        server, job = min(jobs, key=lambda pair: _peek_rank(state, pair[1]))
        _show_job(job, as_json, server)
    _finish(found)
    if not jobs:
        raise JobNotFound(f"no {state} job in tube {tube!r} on any server")


# -- buried --------------------------------------------------------------------------------


@click.command("buried")
@server_option
@click.option("--tube", "-t", required=True, callback=check_tube_param, help="tube to list")
@click.option(
    "--limit",
    type=Count("limit", low=1, high=MAX_COUNT),
    default=100,
    show_default=True,
    help="list at most this many jobs",
)
@click.option(
    "--after-id",
    type=Count("after-id", low=0, high=MAX_JOB_ID),
    default=0,
    help="list jobs with ids above this (to page through a long list)",
)
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
    if len(servers) > 1:
        _buried_many(servers, tube, limit, after_id, as_json, timeout)
        return
    with Admin(servers[0], timeout=timeout) as admin:
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
    click.echo(_buried_table([(job.id, job) for job in listing.jobs]))
    if more:
        click.echo(
            f"(listed {len(listing.jobs)} of {listing.buried} buried jobs; "
            f"continue with --after-id {listing.next_id - 1})",
            err=True,
        )


def _buried_many(
    servers: list[str], tube: str, limit: int, after_id: int, as_json: bool, timeout: float
) -> None:
    with AdminGroup(servers, scan_budget=DEFAULT_SCAN_LIMIT, timeout=timeout) as group:
        found = group.each(
            lambda admin: admin.buried(tube, limit=limit, after_id=after_id),
            tube=tube,
            parallel=True,
        )
    listings: dict[str, BuriedListing] = found.results
    more = {
        server: listing.next_id - 1
        for server, listing in listings.items()
        if len(listing.jobs) == limit and (after_id > 0 or len(listing.jobs) < listing.buried)
    }
    jobs = [(server, job) for server, listing in listings.items() for job in listing.jobs]
    if as_json:
        _echo_json(
            {
                "tube": tube,
                "buried": sum(listing.buried for listing in listings.values()),
                "jobs": [
                    {**job.as_dict(), "id": str(JobRef(server, job.id)), "server": server}
                    for server, job in jobs
                ],
                "next_after_id": more or None,
                "errors": found.failures,
            }
        )
    elif not jobs and listings:
        # Not "none" when a server could not be asked: only the ones that answered.
        where = f" on {', '.join(listings)}" if found.failures else ""
        click.echo(f"no buried jobs in tube {tube!r}{where}")
    elif jobs:
        click.echo(_buried_table([(str(JobRef(server, job.id)), job) for server, job in jobs]))
    for server, next_after in more.items():
        click.echo(
            f"({server}: listed {len(listings[server].jobs)} of {listings[server].buried} "
            f"buried jobs; continue with --server {server} --after-id {next_after})",
            err=True,
        )
    _finish(found)


def _buried_table(jobs: Sequence[tuple[object, JobInfo]]) -> str:
    rows = [
        (
            shown,
            job.stats.get("age", "?"),
            job.stats.get("pri", "?"),
            job.stats.get("reserves", "?"),
            job.stats.get("timeouts", "?"),
            job.stats.get("buries", "?"),
            job.stats.get("kicks", "?"),
            _preview(job.body),
        )
        for shown, job in jobs
    ]
    headers = ("ID", "AGE", "PRI", "RESERVES", "TIMEOUTS", "BURIES", "KICKS", "BODY")
    return _table(headers, rows)


# -- kick, delete, pause -------------------------------------------------------------------


@click.command("kick")
@server_option
@click.option("--tube", "-t", callback=check_tube_param, help="kick jobs of this tube")
@click.option(
    "--count",
    type=Count("count", low=1, high=MAX_U32),
    default=1,
    show_default=True,
    help="with --tube: how many jobs at most",
)
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
        click.echo(f"kicked job {job_label(server, number, servers)}")
        return
    if len(servers) == 1:
        with Admin(servers[0], timeout=timeout) as admin:
            kicked = admin.kick(str(tube), count)
        click.echo(f"kicked {kicked} job{'s' if kicked != 1 else ''} in tube {tube!r}")
        return
    name = str(tube)
    with AdminGroup(servers, scan_budget=DEFAULT_SCAN_LIMIT, timeout=timeout) as group:
        # Every server is asked at once whether it is there and has the tube (a frozen one
        # costs one --timeout, and a dead one is reported even when --count is used up
        # early); then the kicks go in turn, since --count is shared.
        found = group.each(lambda admin: admin.require_tube(name), tube=name, parallel=True)
        kicked = 0
        for server in list(found.results):
            if kicked >= count:
                break
            try:
                kicked += group.admin_for(server).kick(name, count - kicked)
            except ConnectError as exc:
                found.failures[server] = str(exc)
            except UnknownTube:
                pass  # emptied since it was listed: nothing to kick there
    click.echo(f"kicked {kicked} job{'s' if kicked != 1 else ''} in tube {tube!r}")
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
    click.echo(f"deleted job {job_label(server, number, servers)}")


@click.command("pause")
@server_option
@click.option("--tube", "-t", required=True, callback=check_tube_param, help="tube to pause")
@click.option(
    "--seconds",
    type=Count("seconds", low=0, high=MAX_U32),
    required=True,
    help="how long no job may be reserved from the tube (0 resumes it)",
)
@_timeout_option
def pause_command(servers: list[str], tube: str, seconds: int, timeout: float) -> None:
    """Stop workers reserving from a tube for a while (on every server that has it)."""
    done = f"resumed tube {tube!r}" if seconds == 0 else f"paused tube {tube!r} for {seconds}s"
    if len(servers) == 1:
        with Admin(servers[0], timeout=timeout) as admin:
            admin.pause(tube, seconds)
        click.echo(done)
        return
    with AdminGroup(servers, scan_budget=DEFAULT_SCAN_LIMIT, timeout=timeout) as group:
        found = group.each(lambda admin: admin.pause(tube, seconds), tube=tube, parallel=True)
    if found.results:
        # With a server failing, say where it was done; the failure follows on stderr.
        click.echo(f"{done} on {', '.join(found.results)}" if found.failures else done)
    _finish(found)


def job_label(server: str, job_id: int, servers: list[str]) -> str:
    """``SERVER/ID`` with several servers, the bare id with one (as before)."""
    return str(JobRef(server, job_id)) if len(servers) > 1 else str(job_id)


COMMANDS: list[click.Command] = [
    stats_command,
    peek_command,
    buried_command,
    kick_command,
    delete_command,
    pause_command,
]
