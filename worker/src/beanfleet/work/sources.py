"""Where the worker's next job comes from: every server at once.

May import: ``work.session``, ``work.job``, ``work.shutdown``, ``work.recycle`` and the stdlib.

Each server's :class:`~beanfleet.work.session.Session` keeps one blocking
``reserve-with-timeout`` outstanding while the worker is idle, and :meth:`Sources.next_job`
waits on all of them at once with ``poll``: a job put on any server is noticed at once,
whatever the number of servers.  Rules that keep the guarantees:

* a connection whose job runs gets no blocking reserve (a touch would queue behind it;
  beanstalkd answers in order per connection): only prefetch's ``reserve-with-timeout 0``;
* a job reserved on one server while another server's job runs is held, like a prefetched
  job: handed out next (:meth:`order` decides between servers), or given back (bury +
  kick-job) by the heartbeat once the running job runs long, or when the worker stops;
* a server that cannot be reached rests (jittered doubling backoff) and the others go on; a
  reserve unanswered past its bound drops the connection (a frozen server).

One server is a set of one: the same path, and the same bytes on the wire as a worker made
for one server (the finished job's ``delete`` and the next reserve in one write).
"""

from __future__ import annotations

import select
import time
from collections.abc import Sequence

import greenstalk

from beanfleet.work.job import Job
from beanfleet.work.link import REPLY_LIMIT
from beanfleet.work.session import RESERVE_TIMEOUT, Session
from beanfleet.work.shutdown import ShutdownFlags

WAIT_SLICE = 0.1  # how often a wait looks at the stop flags


class Sources:
    """The servers' sessions as one source of jobs."""

    def __init__(self, sessions: Sequence[Session], flags: ShutdownFlags) -> None:
        self.sessions = list(sessions)
        self.flags = flags  # a stop signal: no job is handed out (the loop checks the rest)
        self._turn = 0
        self._poller = select.poll()
        self._polled: set[int] = set()

    def order(self, sessions: Sequence[Session]) -> Sequence[Session]:
        """The order in which to look at ``sessions`` for the next job (override to
        prioritise servers, as rq's ``reorder_queues``).  Default: round robin, one server
        further after every job handed out, so busy servers alternate job by job."""
        start = self._turn % len(sessions) if sessions else 0
        return [*sessions[start:], *sessions[:start]] if start else sessions

    def next_job(self) -> tuple[Session, Job] | None:
        """The next job to run, or None after one wait slice without one (or on a stop: the
        loop checks the stop reasons before each call)."""
        sessions = self.order(self.sessions)
        for session in sessions:
            if session.waiting_since is not None and session.conn is not None:
                # A reserve answered while another server's jobs ran: its job is held now,
                # and takes its turn (a stream of prefetched jobs elsewhere must not starve it).
                try:
                    session.collect()
                except (OSError, greenstalk.Error) as exc:
                    session.lost(exc)
        for session in sessions:
            if session.held:
                return self._taken(session, session.held[0])
        now = time.monotonic()
        for session in sessions:
            try:
                conn = session.conn
                if conn is None:
                    if now < session.retry_at or not session.connect() or self.flags.count:
                        continue
                elif session.broken:
                    raise ConnectionError("connection to beanstalkd lost while the handler ran")
                if session.waiting_since is None:
                    if session.owed:
                        session.settle()  # prefetch replies (and a delete's)
                    if session.held:
                        return self._taken(session, session.held[0])
                    session.wait()
                if session.conn is not None and session.conn.has_buffered():
                    job = session.take()
                    if job is not None:
                        return self._taken(session, job)
            except (OSError, greenstalk.Error) as exc:
                session.lost(exc)
        return self._poll(sessions)

    def _poll(self, sessions: Sequence[Session]) -> tuple[Session, Job] | None:
        waiting = {s.conn.fileno(): s for s in sessions if s.waiting_since and s.conn}
        if not waiting:
            # Every server down: sleep until the first is due again (in slices, for stops).
            due = min((s.retry_at for s in sessions), default=0.0) - time.monotonic()
            if due > 0 and not self.flags.count:
                time.sleep(min(due, WAIT_SLICE))
            return None
        if waiting.keys() != self._polled:  # registered again only when the set changes
            self._poller = select.poll()
            for fd in waiting:
                self._poller.register(fd, select.POLLIN)
            self._polled = set(waiting)
        readable = {fd for fd, _ in self._poller.poll(WAIT_SLICE * 1000)}
        now = time.monotonic()
        for session in sessions:
            if session.conn is None or session.waiting_since is None:
                continue
            try:
                if session.conn.fileno() in readable:
                    job = session.take()
                    if job is not None:
                        return self._taken(session, job)
                elif session.overdue(now):
                    limit = RESERVE_TIMEOUT + REPLY_LIMIT
                    raise TimeoutError(f"no reply to reserve in {limit:g}s")
            except (OSError, greenstalk.Error) as exc:
                session.lost(exc)
        return None

    def _taken(self, session: Session, job: Job) -> tuple[Session, Job] | None:
        if self.flags.count:
            return None  # a stop came while the reply was in flight: held, handed back
        self._turn += 1
        for other in self.sessions:
            if other is not session and other.succeeded is not None:
                try:
                    other.flush_delete()  # not left unwritten while another server's job runs
                except OSError as exc:
                    other.lost(exc)
        return session, job

    def finish(self, why: str) -> None:
        for session in self.sessions:
            session.finish(why)

    def unfinished(self) -> bool:
        """A taken job's outcome was never sent (the loop ended by an exception)."""
        return any(session.current is not None for session in self.sessions)
