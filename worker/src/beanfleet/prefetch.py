"""Prefetch: reserve the next job while a handler runs.

Every ``reserve-with-timeout 0`` sent ahead is a reply owed on the connection; the jobs those
replies bring are *held*: reserved here, not started.  While a handler runs the worker holds
at most one.  Owed replies are read (:meth:`Prefetch.settle`) before any other exchange, so
every other exchange reads its own reply.

A held job is given back (:meth:`Prefetch.hand_back`) with ``release <id> <pri> 1`` then
``kick-job <id>`` in one write.  Neither step can strand it: released, it is delayed for one
second and becomes ready on its own if the worker dies before the kick; kicked, it is ready at
once with its id, priority and body.  ``kick-job`` is what marks the reservation as one that
never started: :func:`beanfleet.retry.attempt_of` subtracts ``kicks`` from ``reserves``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import greenstalk

from beanfleet.protocol import Connection, parse_yaml_mapping
from beanfleet.reserved import Reserved

RESERVE_NOW = b"reserve-with-timeout 0\r\n"  # a job if one is ready, else TIMED_OUT


class Prefetch:
    """The replies owed for prefetch reserves and the jobs they brought (not started)."""

    def __init__(
        self, single_tube: str | None, log_returned: Callable[[Reserved, str], None]
    ) -> None:
        self.single_tube = single_tube
        self.owed = 0  # reserve-with-timeout 0 replies not read yet
        self.held: deque[Reserved] = deque()
        self._log_returned = log_returned

    @property
    def busy(self) -> bool:
        return bool(self.owed or self.held)

    def ask(self) -> bytes:
        """The command that asks for one more job, if the worker is not two ahead already
        (held or asked): one of them runs next, so a handler runs with at most one held."""
        if self.owed + len(self.held) >= 2:
            return b""
        self.owed += 1
        return RESERVE_NOW

    def settle(self, conn: Connection, *, until_job: bool = False) -> None:
        """Read the owed replies: all of them, or (``until_job``) until a job is held.
        Callers hold the worker's lock or know that no handler runs."""
        while self.owed and not (until_job and self.held):
            status, values = conn.read_reply()
            if status == b"RESERVED":
                body = conn.read_chunk(int(values[1]))
                self.held.append(Reserved(int(values[0]), body, self.single_tube))
            elif status not in (b"TIMED_OUT", b"DEADLINE_SOON"):
                raise ConnectionError(
                    f"unexpected reply to reserve: {status.decode(errors='replace')}"
                )
            self.owed -= 1

    def next_held(self, conn: Connection) -> Reserved | None:
        """The next held job, after reading the replies owed; None if prefetch found none.

        The reply read first was asked for one job earlier, so beanstalkd had that job's
        whole run to answer it."""
        self.settle(conn, until_job=True)
        if not self.held:
            return None
        job = self.held.popleft()
        self.settle(conn)  # every exchange that follows reads its own reply
        return job

    def hand_back(self, conn: Connection, why: str) -> None:
        """Give every held job back (see the module docstring); log each as returned."""
        self.settle(conn)
        while self.held:
            job = self.held.popleft()
            try:
                (size,) = conn.call(b"stats-job %d" % job.id, b"OK")
                pri = int(parse_yaml_mapping(conn.read_chunk(int(size)))["pri"])
            except greenstalk.NotFoundError:  # its TTR ran out: it is back already
                self._log_returned(job, f"prefetched, not started; {why}")
                continue
            conn.send([b"release %d %d 1" % (job.id, pri), b"kick-job %d" % job.id])
            released, _ = conn.read_reply()
            kicked, _ = conn.read_reply()
            if (released, kicked) != (b"RELEASED", b"KICKED"):
                # Released but not kicked: ready in a second all the same, but this
                # reservation will count as an attempt.
                why += (
                    f" (release replied {released.decode(errors='replace')}, kick-job "
                    f"{kicked.decode(errors='replace')})"
                )
            self._log_returned(job, f"prefetched, not started; {why}")

    def forget(self, why: str) -> None:
        """The connection is gone: beanstalkd puts the held jobs back to ready itself (and
        they count as an attempt: nothing marks them as unstarted)."""
        self.owed = 0
        while self.held:
            self._log_returned(self.held.popleft(), f"prefetched, not started; {why}")
