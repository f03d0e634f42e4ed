"""One worker process serving several beanstalkd servers.

The process holds a :class:`~beanfleet.work.worker.Worker` per server (its own connection, watch
list, reconnect backoff, prefetch and per-host run records) and serves them in turns:

* a turn reserves with ``reserve-with-timeout 0`` from one server and runs its jobs, up to
  ``TURN_JOBS`` of them, then moves on, so a busy server cannot starve another;
* when a whole round found no job the next round waits ``reserve-with-timeout 1`` on each
  server in turn (beanstalkd's shortest blocking wait), so an idle process notices a new
  job on any of N servers within about 2*(N-1) seconds (each round starts one server
  further on, so a server can be first in one round and last in the next) and a busy one
  at once;
* before leaving a server its finished jobs are deleted and prefetched ones run (no job
  stays reserved here while another server's jobs run, so no TTR runs out unseen);
* a server that cannot be reached is skipped until its backoff ends (connect and reply
  waits are short), so a dead server costs a failed connect every few seconds, not a
  share of the process;
* a frozen server (SIGSTOP, a paused VM) is one whose reply does not come: every reply
  (reserve, touch, delete, stats-job) is waited for at most ``REPLY_LIMIT``, then the
  connection is dropped and the server backs off like a dead one.  A finished job's
  ``delete`` is written before the drop (:meth:`Worker._write_deletes`): the frozen
  server's kernel holds it and the server applies it when it resumes, so the job does not
  run again.

Why not one process per server: a pool split over servers idles the processes of an empty
server while another server's jobs wait, and a dead server idles its share of the pool
(README, "Several queue hosts", has the measurement).
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Mapping, Sequence
from functools import partial
from types import FrameType
from typing import TYPE_CHECKING

from beanfleet.errors import ConfigError
from beanfleet.wire.jobref import JobRef
from beanfleet.work.handlers import Handler
from beanfleet.work.heartbeat import Monitor
from beanfleet.work.job import Reserved
from beanfleet.work.joblog import JobLog
from beanfleet.work.outcome import RetryPolicy
from beanfleet.work.recycle import RecycleLimits, Recycler
from beanfleet.work.shutdown import ShutdownFlags
from beanfleet.work.worker import RECONNECT_CAP, RECONNECT_FIRST, Worker

if TYPE_CHECKING:
    from beanfleet.metrics.worker import WorkerMetrics

TURN_JOBS = 16  # jobs run from one server before the next server's turn
RESERVE_NOW = b"reserve-with-timeout 0\r\n"
RESERVE_IDLE = b"reserve-with-timeout 1\r\n"
CONNECT_TIMEOUT = 1.0  # a host that drops packets must not hold up the other servers
REPLY_LIMIT = 3.0  # no reply this long (to a 0-1 s reserve or any other command): frozen or dead


class ServersWorker:
    """Runs handlers for jobs from several servers until stopped or recycled."""

    def __init__(
        self,
        servers: Sequence[str],
        handlers: Mapping[str, Handler],
        *,
        policy: RetryPolicy | None = None,
        timeout: float | None = None,
        limits: RecycleLimits | None = None,
        log: JobLog | None = None,
        reconnect_cap: float = RECONNECT_CAP,
        prefetch: bool = False,
        state_dir: str | os.PathLike[str] | None = None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.servers = list(servers)
        self.log = log or JobLog()
        self.flags = ShutdownFlags()
        self.recycler = Recycler(limits or RecycleLimits())
        self.reconnect_cap = reconnect_cap
        self.timeout = timeout
        self.members = [
            Worker(
                server,
                handlers,
                policy=policy,
                timeout=timeout,
                log=self.log,
                reconnect_cap=reconnect_cap,
                prefetch=prefetch,
                state_dir=state_dir,
                metrics=metrics,
            )
            for server in self.servers
        ]
        for member in self.members:
            # One stop, one job count and one set of limits for the process.
            member.flags = self.flags
            member.recycler = self.recycler
            member.make_id = member.prefetch.make_id = partial(JobRef, member.server)  # type: ignore[assignment]  # an id by __index__; JobRef is no int subclass now
            member.connect_timeout = CONNECT_TIMEOUT
            member.reply_limit = REPLY_LIMIT
        self.tubes = self.members[0].tubes
        self._retry_at = [0.0] * len(self.members)
        self._backoff = [RECONNECT_FIRST] * len(self.members)
        self._serving: Worker | None = None

    def request_stop(self, why: str = "stop requested") -> None:
        self.flags.request_stop(why)

    def _running(self) -> Reserved | None:
        return next((m.running for m in self.members if m.running is not None), None)

    # -- lifecycle ---------------------------------------------------------------------------

    def run(self) -> str:
        in_main = self.flags.install()
        previous_alarm = None
        if self.timeout is not None:
            if not in_main:
                raise ConfigError("a job timeout needs the worker in the main thread (SIGALRM)")
            previous_alarm = signal.signal(signal.SIGALRM, self._on_alarm)
        monitors = [
            Monitor(member, announce=index == 0, running=self._running)
            for index, member in enumerate(self.members)
        ]
        for monitor in monitors:
            monitor.start()
        self.log.event(
            "started",
            f"worker started, tubes {', '.join(self.tubes)}, servers {', '.join(self.servers)}",
            pid=os.getpid(),
            server=",".join(self.servers),
        )
        try:
            reason = self._loop()
        finally:
            for monitor in monitors:
                monitor.join()
            for member in self.members:
                member._drop_connection()
                if member.records is not None:
                    member.records.close(keep=member._current is not None)
            if previous_alarm is not None:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous_alarm)
            self.flags.restore()
            self.log.flush()
        self.log.event("stopped", f"worker exiting: {reason}", jobs=self.recycler.jobs)
        return reason

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        member = self._serving
        assert member is not None  # the alarm is armed only while a handler runs
        member._on_alarm(signum, frame)

    def _loop(self) -> str:
        idle = False
        first = 0
        count = len(self.members)
        while True:
            reason = self.members[0]._stop_reason()
            if reason is not None:
                for member in self.members:
                    member._finish()
                return reason
            found = 0
            for step in range(count):
                found += self._turn((first + step) % count, RESERVE_IDLE if idle else RESERVE_NOW)
                if self.members[0]._stop_reason() is not None:
                    break
            first = (first + 1) % count
            idle = found == 0
            if idle and all(m.conn is None for m in self.members):
                self.members[0]._pause(min(self._retry_at) - time.monotonic())

    # -- one server's turn -------------------------------------------------------------------

    def _turn(self, index: int, command: bytes) -> int:
        """Serve server ``index``: connect if due, then run its jobs until it has none or
        the turn is over; return how many ran."""
        member = self.members[index]
        if member.conn is None or member.conn_broken:
            if time.monotonic() < self._retry_at[index]:
                return 0
            if not member._connect(attempts=1):
                self._rest(index)
                return 0
        done = 0
        self._serving = member
        member.prefetch_more = True
        try:
            while member._stop_reason() is None:
                conn = member.conn
                if conn is None or member.conn_broken:
                    break
                if done >= TURN_JOBS:
                    # Turn over: ask for no more, run what prefetch holds, then leave.
                    member.prefetch_more = False
                    member.prefetch.settle(conn)
                    if not member.prefetch.held:
                        member._send_after_delete(conn, b"")  # nothing left reserved here
                        break
                job = member._reserve(conn, command)
                if job is None:
                    break
                member._process(job)
                done += 1
                command = RESERVE_NOW
            if member.conn is not None and member.conn_broken:
                # The monitor found it dead while a handler ran (a touch got no reply): drop
                # it now, writing the finished job's delete first, and back off.
                member._cut_off()
                self._rest(index)
                return done
            self._backoff[index] = RECONNECT_FIRST
        except OSError as exc:  # ConnectionError, reset, no reply, ...
            member._connection_lost(exc, pause=False)
            self._rest(index)
        finally:
            self._serving = None
        return done

    def _rest(self, index: int) -> None:
        """Skip server ``index`` for a jittered, doubling backoff."""
        delay = self._backoff[index] * random.uniform(0.5, 1.0)
        self._backoff[index] = min(self._backoff[index] * 2, self.reconnect_cap)
        self._retry_at[index] = time.monotonic() + delay
