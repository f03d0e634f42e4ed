"""Admin over a set of servers, 1..N: one :class:`~beanfleet.admin.Admin` each, all asked
at once, results kept per server, a server that cannot be reached reported by name without
hiding the others.  One server is a set of one: the same calls, the same path.

A tube exists on a server only while it has jobs or users there, so a tube unknown to some
servers is normal: it counts as empty on those.  Whether that is an error (no server knows
it) and how to word it is the caller's to say (``cli/format``), since the wording depends on
how many servers were asked.

Owns :class:`Admins`, :class:`PerServer` and the rules that combine servers' answers (a
tube's stats summed, the job a peek shows over all servers).  May import: :mod:`.queries`,
the base modules and the standard library.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from beanfleet.admin.queries import TUBE_COUNTS, Admin, JobInfo, PeekState, TubeStats
from beanfleet.errors import ConnectError, JobNotFound, UnknownTube

T = TypeVar("T")


@dataclass
class PerServer(Generic[T]):
    """What each server answered, which did not know the tube, and why the others did not
    answer (one line each).  Every dict is in the servers' order."""

    results: dict[str, T] = field(default_factory=dict)
    unknown: dict[str, UnknownTube] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def error(self) -> ConnectError | None:
        """One error naming every server that failed, or None."""
        if not self.failures:
            return None
        return ConnectError("; ".join(self.failures.values()))


class Admins:
    """An Admin per server; close with ``with`` like Admin."""

    def __init__(
        self, servers: Sequence[str], *, timeout: float = 5.0, scan_budget: int = 1_000_000
    ) -> None:
        self.servers = list(servers)
        self.admins = {s: Admin(s, timeout=timeout, scan_budget=scan_budget) for s in servers}

    def __enter__(self) -> Admins:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        for admin in self.admins.values():
            admin.close()

    def admin_for(self, server: str) -> Admin:
        return self.admins[server]

    def each(self, action: Callable[[Admin], T]) -> PerServer[T]:
        """``action`` on every server at once (each Admin in a thread of its own), so frozen
        servers cost one timeout in all, not one each.  A ConnectError or an UnknownTube is
        kept per server; any other error is raised."""

        def attempt(admin: Admin) -> tuple[T | None, ConnectError | UnknownTube | None]:
            try:
                return action(admin), None
            except (ConnectError, UnknownTube) as exc:
                return None, exc

        with ThreadPoolExecutor(max_workers=len(self.admins)) as pool:
            outcomes = list(pool.map(attempt, self.admins.values()))
        found: PerServer[T] = PerServer()
        for server, (value, error) in zip(self.admins, outcomes, strict=True):
            if isinstance(error, ConnectError):
                found.failures[server] = str(error)
            elif isinstance(error, UnknownTube):
                found.unknown[server] = error
            else:
                found.results[server] = cast(T, value)
        return found

    def kick(self, tube: str, count: int) -> tuple[int, PerServer[None]]:
        """Kick up to ``count`` jobs of ``tube`` in all: every server is asked at once
        whether it is there and has the tube (a frozen one costs one timeout, and a dead one
        is reported even when ``count`` is used up early); then the kicks go in turn, since
        the count is shared.  A server lost while kicking moves to ``failures``."""
        found = self.each(lambda admin: admin.require_tube(tube))
        kicked = 0
        for server in list(found.results):
            if kicked >= count:
                break
            try:
                kicked += self.admins[server].kick(tube, count - kicked)
            except ConnectError as exc:
                del found.results[server]
                found.failures[server] = str(exc)
            except UnknownTube:
                pass  # emptied since it was listed: nothing to kick there
        return kicked, found


def optional(action: Callable[[Admin], T]) -> Callable[[Admin], T | None]:
    """``action``, with JobNotFound as None (the job is not on that server)."""

    def run(admin: Admin) -> T | None:
        try:
            return action(admin)
        except JobNotFound:
            return None

    return run


def _peek_rank(state: PeekState, job: JobInfo) -> tuple[int, ...]:
    def get(key: str) -> int:
        return int(job.stats.get(key, 0))

    if state == "ready":
        return (get("pri"), -get("age"))
    if state == "delayed":
        return (get("time-left"),)
    return (-get("age"),)


def first_job(state: PeekState, found: PerServer[JobInfo | None]) -> tuple[str, JobInfo] | None:
    """The job ``peek-<state>`` would show if the servers were one: ready, the most urgent
    then the oldest; delayed, the one due first; buried, the oldest.  None if none has one."""
    jobs = [(server, job) for server, job in found.results.items() if job is not None]
    if not jobs:
        return None
    return min(jobs, key=lambda pair: _peek_rank(state, pair[1]))


def sum_tube_stats(name: str, parts: Sequence[TubeStats]) -> TubeStats:
    """One tube over all servers: counts summed, ages the oldest, paused if paused anywhere.

    The next-ready and oldest-ready ids are left out: each names a job on one server only.
    """

    def oldest(ages: Sequence[int | None]) -> int | None:
        known = [age for age in ages if age is not None]
        return max(known) if known else None

    counts: dict[str, Any] = {f: sum(getattr(p, f) for p in parts) for f in TUBE_COUNTS}
    return TubeStats(
        name=name,
        **counts,
        paused=any(p.paused for p in parts),
        pause_time_left=max((p.pause_time_left for p in parts), default=0),
        next_ready_age=oldest([p.next_ready_age for p in parts]),
        oldest_ready_age=oldest([p.oldest_ready_age for p in parts]),
        oldest_ready_exact=all(p.oldest_ready_exact for p in parts),
    )
