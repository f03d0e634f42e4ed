"""The worker's heartbeat thread: second signal, touches of a long job, the observers' tick.

May import: ``work.session``, ``work.events``, ``work.lifecycle``-level modules
(``work.shutdown``), ``wire`` and the stdlib.  It sees the worker only through its sessions
(one per server), the shutdown flags and the observers: never the ``Worker``.

It ``touch``es a job that runs longer than ``HEARTBEAT_AFTER`` every ttr/3 so it outlives
its TTR while its worker lives.  At the first touch it also gives back every job held
unstarted (prefetched on the running job's connection, or reserved on another server while
this one ran): they would otherwise wait behind the long job with their TTR running.
Everything it does on a connection happens under the sessions' shared lock, and only while
the job it checked is still running (the loop clears ``running`` under that lock).

The thread must outlive any failure of one of its steps (a dead heartbeat means no more
touches, so a long job runs twice, and log lines held back): a step that raises is logged
once and the loop goes on.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Sequence

import greenstalk

from beanfleet.wire import commands
from beanfleet.wire.client import describe_os_error
from beanfleet.work.events import Observers
from beanfleet.work.job import State
from beanfleet.work.session import Session
from beanfleet.work.shutdown import ShutdownFlags

MONITOR_INTERVAL = 0.05  # tick: second signal, heartbeat, observers' flush
MIN_TOUCH_INTERVAL = 0.3  # touch every ttr/3, but not more often than this
ABORT_GRACE = 2.0  # second signal and no handler running: exit hard if still here by then


class Heartbeat:
    def __init__(
        self,
        sessions: Sequence[Session],
        flags: ShutdownFlags,
        events: Observers,
        lock: threading.Lock,
    ) -> None:
        self.sessions = list(sessions)
        self.flags = flags
        self.events = events
        self.lock = lock
        self.stop = threading.Event()
        self._abort_deadline: float | None = None
        self._signals_seen = 0
        self._failed: set[str] = set()  # steps whose failure was logged
        self._thread = threading.Thread(target=self._run, name="beanfleet-monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self.stop.set()
        self._thread.join(timeout=2)

    def _running(self) -> Session | None:
        return next((s for s in self.sessions if s.running is not None), None)

    def _run(self) -> None:
        steps: list[tuple[str, Callable[[], object]]] = [
            ("signals", self._signals),
            ("heartbeat", self._heartbeat),
        ]
        steps += [(getattr(tick, "__name__", "tick"), tick) for tick in self.events.ticks]
        while not self.stop.wait(MONITOR_INTERVAL):
            for name, step in steps:
                try:
                    step()
                except Exception as exc:
                    self._step_failed(name, exc)

    def _step_failed(self, name: str, exc: Exception) -> None:
        if name in self._failed:
            return
        self._failed.add(name)
        with contextlib.suppress(Exception):  # the log itself may be what fails
            self.events.event(
                "monitor-error",
                f"monitor step {name.strip('_')} failed, going on: {type(exc).__name__}: {exc}",
                level="error",
            )

    def _signals(self) -> None:
        flags = self.flags
        if flags.count != self._signals_seen:
            self._signals_seen = flags.count
            self._log_stopping(self._signals_seen)
        if flags.aborting:
            self._abort()

    def _log_stopping(self, count: int) -> None:
        # From this thread: the signal handler itself only counts.
        session = self._running()
        job = session.running if session is not None else None
        name = self.flags.signal_name
        if count == 1:
            doing = f"finishing job {job.ref}, then exiting" if job else "exiting"
            self.events.event("stopping", f"{name}: no new jobs; {doing}")
        elif count == 2:
            doing = f"releasing job {job.ref} and exiting now" if job else "exiting now"
            self.events.event("stopping", f"second {name}: {doing}")

    def _heartbeat(self) -> None:
        session = self._running()
        job = session.running if session is not None else None
        if session is None or job is None or time.monotonic() < job.next_touch:
            return
        with self.lock:
            conn = session.conn
            if session.running is not job or conn is None or session.broken:
                return
            try:
                self._hand_back_held(session)
                conn.sock.sendall(commands.touch(job.id))
                status, _ = conn.read_reply()
                if status == b"TOUCHED":
                    # The TTR sets the touch interval; a job that skipped its stats-job at
                    # the start (no crash record) pays for it here, only if it runs long.
                    session.counters(job)
            except OSError as exc:
                session.broken = True
                self.events.event(
                    "connection-lost",
                    f"lost connection to beanstalkd while job {job.ref} runs: "
                    f"{describe_os_error(exc)}",
                    level="error",
                    job=job.ref,
                )
                return
            if status == b"TOUCHED":
                ttr = int(job.stats["ttr"]) if job.stats is not None else 1
                job.next_touch = time.monotonic() + max(MIN_TOUCH_INTERVAL, ttr / 3)
                return
            job.next_touch = float("inf")
            self.events.event(
                "touch-failed",
                f"touch of job {job.ref} replied {status.decode(errors='replace')}: "
                "it is not reserved by this worker any more",
                level="warning",
                job=job.ref,
            )

    def _hand_back_held(self, running: Session) -> None:
        """Give back every job held unstarted, on every connection (under the lock)."""
        for session in self.sessions:
            if session is not running:
                if session.conn is None or session.broken:
                    continue
                try:
                    session.collect()  # a reserve answered meanwhile: that job is held
                    if session.held:
                        session.hand_back("another job runs long")
                except (OSError, greenstalk.Error) as exc:
                    session.broken = True  # the loop cuts it off and reconnects
                    self.events.event(
                        "connection-lost",
                        f"lost connection to beanstalkd at {session.server}: "
                        f"{describe_os_error(exc) if isinstance(exc, OSError) else exc!r}",
                        level="error",
                    )
            elif session.held or session.owed:
                session.settle()
                if session.held:
                    session.hand_back("the current job runs long")

    def _abort(self) -> None:
        """Second signal: give the running job back now (priority kept, no delay), exit 0."""
        with self.lock:
            session = self._running()
            if session is not None and session.running is not None:
                self._release_now(session)
                self.events.event("stopped", f"worker exiting: second {self.flags.signal_name}")
                self._flush()
                os._exit(0)
        # No handler running: the main loop is already on its way out; make sure it gets out.
        now = time.monotonic()
        if self._abort_deadline is None:
            self._abort_deadline = now + ABORT_GRACE
        elif now > self._abort_deadline:
            self.events.event("stopped", "worker exiting: forced after second signal")
            self._flush()
            os._exit(0)

    def _flush(self) -> None:
        for tick in self.events.ticks:
            with contextlib.suppress(Exception):
                tick()

    def _release_now(self, session: Session) -> None:
        # Runs with the lock held while the handler is still busy in the main thread.
        job = session.running
        assert job is not None
        reason = f"second {self.flags.signal_name}: handed back while running"
        status = b""
        if session.conn is not None and not session.broken:
            try:
                if session.counters(job) is not None:  # the priority to keep
                    conn = session.settled()
                    conn.sock.sendall(commands.release(job.id, job.priority, 0))
                    status, _ = conn.read_reply()
            except (OSError, greenstalk.Error):
                pass  # exiting closes the socket, which returns the job to ready all the same
        if job.state is State.ENDED:
            return
        if status == b"RELEASED":
            session.ended(job, "released", reason, 0)
        else:
            session.ended(job, "returned", reason + " (by closing the connection)")
