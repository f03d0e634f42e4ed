"""Prefetch: reserve the next jobs, and ask for their counters, while a handler runs.

Every write at the start of a job carries the last job's ``delete``, a ``stats-job`` for
each held job that needs one and was not asked yet (a job a worker on this host died
running, or any job of a worker watching several tubes: ``Worker._needs_stats``) and a
``reserve-with-timeout 0`` for the job after next; none of their replies is waited for.
They are read at the start of the next job (:meth:`settle`), by when beanstalkd has long
answered, so a job starts with no round trip: its counters
(:func:`beanfleet.work.outcome.attempt_of`, the crash-loop check), if needed, were asked one job
earlier.
While a handler runs the worker holds at most two jobs it has not started (one reserved
with its counters asked, one being reserved).  Owed replies are read before any other
exchange, so every other exchange reads its own reply.

A held job is given back (:meth:`hand_back`) with ``bury <id> <pri>`` then ``kick-job <id>``
in one write: ready at once with its id, priority and body, and the ``bury`` marks the
reservation as one that never started (:func:`beanfleet.work.outcome.attempt_of` subtracts
``buries`` from ``reserves``; a ``release`` would count it as an attempt, and ``kicks`` cannot
tell a hand-back from an operator's kick of a job in its retry backoff).  beanstalkd reads
both commands from the one write and runs the kick as soon as it has written ``BURIED``, so
a worker that dies after the write still leaves the job ready (checked with beanstalkd 1.12
stopped until the worker had exited).  It stays buried, for an operator to kick, only if
the connection is reset before beanstalkd reads the write (a socket closed with replies
unread: every owed reply is read before a hand-back, so not by this worker dying) or if a
full binlog disk refuses the kick (the log line says so).  A held job whose connection is
lost goes back to ready with no command, and that reservation counts as an attempt.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from beanfleet.wire.connection import Connection
from beanfleet.work.job import Reserved, parse_job_stats

RESERVE_NOW = b"reserve-with-timeout 0\r\n"  # a job if one is ready, else TIMED_OUT
AHEAD = 2  # jobs held or being reserved while a handler runs


class Prefetch:
    """The replies owed on the connection, in order, and the jobs held (not started)."""

    def __init__(
        self,
        single_tube: str | None,
        log_returned: Callable[[Reserved, str], None],
        deleted: Callable[[Reserved, bytes], None],
        needs_stats: Callable[[Reserved], bool],
    ) -> None:
        self.single_tube = single_tube
        # ("delete", job) / ("stats", job) / ("reserve", None), in the order sent.
        self.owed: deque[tuple[str, Reserved | None]] = deque()
        self.held: deque[Reserved] = deque()
        self._log_returned = log_returned
        self._deleted = deleted
        self._needs_stats = needs_stats
        self.make_id: Callable[[int], int] = int  # JobRef with several servers

    @property
    def busy(self) -> bool:
        return bool(self.owed or self.held)

    def settle(self, conn: Connection, until: Reserved | None = None) -> None:
        """Read owed replies in order: all of them, or until job ``until`` has its
        counters.  Callers hold the worker's lock or know that no handler runs."""
        owed = self.owed
        while owed and not (until is not None and until.stats_known):
            kind, job = owed[0]
            status, values = conn.read_reply()
            if kind == "delete":
                assert job is not None
                self._deleted(job, status)
            elif kind == "stats":
                assert job is not None
                if status == b"OK":
                    job.stats = parse_job_stats(conn.read_chunk(int(values[0])))
                job.stats_known = True  # NOT_FOUND leaves stats None: its TTR ran out
            elif status == b"RESERVED":
                body = conn.read_chunk(int(values[1]))
                self.held.append(Reserved(self.make_id(int(values[0])), body, self.single_tube))
            elif status not in (b"TIMED_OUT", b"DEADLINE_SOON"):
                raise ConnectionError(
                    f"unexpected reply to reserve: {status.decode(errors='replace')}"
                )
            owed.popleft()

    def next_held(self, conn: Connection) -> Reserved | None:
        """The next held job (replies owed read first), or None if prefetch found none."""
        self.settle(conn)
        return self.held.popleft() if self.held else None

    def start(self, conn: Connection, job: Reserved, done: Reserved | None, ask: bool) -> None:
        """Send, in one write, ``done``'s delete, the stats-job asks still missing (``job``'s
        and the held jobs', for those that need one) and (``ask``) the reserves that keep
        ``AHEAD`` jobs coming; then wait only if ``job``'s own counters are needed and were
        not asked a job earlier."""
        out: list[bytes] = []
        if done is not None:
            out.append(b"delete %d\r\n" % done.id)
            self.owed.append(("delete", done))
        # Whether a job needs its stats-job is decided once, when the job is first seen
        # (held, or here at its start if it never was).  Asked again at its start, the
        # worker metrics' wait sample (``WorkerMetrics.sample``) would land on the starting
        # job, which then waits a round trip for its own stats-job, and every job would pay
        # a second ``_needs_stats``; decided while held, the sample rides a job ahead.
        for ahead in (job, *self.held):
            if ahead.stats_checked or ahead.stats_asked:
                continue
            ahead.stats_checked = True
            if self._needs_stats(ahead):
                ahead.stats_asked = True
                out.append(b"stats-job %d\r\n" % ahead.id)
                self.owed.append(("stats", ahead))
        asked = sum(1 for kind, _ in self.owed if kind == "reserve")
        for _ in range(AHEAD - len(self.held) - asked if ask else 0):
            out.append(RESERVE_NOW)
            self.owed.append(("reserve", None))
        if out:
            conn.sock.sendall(b"".join(out))
        if job.stats_asked:
            self.settle(conn, until=job)

    def hand_back(self, conn: Connection, why: str) -> None:
        """Give every held job back (see the module docstring); log each as returned."""
        self.settle(conn)
        missing = [job for job in self.held if not job.stats_asked]
        for job in missing:  # a held job's priority comes from its stats-job
            job.stats_asked = True
            self.owed.append(("stats", job))
        if missing:
            conn.sock.sendall(b"".join(b"stats-job %d\r\n" % job.id for job in missing))
            self.settle(conn)
        while self.held:
            job = self.held.popleft()
            if job.stats is None:  # NOT_FOUND: its TTR ran out, it is back already
                self._log_returned(job, f"prefetched, not started; {why}")
                continue
            conn.send([b"bury %d %d" % (job.id, job.priority), b"kick-job %d" % job.id])
            buried, _ = conn.read_reply()
            kicked, _ = conn.read_reply()
            note = why
            if (buried, kicked) == (b"BURIED", b"NOT_FOUND"):
                note += " (kick-job refused: binlog disk full?); left buried, kick it"
            elif (buried, kicked) != (b"BURIED", b"KICKED"):
                note += (
                    f" (bury replied {buried.decode(errors='replace')}, kick-job "
                    f"{kicked.decode(errors='replace')})"
                )
            self._log_returned(job, f"prefetched, not started; {note}")

    def forget(self, why: str) -> list[Reserved]:
        """The connection is gone: beanstalkd puts the held jobs back to ready itself (they
        count as an attempt: nothing marks them as unstarted).  Returns the succeeded jobs
        whose delete was cut off."""
        cut_off = [job for kind, job in self.owed if kind == "delete" and job is not None]
        self.owed.clear()
        while self.held:
            self._log_returned(self.held.popleft(), f"prefetched, not started; {why}")
        return cut_off
