"""How the admin commands and the exporter show what servers said: the one place where the
number of servers shapes output.

With one server the output is what it has always been: ids print bare, the stats table has
no SERVER column, JSON has no server keys, errors are the server's own, the exporter has no
``server`` label.  With several, ids print as ``SERVER/ID``, stats adds a row per server and
an ``all`` row per tube, and messages say which servers.  :func:`several` is the only test
of the count; everything that runs (the queries, the scrape) is the same path for 1..N.

May import: ``admin`` (the answers' shapes and :func:`~beanfleet.admin.group.sum_tube_stats`),
``wire.jobref`` (``SERVER/ID``), the base modules and click.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from beanfleet.admin.group import PerServer, sum_tube_stats
from beanfleet.admin.queries import BuriedListing, JobInfo, PeekState, Stats, TubeStats
from beanfleet.display import for_terminal
from beanfleet.errors import JobNotFound, UnknownTube
from beanfleet.wire.jobref import JobRef

BODY_PREVIEW = 60

StatsAnswer = tuple[Stats, list[TubeStats]]


def several(servers: Sequence[str]) -> bool:
    """True when output names servers (``SERVER/ID``, the ``server`` label, the rows per
    server); False for one server, whose output stays as it always was."""
    return len(servers) > 1


def label_servers(servers: Sequence[str]) -> bool:
    """Whether the exporter adds a ``server`` label to every series."""
    return several(servers)


# -- ids and jobs ----------------------------------------------------------------------------


def job_label(servers: Sequence[str], server: str, job_id: int) -> str:
    """``SERVER/ID`` with several servers, the bare id with one (as before)."""
    return str(JobRef(server, job_id)) if several(servers) else str(job_id)


def job_json(servers: Sequence[str], server: str, job: JobInfo) -> dict[str, Any]:
    """A job as JSON: with several servers ``id`` is ``SERVER/ID`` and ``server`` is added."""
    shown = job.as_dict()
    if several(servers):
        shown = {**shown, "id": job_label(servers, server, job.id), "server": server}
    return shown


def job_text(servers: Sequence[str], server: str, job: JobInfo) -> str:
    """A job's stats and body; with several servers a first line ``job: SERVER/ID``."""
    lines = [f"job: {job_label(servers, server, job.id)}"] if several(servers) else []
    lines += [for_terminal(f"{key}: {value}") for key, value in job.stats.items()]
    # Its lines kept (a pretty-printed JSON body reads as such); nothing else raw.
    lines += ["body:", for_terminal(job.body, keep="\n\t")]
    return "\n".join(lines)


# -- errors ----------------------------------------------------------------------------------


def unknown_tube(servers: Sequence[str], tube: str, found: PerServer[Any]) -> UnknownTube:
    """No server knows ``tube``: one server's own error, or one naming them all."""
    if several(servers):
        return UnknownTube(f"unknown tube {tube!r} on every server ({', '.join(servers)})")
    return next(iter(found.unknown.values()))


def no_job(servers: Sequence[str], state: PeekState, tube: str) -> JobNotFound:
    where = " on any server" if several(servers) else ""
    return JobNotFound(f"no {state} job in tube {tube!r}{where}")


# -- tables ----------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
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


def preview(body: bytes) -> str:
    """One table cell: every control character escaped (a newline too: one row per job)."""
    text = for_terminal(body)
    return text if len(text) <= BODY_PREVIEW else text[: BODY_PREVIEW - 3] + "..."


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False))


# -- stats -----------------------------------------------------------------------------------


def server_summary(server: str, stats: Stats) -> str:
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


def _by_tube(found: PerServer[StatsAnswer]) -> dict[str, dict[str, TubeStats]]:
    """Tube name (sorted) -> server -> that server's stats of the tube."""
    per_tube: dict[str, dict[str, TubeStats]] = {}
    for server, (_summary, tubes) in found.results.items():
        for t in tubes:
            per_tube.setdefault(t.name, {})[server] = t
    return dict(sorted(per_tube.items()))


def tube_table(servers: Sequence[str], found: PerServer[StatsAnswer]) -> str:
    """One row per tube; with several servers a row per server and tube (SERVER column)
    plus the tube's ``all`` row (counts summed, ages the oldest)."""
    rows: list[tuple[str, TubeStats]] = []
    if several(servers):
        for name, parts in _by_tube(found).items():
            rows.extend(parts.items())
            rows.append(("all", sum_tube_stats(name, list(parts.values()))))
    else:
        rows = [(server, t) for server, (_summary, tubes) in found.results.items() for t in tubes]
    headers = [
        *(("TUBE", "SERVER") if several(servers) else ("TUBE",)),
        *("READY", "RESERVED", "DELAYED", "BURIED", "URGENT", "WAITING", "WATCHING"),
        *("PAUSED", "TOTAL", "NEXT-AGE", "OLDEST-AGE"),
    ]
    return table(
        headers,
        [
            (
                *((t.name, server) if several(servers) else (t.name,)),
                *(t.ready, t.reserved, t.delayed, t.buried, t.urgent, t.waiting, t.watching),
                f"{t.pause_time_left}s" if t.paused else "no",
                t.total,
                _age(t.next_ready_age),
                _age(t.oldest_ready_age, t.oldest_ready_exact),
            )
            for server, t in rows
        ],
    )


def _missing(found: PerServer[Any], server: str) -> str:
    """Why ``server`` has no answer: it could not be asked, or it does not know the tube."""
    if server in found.unknown:
        return str(found.unknown[server])
    return f"beanstalkd at {server}: unreachable"


def stats_text(servers: Sequence[str], found: PerServer[StatsAnswer]) -> str:
    """A summary per server (or why it has none), then the tube table."""
    parts = [
        server_summary(server, found.results[server][0])
        if server in found.results
        else _missing(found, server)
        for server in servers
    ]
    return "\n\n".join([*parts, tube_table(servers, found)])


def stats_json(servers: Sequence[str], found: PerServer[StatsAnswer]) -> dict[str, Any]:
    """One server: ``{"server": stats, "tubes": [...]}``.  Several: ``{"servers": {S:
    {"server": stats} or {"error": why}}, "tubes": [summed, with "servers": {S: ...}]}``."""
    if not several(servers):
        ((summary, tubes),) = found.results.values()
        return {"server": summary, "tubes": [t.as_dict() for t in tubes]}
    servers_json: dict[str, Any] = {
        server: {"server": found.results[server][0]}
        if server in found.results
        else {"error": found.failures.get(server) or _missing(found, server)}
        for server in servers
    }
    tubes_json = [
        {
            **sum_tube_stats(name, list(parts.values())).as_dict(),
            "servers": {s: t.as_dict() for s, t in parts.items()},
        }
        for name, parts in _by_tube(found).items()
    ]
    return {"servers": servers_json, "tubes": tubes_json}


# -- buried ----------------------------------------------------------------------------------


def buried_table(servers: Sequence[str], found: PerServer[BuriedListing]) -> str:
    rows = [
        (
            job_label(servers, server, job.id),
            job.stats.get("age", "?"),
            job.stats.get("pri", "?"),
            job.stats.get("reserves", "?"),
            job.stats.get("timeouts", "?"),
            job.stats.get("buries", "?"),
            job.stats.get("kicks", "?"),
            preview(job.body),
        )
        for server, listing in found.results.items()
        for job in listing.jobs
    ]
    headers = ("ID", "AGE", "PRI", "RESERVES", "TIMEOUTS", "BURIES", "KICKS", "BODY")
    return table(headers, rows)


def buried_json(
    servers: Sequence[str], tube: str, found: PerServer[BuriedListing], more: dict[str, int]
) -> dict[str, Any]:
    """``more``: server -> the ``--after-id`` that continues its listing, where cut short.
    With several servers ``next_after_id`` is that mapping and ``errors`` is added."""
    listings = found.results
    shown: dict[str, Any] = {
        "tube": tube,
        "buried": sum(listing.buried for listing in listings.values()),
        "jobs": [
            job_json(servers, server, job)
            for server, listing in listings.items()
            for job in listing.jobs
        ],
    }
    if not several(servers):
        return {**shown, "next_after_id": next(iter(more.values()), None)}
    return {**shown, "next_after_id": more or None, "errors": found.failures}


def buried_notes(
    servers: Sequence[str], found: PerServer[BuriedListing], more: dict[str, int]
) -> list[str]:
    """For stderr: how to continue each listing cut short by ``--limit``."""
    notes = []
    for server, next_after in more.items():
        listing = found.results[server]
        counted = f"listed {len(listing.jobs)} of {listing.buried} buried jobs"
        if several(servers):
            notes.append(
                f"({server}: {counted}; continue with --server {server} --after-id {next_after})"
            )
        else:
            notes.append(f"({counted}; continue with --after-id {next_after})")
    return notes
