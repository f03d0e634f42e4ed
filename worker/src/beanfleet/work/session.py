"""One connection to one beanstalkd server, as the worker loop and the heartbeat share it.

May import: ``wire`` (Connection, commands), ``work.link`` (the connection itself),
``work.job``, ``work.events``, ``work.crashguard`` and the base modules.

A :class:`Session` owns what its connection owes and holds: the replies owed, in the order
their commands were written (``owed``; beanstalkd answers in order per connection), the jobs
reserved but not started (``held``), the job taken by the loop (``current``), the job that
succeeded and whose ``delete`` rides the next write (``succeeded``), and succeeded jobs
whose delete a lost connection cut off (``orphans``: deleted again after reconnecting).
Every command goes out through :meth:`_write` and every reply is read by :meth:`settle` (or,
for the one blocking reserve, :meth:`take`), so the ``stats-job`` exchange is written once
(:meth:`counters`) whoever needs a job's counters: the start, a failure, the heartbeat's TTR,
the handler's ``job.attempt``.

Prefetch (:meth:`begin` with ``prefetch``): the write at a job's start carries the last
job's delete, the ``stats-job`` of each held job that needs one and ``reserve-with-timeout 0``
for up to ``AHEAD`` jobs; their replies are read at the next start, so a job starts with no
round trip.  A held job is given back (:meth:`hand_back`) with ``bury <id> <pri>`` then
``kick-job <id>`` in one write: ready at once with its priority, and the bury marks the
reservation as one that never started (``attempt = reserves - buries``); beanstalkd runs
the kick as soon as it has read the write, so a worker that dies after it strands nothing.

Connecting, resting and closing are :mod:`.link`'s; before a connection is closed the
deletes not written yet are written without waiting, so a frozen server that resumes still
deletes the finished jobs (:meth:`Link.close`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

import greenstalk

from beanfleet.wire import commands
from beanfleet.wire.connection import Connection
from beanfleet.wire.jobref import JobRef
from beanfleet.work.crashguard import CrashGuard
from beanfleet.work.events import Observers
from beanfleet.work.job import (
    ASKED,
    DELETING,
    GONE,
    KNOWN,
    ORPHANED,
    SKIPPED,
    SUCCEEDED,
    UNDECIDED,
    Job,
    parse_job_stats,
)
from beanfleet.work.link import RECONNECT_CAP, REPLY_LIMIT, Link, readable

RESERVE_TIMEOUT = 5  # server-side wait of an idle reserve; its TIMED_OUT proves the link alive
AHEAD = 2  # prefetch: jobs held or being reserved while a handler runs
DEADLINE_SOON_PAUSE = 0.1

# What a reply in ``owed`` answers.
DELETE, REDELETE, STATS, RESERVE, WAIT = "delete", "redelete", "stats", "reserve", "wait"
_WAIT_COMMAND = commands.reserve_with_timeout(RESERVE_TIMEOUT)
_RESERVE_NOW = commands.reserve_with_timeout(0)


class Session(Link):
    """One server's connection and the jobs on it (see the module docstring)."""

    def __init__(
        self,
        server: str,
        tubes: Sequence[str],
        ref: Callable[[int], int | JobRef],
        events: Observers,
        lock: threading.Lock,
        guard: CrashGuard | None,
        reconnect_cap: float = RECONNECT_CAP,
    ) -> None:
        super().__init__(server, tubes, events, lock, reconnect_cap)
        self.single_tube = self.tubes[0] if len(self.tubes) == 1 else None
        self.ref = ref  # the id users see (a JobRef with several servers)
        self.guard = guard
        self.owed: deque[tuple[str, Job | None]] = deque()
        self.waiting_since: float | None = None  # a blocking reserve is outstanding
        self.held: deque[Job] = deque()
        self.current: Job | None = None  # taken by the loop, outcome not sent
        self.running: Job | None = None  # its handler runs now (the heartbeat touches it)
        self.succeeded: Job | None = None  # delete rides the next write
        self.orphans: list[Job] = []
        self._pruned = False
        self._deadline_soon_logged = False

    # -- connecting --------------------------------------------------------------------------

    def connect(self) -> bool:
        """One try: connect, watch the tubes, delete the orphans; False (and rest) if not."""
        conn = self.open()
        if conn is None:
            return False
        try:
            self._delete_orphans(conn)
            if not self._pruned:
                self._pruned = True
                self._prune(conn)
        except OSError as exc:
            self.lost(exc)
            return False
        return True

    def _delete_orphans(self, conn: Connection) -> None:
        orphans, self.orphans = self.orphans, []
        if orphans:
            data = b"".join(commands.delete(job.id) for job in orphans)
            self._write(conn, data, [(REDELETE, job) for job in orphans])
            self.settle()

    def _prune(self, conn: Connection) -> None:
        """Once: drop run records of jobs beanstalkd no longer has (one pipelined stats-job
        each), so the state directory stays small."""
        if self.guard is None:
            return
        named = self.guard.prune(self.server)
        if not named:
            return
        conn.sock.sendall(b"".join(commands.stats_job(job_id) for job_id in named))
        for job_id in named:
            status, values = conn.read_reply()
            if status == b"OK":
                conn.read_chunk(int(values[0]))
            elif status == b"NOT_FOUND":
                self.guard.gone(self.server, job_id, named[job_id])

    # -- writing and reading -----------------------------------------------------------------

    def _write(
        self, conn: Connection, data: bytes, owed: Sequence[tuple[str, Job | None]] = ()
    ) -> None:
        """Write ``data`` (whose replies are ``owed``), preceded in the same write by the
        succeeded job's ``delete``: the one place a succeeded job's delete is written."""
        done = self.succeeded
        if done is not None:
            self.succeeded = None
            self.owed.append((DELETE, done))
            data = commands.delete(done.id) + data
            done.state = DELETING
            done.delete_written = True
        self.owed.extend(owed)
        if data:
            conn.sock.sendall(data)

    def settle(self, until: Job | None = None) -> None:
        """Read owed replies in order (never the blocking reserve's): all of them, or until
        job ``until`` has its counters.  Under ``lock`` while a handler runs."""
        owed = self.owed
        conn = self.conn
        while owed and owed[0][0] != WAIT:
            if until is not None and until.counters is not ASKED:
                return
            if conn is None:
                raise ConnectionError("connection to beanstalkd lost")
            kind, job = owed[0]
            status, values = conn.read_reply()
            if kind == STATS:
                assert job is not None
                if status == b"OK":
                    job.stats = parse_job_stats(conn.read_chunk(int(values[0])))
                    job.counters = KNOWN
                else:  # NOT_FOUND: its TTR ran out
                    job.counters = GONE
            elif kind == RESERVE:
                self._reserved(conn, status, values)
            else:
                assert job is not None
                self._deleted(job, status, again=kind == REDELETE)
            owed.popleft()

    def _reserved(self, conn: Connection, status: bytes, values: list[bytes]) -> Job | None:
        if status == b"RESERVED":
            job_id = int(values[0])
            job = Job(
                self.server,
                job_id,
                self.ref(job_id),
                conn.read_chunk(int(values[1])),
                self.single_tube,
            )
            self.held.append(job)
            return job
        if status == b"TIMED_OUT":
            return None
        if status == b"DEADLINE_SOON":
            # A job reserved on this connection is about to time out (the worker holds none
            # while it waits, so unexpected but harmless): retry once it has.
            if not self._deadline_soon_logged:
                self._deadline_soon_logged = True
                self.events.event(
                    "deadline-soon",
                    "reserve answered DEADLINE_SOON: a job reserved on this connection is "
                    "about to time out; retrying the reserve",
                    level="warning",
                )
            time.sleep(DEADLINE_SOON_PAUSE)
            return None
        raise ConnectionError(f"unexpected reply to reserve: {status.decode(errors='replace')}")

    def _deleted(self, job: Job, status: bytes, *, again: bool) -> None:
        """A succeeded job's ``delete`` answered: the one place a success ends."""
        text = status.decode(errors="replace")
        if status == b"DELETED":
            self._end(job, "deleted", "deleted after reconnecting" if again else None)
        elif again:
            # delete also works on a ready job.  NOT_FOUND: another worker reserved it (or
            # the first delete reached the server before the connection broke).
            self._end(
                job,
                "lost",
                f"delete after reconnecting replied {text}: another worker has it, or it "
                "was already deleted",
            )
        else:
            self._end(
                job,
                "lost",
                f"delete replied {text}: not reserved by this worker any more (TTR ran out?)",
            )

    def _end(self, job: Job, outcome: str, reason: str | None, delay: int | None = None) -> None:
        job.end(outcome, reason, delay)
        for hook in self.events.finished:
            hook(job)

    # -- the blocking reserve ----------------------------------------------------------------

    def wait(self) -> None:
        """Write the blocking reserve (the finished job's delete rides along; its reply is
        read here, the reserve's later by :meth:`take`)."""
        conn = self.conn
        assert conn is not None and self.waiting_since is None and not self.held
        self._write(conn, _WAIT_COMMAND, [(WAIT, None)])
        self.waiting_since = time.monotonic()
        self.settle()

    def overdue(self, now: float) -> bool:
        since = self.waiting_since
        return since is not None and now - since > RESERVE_TIMEOUT + REPLY_LIMIT

    def take(self) -> Job | None:
        """Read the blocking reserve's reply (readable now): the job it reserved, held."""
        conn = self.conn
        assert conn is not None and self.owed and self.owed[0][0] == WAIT
        status, values = conn.read_reply()
        self.owed.popleft()
        self.waiting_since = None
        job = self._reserved(conn, status, values)
        if status == b"RESERVED":
            self._deadline_soon_logged = False
        if not self.healthy and status in (b"RESERVED", b"TIMED_OUT"):
            self.healthy = True
            self.backoff.succeeded()
        return job

    # -- a job's start and its counters ------------------------------------------------------

    def begin(self, job: Job, wanted: Callable[[Job], bool], *, prefetch: bool, more: bool) -> bool:
        """``job`` (held here) is taken by the loop: ask what its start needs, and with
        ``prefetch`` the next jobs; False if it is gone (its TTR ran out)."""
        conn = self.conn
        assert conn is not None
        if self.owed:
            self.settle()  # prefetch's replies: the jobs reserved ahead are held from here
        self.held.remove(job)
        self.current = job
        out: list[bytes] = []
        owed: list[tuple[str, Job | None]] = []
        # Whether a job needs its counters is decided once, when first seen (held, or here):
        # decided while held, a metrics wait sample rides a job ahead and costs no wait.
        asked_now = job.counters is UNDECIDED and wanted(job)
        if asked_now:
            job.counters = ASKED
            owed.append((STATS, job))
            out.append(commands.stats_job(job.id))
        elif job.counters is UNDECIDED:
            job.counters = SKIPPED
        if prefetch:
            for ahead in self.held:
                if ahead.counters is UNDECIDED:
                    if wanted(ahead):
                        ahead.counters = ASKED
                        owed.append((STATS, ahead))
                        out.append(commands.stats_job(ahead.id))
                    else:
                        ahead.counters = SKIPPED
            asked = sum(1 for kind, _ in self.owed if kind == RESERVE)
            for _ in range(AHEAD - len(self.held) - asked if more else 0):
                owed.append((RESERVE, None))
                out.append(_RESERVE_NOW)
        if out or (prefetch and self.succeeded is not None):
            self._write(conn, b"".join(out), owed)
        if job.counters is ASKED:
            job.waited = asked_now
            self.settle(until=job)
        if job.counters is GONE:
            self.current = None
            self._end(job, "lost", "stats-job replied NOT_FOUND: its TTR ran out")
            return False
        return True

    def counters(self, job: Job) -> dict[str, int | str] | None:
        """``job``'s counters now (a round trip unless known or asked); None: gone."""
        if job.counters is not ASKED and job.counters is not KNOWN:
            if job.counters is GONE:
                return None
            conn = self.connection()
            job.counters = ASKED
            self._write(conn, commands.stats_job(job.id), [(STATS, job)])
        self.settle(until=job)
        return job.stats

    def settled(self) -> Connection:
        """The connection with every owed reply read: an outcome's exchange starts here."""
        conn = self.connection()
        self.settle()
        return conn

    def succeed(self, job: Job) -> None:
        """Its handler returned: deleted in the same write as this connection's next command
        (:meth:`_write`)."""
        job.state = SUCCEEDED
        self.current = None
        if self.succeeded is not None:  # another job's delete was still unwritten
            self.flush_delete()
        self.succeeded = job

    def ended(self, job: Job, outcome: str, reason: str | None, delay: int | None = None) -> None:
        """The loop sent ``job``'s outcome (release, bury) or gave it up."""
        if self.current is job:
            self.current = None
        self._end(job, outcome, reason, delay)

    def flush_delete(self) -> None:
        """Write the succeeded job's delete now (its reply is read with the next ones): the
        loop moves on to another server's job."""
        if self.succeeded is not None and self.conn is not None and not self.broken:
            self._write(self.conn, b"")

    # -- giving jobs back --------------------------------------------------------------------

    def hand_back(self, why: str) -> None:
        """Give every held job back (bury + kick-job, see the module docstring)."""
        conn = self.settled()
        missing = [job for job in self.held if job.counters in (UNDECIDED, SKIPPED)]
        for job in missing:  # a held job's priority comes from its stats-job
            job.counters = ASKED
        if missing:
            data = b"".join(commands.stats_job(job.id) for job in missing)
            self._write(conn, data, [(STATS, job) for job in missing])
            self.settle()
        while self.held:
            job = self.held.popleft()
            if job.stats is None:  # NOT_FOUND: its TTR ran out, it is back already
                self._end(job, "returned", f"prefetched, not started; {why}")
                continue
            conn.sock.sendall(commands.bury(job.id, job.priority) + commands.kick_job(job.id))
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
            self._end(job, "returned", f"prefetched, not started; {note}")

    def collect(self) -> None:
        """Read the blocking reserve's reply if it came (no wait): a job it reserved is held."""
        conn = self.conn
        if self.waiting_since is None or conn is None:
            return
        if readable(conn):
            self.take()

    # -- losing the connection ---------------------------------------------------------------

    def lost(self, exc: BaseException) -> None:
        """An exchange failed: say so, close, and rest unless it had answered a reserve."""
        self.said_lost(exc)
        self.cut_off("connection lost")
        self.rest()

    def cut_off(self, why: str) -> None:
        """Close the connection.  The taken job whose outcome was not sent and the held jobs
        go back to ready (beanstalkd does it); succeeded jobs whose delete was not answered
        are deleted again after reconnecting."""
        self._drop()
        job, self.current = self.current, None
        if job is not None:
            self._end(
                job,
                "returned",
                "connection lost before its outcome was sent; beanstalkd puts it back to ready",
            )
        while self.held:
            self._end(self.held.popleft(), "returned", f"prefetched, not started; {why}")
        cut = [job for kind, job in self.owed if kind in (DELETE, REDELETE) and job is not None]
        self.owed.clear()
        self.waiting_since = None
        if self.succeeded is not None:
            cut.append(self.succeeded)
            self.succeeded = None
        for done in cut:
            done.state = ORPHANED
            self.events.event(
                "delete-pending",
                f"job {done.ref} succeeded but its delete was cut off; "
                "deleting it after reconnecting",
                level="warning",
                job=done.ref,
            )
        self.orphans.extend(cut)

    def _drop(self) -> None:
        self.close([job for job in (self.succeeded, *self.orphans) if job is not None])

    def finish(self, why: str) -> None:
        """On the way out: hand held jobs back and make sure succeeded jobs are deleted (one
        reconnect try if the connection is gone)."""
        try:
            if self.conn is not None and not self.broken:
                self.collect()
                self.settle()
                if self.held:
                    self.hand_back(why)
                if self.succeeded is not None:
                    self._write(self.conn, b"")
                    self.settle()
        except (OSError, greenstalk.Error) as exc:
            self.lost(exc)
        if self.conn is not None and self.broken:
            self.cut_off("connection lost")
        if not self.orphans:
            self._drop()
            return
        self._drop()
        with contextlib.suppress(OSError):
            if self.connect() and not self.orphans:
                self._drop()
                return
        for done in self.orphans:
            if done.delete_written:
                # Written before the connection dropped: a frozen server applies it when it
                # resumes; a server that lost the connection first did not get it.
                reason = "succeeded; its delete was sent but not confirmed: server unreachable"
            else:
                reason = "succeeded, but not deleted: server unreachable"
            self._end(done, "returned", reason)
        self.orphans.clear()
        self._drop()
