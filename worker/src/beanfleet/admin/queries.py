"""Looking at and steering a beanstalkd server: stats, peeks, buried jobs, kick, delete, pause.

:class:`Admin` connects lazily and reconnects on the next call after the link breaks, so a
long-lived user (the Prometheus exporter) survives beanstalkd restarts.  Nothing here
changes a job's state unless its name says so (kick, delete, pause).

Owns :class:`Admin` (one server) and the shapes it answers with.  The same questions over a
set of servers (1..N) are :class:`~beanfleet.admin.group.Admins`.  May import: ``wire``,
:mod:`.jobscan`, the base modules and greenstalk.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import greenstalk

from beanfleet.admin.jobscan import (
    OldestReady,
    OldestReadyFinder,
    ReadyHead,
    ScannedJob,
    find_buried,
    peek_bodies,
)
from beanfleet.errors import ConnectError, JobNotFound, UnknownTube
from beanfleet.names import check_tube, resolve_server
from beanfleet.wire.client import ServerLinks, connect_error, open_client, open_connection
from beanfleet.wire.connection import Connection

PeekState = Literal["ready", "delayed", "buried"]
Stats = dict[str, int | str]


def _plain(stats: Mapping[str, object]) -> Stats:
    # greenstalk's TypedDicts, as the plain mapping the rest of beanfleet passes around.
    return {k: v for k, v in stats.items() if isinstance(v, int | str)}


# TubeStats' counts, each from its ``stats-tube`` field; over several servers they add up.
TUBE_COUNTS = {
    "ready": "current-jobs-ready",
    "reserved": "current-jobs-reserved",
    "delayed": "current-jobs-delayed",
    "buried": "current-jobs-buried",
    "urgent": "current-jobs-urgent",
    "waiting": "current-waiting",
    "watching": "current-watching",
    "using": "current-using",
    "total": "total-jobs",
    "deletes": "cmd-delete",
    "pauses": "cmd-pause-tube",
}


@dataclass(frozen=True, slots=True)
class TubeStats:
    """One tube's ``stats-tube`` plus the ages of its next and oldest ready jobs.

    ``next_ready_age`` is the age of the job ``peek-ready`` shows, the one the next reserve
    gets (most urgent priority, oldest among equals).  ``oldest_ready_age`` is the age of
    the tube's oldest ready job whatever its priority; ``oldest_ready_exact`` is False when
    finding it would have cost more than the scan budget, and the value is then a lower
    bound (the next job's age).  Both are None when nothing is ready.
    """

    name: str
    ready: int
    reserved: int
    delayed: int
    buried: int
    urgent: int
    waiting: int  # connections blocked in reserve on this tube
    watching: int
    using: int
    paused: bool
    pause_time_left: int
    total: int  # jobs created in this tube since the server started
    deletes: int
    pauses: int
    next_ready_id: int | None = None
    next_ready_age: int | None = None
    oldest_ready_id: int | None = None
    oldest_ready_age: int | None = None
    oldest_ready_exact: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class JobInfo:
    id: int
    stats: Stats
    body: bytes

    def as_dict(self) -> dict[str, Any]:
        """``body`` is the text when the bytes are UTF-8, else None (no lossy stand-in that
        looks like the body); ``body_base64`` always has the exact bytes."""
        try:
            text: str | None = self.body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        exact = base64.b64encode(self.body).decode("ascii")
        return {"id": self.id, "stats": self.stats, "body": text, "body_base64": exact}


@dataclass(frozen=True, slots=True)
class BuriedListing:
    tube: str
    jobs: list[JobInfo]
    buried: int  # the tube's buried count when the listing started
    next_id: int  # pass ``after_id=next_id - 1`` to continue a listing cut by its limit


class Admin(ServerLinks):
    """An admin connection to one beanstalkd: greenstalk for single commands, a pipelining
    :class:`~beanfleet.wire.connection.Connection` (opened on first need) for id scans.

    ``timeout`` bounds the connect and every wait for a reply: a frozen server (SIGSTOP, a
    paused VM) accepts connections but never answers, and must not hang the caller."""

    def __init__(
        self, server: str | None = None, *, timeout: float = 5.0, scan_budget: int = 1_000_000
    ) -> None:
        self.server = resolve_server(server)
        self.timeout = timeout
        self.oldest = OldestReadyFinder(scan_budget)
        self._client: greenstalk.Client[bytes] | None = None
        self._using = greenstalk.DEFAULT_TUBE
        self._pipe: Connection | None = None

    @contextlib.contextmanager
    def _link(self) -> Iterator[None]:
        """Turn a broken link into ConnectError and start afresh on the next call."""
        try:
            yield
        except TimeoutError as exc:
            self.close()  # a reply may still come: this link is out of step
            raise ConnectError(
                f"no reply from beanstalkd at {self.server} within {self.timeout:g}s"
            ) from exc
        except OSError as exc:
            self.close()
            raise connect_error(self.server, exc) from exc
        except greenstalk.Error:
            # Unexpected here (expected ones are caught inside): a pipelined read may have
            # stopped with replies unread, so this link is out of step.
            self.close()
            raise

    def _conn(self) -> greenstalk.Client[bytes]:
        if self._client is None:
            self._client = open_client(
                self.server, timeout=self.timeout, reply_timeout=self.timeout
            )
            self._using = greenstalk.DEFAULT_TUBE
        return self._client

    def _scan_conn(self) -> Connection:
        if self._pipe is None:
            self._pipe = open_connection(
                self.server, timeout=self.timeout, reply_timeout=self.timeout
            )
        return self._pipe

    def _use(self, tube: str) -> greenstalk.Client[bytes]:
        client = self._conn()
        if self._using != tube:
            client.use(tube)
            self._using = tube
        return client

    # -- reading -----------------------------------------------------------------------------

    def server_stats(self) -> Stats:
        with self._link():
            return _plain(self._conn().stats())

    def tube_names(self) -> list[str]:
        with self._link():
            return sorted(self._conn().tubes())

    def require_tube(self, tube: str) -> None:
        """UnknownTube unless ``tube`` is in ``list-tubes``.

        Checked before ``use``, which would otherwise create the tube for as long as we use it.
        """
        check_tube(tube)
        if tube not in self.tube_names():
            raise UnknownTube(f"unknown tube {tube!r} on {self.server}")

    def _raw_tube_stats(self, tube: str) -> Stats:
        try:
            return _plain(self._conn().stats_tube(tube))
        except greenstalk.NotFoundError as exc:
            raise UnknownTube(f"unknown tube {tube!r} on {self.server}") from exc

    def _ready_head(self, tube: str, ready: int) -> ReadyHead | None:
        client = self._use(tube)
        try:
            job = client.peek_ready()
            age = int(client.stats_job(job.id)["age"])
        except greenstalk.NotFoundError:  # reserved or deleted since stats-tube
            return None
        return ReadyHead(job.id, age, ready)

    def tube_stats(self, tubes: list[str] | None = None) -> list[TubeStats]:
        """Stats of the named tubes (all tubes when None), with next and oldest ready ages."""
        with self._link():
            raw: dict[str, Stats] = {}
            for name in self.tube_names() if tubes is None else tubes:
                try:
                    raw[name] = self._raw_tube_stats(check_tube(name))
                except UnknownTube:
                    if tubes is not None:
                        raise
                    # Listed a moment ago, emptied and gone since: nothing to report.
            names = list(raw)
            heads: dict[str, ReadyHead] = {}
            for name, stats in raw.items():
                ready = int(stats["current-jobs-ready"])
                head = self._ready_head(name, ready) if ready else None
                if head is not None:
                    heads[name] = head
            # A used tube lives as long as we use it; the exporter should not keep one alive.
            self._use(greenstalk.DEFAULT_TUBE)
            oldest = self._oldest_ready(heads)
            return [
                _tube_stats(name, raw[name], heads.get(name), oldest.get(name)) for name in names
            ]

    def _oldest_ready(self, heads: Mapping[str, ReadyHead]) -> dict[str, OldestReady]:
        if not heads:
            return {}
        server = self._conn().stats()
        pipe = self._scan_conn()
        found = self.oldest.find(pipe, heads, pid=server["pid"], uptime=server["uptime"])
        current = sum(
            server[key]
            for key in (
                "current-jobs-ready",
                "current-jobs-reserved",
                "current-jobs-delayed",
                "current-jobs-buried",
            )
        )
        self.oldest.prune(pipe, current)
        return found

    def peek(self, tube: str, state: PeekState) -> JobInfo:
        """The job ``peek-<state>`` shows in ``tube``; JobNotFound if there is none."""
        self.require_tube(tube)
        with self._link():
            client = self._use(tube)
            peekers = {
                "ready": client.peek_ready,
                "delayed": client.peek_delayed,
                "buried": client.peek_buried,
            }
            try:
                job = peekers[state]()
                stats = _plain(client.stats_job(job.id))
            except greenstalk.NotFoundError as exc:
                raise JobNotFound(f"no {state} job in tube {tube!r}") from exc
            return JobInfo(job.id, stats, job.body)

    def job(self, job_id: int) -> JobInfo:
        """A job by id, in any state; JobNotFound if it does not exist."""
        with self._link():
            client = self._conn()
            try:
                job = client.peek(job_id)
                stats = _plain(client.stats_job(job_id))
            except greenstalk.NotFoundError as exc:
                raise JobNotFound(f"job {job_id} not found") from exc
            return JobInfo(job.id, stats, job.body)

    def buried(self, tube: str, *, limit: int | None = None, after_id: int = 0) -> BuriedListing:
        """The buried jobs of ``tube`` in id order, left buried (see jobscan.find_buried)."""
        self.require_tube(tube)
        with self._link():
            server = self._conn().stats()

            def buried_now() -> int:
                return int(self._raw_tube_stats(tube)["current-jobs-buried"])

            buried = buried_now()
            pipe = self._scan_conn()
            scan = find_buried(
                pipe,
                tube,
                buried_count=buried_now,
                highest_known_id=server["total-jobs"],
                limit=limit,
                after_id=after_id,
            )
            bodies = peek_bodies(pipe, [job.id for job in scan.jobs])
            jobs = [_job_info(job, bodies[job.id]) for job in scan.jobs if job.id in bodies]
            return BuriedListing(tube, jobs, buried, scan.next_id)

    # -- changing ----------------------------------------------------------------------------

    def kick(self, tube: str, count: int) -> int:
        """Kick up to ``count`` jobs of ``tube``: buried ones if any, else delayed ones."""
        self.require_tube(tube)
        with self._link():
            return self._use(tube).kick(count)

    def kick_job(self, job_id: int) -> None:
        with self._link():
            try:
                self._conn().kick_job(job_id)
            except greenstalk.NotFoundError as exc:
                raise JobNotFound(f"job {job_id} not found, or neither buried nor delayed") from exc

    def delete(self, job_id: int) -> None:
        with self._link():
            try:
                self._conn().delete(job_id)
            except greenstalk.NotFoundError as exc:
                raise JobNotFound(
                    f"job {job_id} not found, or reserved by another connection"
                ) from exc

    def pause(self, tube: str, seconds: int) -> None:
        """Stop reserves from ``tube`` for ``seconds`` (0 resumes it)."""
        check_tube(tube)
        with self._link():
            try:
                self._conn().pause_tube(tube, seconds)
            except greenstalk.NotFoundError as exc:
                raise UnknownTube(f"unknown tube {tube!r} on {self.server}") from exc


def _job_info(job: ScannedJob, body: bytes) -> JobInfo:
    return JobInfo(job.id, dict(job.stats), body)


def _tube_stats(
    name: str, stats: Stats, head: ReadyHead | None, oldest: OldestReady | None
) -> TubeStats:
    counts: dict[str, Any] = {field: int(stats.get(key, 0)) for field, key in TUBE_COUNTS.items()}
    pause_left = int(stats.get("pause-time-left", 0))
    return TubeStats(
        name=name,
        **counts,
        paused=pause_left > 0,
        pause_time_left=pause_left,
        next_ready_id=head.id if head else None,
        next_ready_age=head.age if head else None,
        oldest_ready_id=oldest.id if oldest else None,
        oldest_ready_age=oldest.age if oldest else None,
        oldest_ready_exact=oldest.exact if oldest else True,
    )
