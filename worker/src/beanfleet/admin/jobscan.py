"""Finding jobs by walking job ids, since beanstalkd can only peek at the head of a queue.

beanstalkd numbers jobs 1, 2, 3, ... in creation order, never hands out an id twice while it
runs (after a restart it continues above the highest id it restored from the binlog), and a
job never changes tube.  So pipelined ``stats-job <id>`` over an id range tells which jobs
exist there, in which tube and state, oldest first, without touching any of them.

The cost is one ``stats-job`` per id in the range, deleted ids included: a round trip per
:data:`SCAN_BATCH` ids, roughly 200k ids/s against a local server.

Owns the pipelined scans (``stats-job``/``peek`` over many ids), the buried listing and the
oldest-ready finder.  May import: ``wire`` (the connection, and :mod:`~beanfleet.wire.commands`
for every command's bytes) and the standard library.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from beanfleet.wire import commands
from beanfleet.wire.connection import Connection, parse_yaml_mapping

SCAN_BATCH = 1000

# Consecutive ids with no job that end a buried listing which could not rely on the tube's
# buried count (see find_buried).
EMPTY_RUN_LIMIT = 10 * SCAN_BATCH


@dataclass(frozen=True, slots=True)
class ScannedJob:
    """One job's ``stats-job`` reply, as seen by a scan."""

    id: int
    stats: Mapping[str, int | str]

    @property
    def tube(self) -> str:
        return str(self.stats.get("tube", ""))

    @property
    def state(self) -> str:
        return str(self.stats.get("state", ""))

    @property
    def age(self) -> int:
        return int(self.stats.get("age", 0))


def _write(conn: Connection, lines: Iterable[bytes]) -> None:
    # Whole command lines (CRLF included) in one write.  Connection.send wants them without
    # their CRLF; wire's own ``Connection.write`` (under way) replaces this helper.
    conn.sock.sendall(b"".join(lines))


def stats_jobs(conn: Connection, ids: Iterable[int]) -> list[ScannedJob]:
    """``stats-job`` for every id in one round trip; the jobs that exist, in id order."""
    wanted = sorted(ids)
    if not wanted:
        return []
    _write(conn, [commands.stats_job(job_id) for job_id in wanted])
    found: list[ScannedJob] = []
    for job_id in wanted:
        status, values = conn.expect(b"OK", b"NOT_FOUND")
        if status == b"OK":
            found.append(ScannedJob(job_id, parse_yaml_mapping(conn.read_chunk(int(values[0])))))
    return found


def peek_bodies(conn: Connection, ids: Iterable[int]) -> dict[int, bytes]:
    """``peek <id>`` for every id in one round trip; bodies of the jobs that still exist."""
    wanted = list(ids)
    _write(conn, [commands.peek(job_id) for job_id in wanted])
    bodies: dict[int, bytes] = {}
    for job_id in wanted:
        status, values = conn.expect(b"FOUND", b"NOT_FOUND")
        if status == b"FOUND":
            bodies[job_id] = conn.read_chunk(int(values[1]))
    return bodies


@dataclass(frozen=True, slots=True)
class BuriedScan:
    jobs: list[ScannedJob]
    next_id: int  # where a follow-up listing (``after_id=next_id - 1``) would continue


def find_buried(
    conn: Connection,
    tube: str,
    *,
    buried_count: Callable[[], int],
    highest_known_id: int,
    limit: int | None = None,
    after_id: int = 0,
) -> BuriedScan:
    """The buried jobs of ``tube`` with ids above ``after_id``, in id order, left buried.

    ``peek-buried`` shows only the first buried job and kicking to see the next would change
    what we list, so this walks ids upward from ``after_id + 1``.  It stops at ``limit``
    jobs, or (listing from the start) once it has found as many as ``buried_count()``
    (re-read after every batch, so jobs kicked meanwhile do not keep it going), or after
    :data:`EMPTY_RUN_LIMIT` ids without any job beyond every id known to exist
    (``highest_known_id``, e.g. the server's total-jobs, and every id seen on the way).
    The last rule matters only when counting cannot end the walk (paging, or jobs buried
    behind the walk), so a restarted server with a run of more than that many deleted ids
    below a buried job may cut such a listing short.
    """
    found: list[ScannedJob] = []
    tube_count = buried_count()
    position = after_id + 1
    horizon = highest_known_id
    while True:
        if limit is not None and len(found) >= limit:
            break
        if after_id == 0 and len(found) >= tube_count:
            break
        if position > horizon + EMPTY_RUN_LIMIT:
            break
        batch = stats_jobs(conn, range(position, position + SCAN_BATCH))
        position += SCAN_BATCH
        for job in batch:
            horizon = max(horizon, job.id)
            if job.tube == tube and job.state == "buried":
                found.append(job)
        if after_id == 0 and len(found) < tube_count:
            tube_count = buried_count()
    if limit is not None and len(found) > limit:
        position = found[limit].id
        found = found[:limit]
    return BuriedScan(found, position)


@dataclass(frozen=True, slots=True)
class ReadyHead:
    """What ``peek-ready`` + ``stats-job`` say about a tube's next job to be served."""

    id: int
    age: int
    ready: int  # the tube's current-jobs-ready


@dataclass(frozen=True, slots=True)
class OldestReady:
    id: int
    age: int
    exact: bool  # False: the scan budget ran out; age is a lower bound (the head's age)


@dataclass
class _Search:
    """One :meth:`OldestReadyFinder.find`: the tubes still to answer, the answers, the ids
    examined so far against the budget."""

    conn: Connection
    budget: int
    targets: dict[str, ReadyHead] = field(default_factory=dict)
    result: dict[str, OldestReady] = field(default_factory=dict)
    spent: int = 0

    def left(self) -> int:
        return self.budget - self.spent


class OldestReadyFinder:
    """Finds each tube's oldest ready job (lowest id, so largest age), learning as it goes.

    ``peek-ready`` gives the job a worker gets next: highest priority first, oldest first
    among equals.  Those differ when an older job waits at a lower priority.  The oldest
    ready job of a tube is its ready job with the lowest id, which is at most the head's id,
    so the finder walks ids below the head's.

    Between calls it remembers, for every id below ``frontier`` that it has classified, the
    tube of the jobs that existed (deleted ids stay deleted, tubes never change), and
    re-checks only those jobs of the tube in question.  A long-lived user (the exporter)
    therefore walks each id once; a one-shot user (the CLI) walks from id 1, up to
    ``budget`` ids per call, after which it reports the head's age as a lower bound.
    """

    def __init__(self, budget: int = 1_000_000) -> None:
        self.budget = budget
        self._frontier = 1
        self._members: dict[str, list[int]] = {}
        self._server: tuple[int, int] | None = None  # (pid, uptime) when last called

    def _check_server(self, pid: int, uptime: int) -> None:
        # A restarted server (new pid, or uptime going backwards) may reuse ids: forget all.
        if self._server is None or pid != self._server[0] or uptime < self._server[1]:
            self._frontier = 1
            self._members = {}
        self._server = (pid, uptime)

    def find(
        self, conn: Connection, heads: Mapping[str, ReadyHead], *, pid: int, uptime: int
    ) -> dict[str, OldestReady]:
        self._check_server(pid, uptime)
        search = _Search(conn, self.budget)
        for tube, head in heads.items():
            if head.ready <= 1:  # the head is the only ready job
                search.result[tube] = OldestReady(head.id, head.age, exact=True)
            else:
                search.targets[tube] = head
        self._recheck_known(search)
        self._walk_new_ids(search)
        for tube, head in search.targets.items():
            if tube not in search.result:
                search.result[tube] = OldestReady(head.id, head.age, exact=False)
        return search.result

    def _recheck_known(self, search: _Search) -> None:
        """Look at the remembered jobs of each tube below its head, oldest first."""
        result = search.result
        for tube, head in search.targets.items():
            known = [i for i in self._members.get(tube, ()) if i < head.id]
            alive: set[int] = set()
            checked: set[int] = set()
            for start in range(0, len(known), SCAN_BATCH):
                if search.left() <= 0 or tube in result:
                    break
                chunk = known[start : start + min(SCAN_BATCH, search.left())]
                search.spent += len(chunk)
                checked.update(chunk)
                for job in stats_jobs(search.conn, chunk):
                    alive.add(job.id)
                    if job.state == "ready" and tube not in result:
                        result[tube] = OldestReady(job.id, job.age, exact=True)
            if checked:
                gone = checked - alive
                self._members[tube] = [i for i in self._members[tube] if i not in gone]
            complete = len(checked) == len(known)
            if tube not in result and complete and head.id <= self._frontier:
                # Everything below the head is known and none of it is ready.
                result[tube] = OldestReady(head.id, head.age, exact=True)

    def _walk_new_ids(self, search: _Search) -> None:
        """Classify ids from the frontier up until every tube is answered or budget spent."""
        result = search.result
        while search.left() > 0:
            pending = {t: h for t, h in search.targets.items() if t not in result}
            for tube, head in list(pending.items()):
                if head.id <= self._frontier:  # walked up to the head: nothing older is ready
                    result[tube] = OldestReady(head.id, head.age, exact=True)
                    del pending[tube]
            if not pending:
                break
            end = min(max(h.id for h in pending.values()), self._frontier + search.left())
            end = min(end, self._frontier + SCAN_BATCH)
            batch = stats_jobs(search.conn, range(self._frontier, end))
            search.spent += end - self._frontier
            self._frontier = end
            for job in batch:
                self._members.setdefault(job.tube, []).append(job.id)
                waiting = pending.get(job.tube)
                if waiting is not None and job.state == "ready" and job.id < waiting.id:
                    result[job.tube] = OldestReady(job.id, job.age, exact=True)
                    del pending[job.tube]

    def prune(self, conn: Connection, current_jobs: int) -> None:
        """Forget remembered jobs that no longer exist, once they clearly outnumber the live.

        Tubes nobody asks about are never re-checked, so their lists would only grow.
        """
        remembered = sum(len(ids) for ids in self._members.values())
        if remembered <= 2 * current_jobs + 10 * SCAN_BATCH:
            return
        every = sorted(i for ids in self._members.values() for i in ids)
        alive: set[int] = set()
        for start in range(0, len(every), SCAN_BATCH):
            alive.update(job.id for job in stats_jobs(conn, every[start : start + SCAN_BATCH]))
        self._members = {
            tube: kept
            for tube, ids in self._members.items()
            if (kept := [i for i in ids if i in alive])
        }
