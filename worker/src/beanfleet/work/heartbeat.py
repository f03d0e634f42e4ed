"""The worker's monitor thread: second signal, heartbeat, log flush.

The heartbeat ``touch``es a job that runs longer than ``HEARTBEAT_AFTER`` every ttr/3 so it
outlives its TTR while its worker lives; at the first touch it also gives back the job the
worker holds for prefetch, which would otherwise wait behind the long one.  Everything it
does on the connection happens under the worker's lock.

The thread must outlive any failure of one of its steps (a dead monitor means no more
touches, so a long job runs twice, and log lines held back): a step that raises is logged
once and the loop goes on.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import greenstalk

from beanfleet.wire.client import describe_os_error
from beanfleet.work.joblog import JobOutcome

if TYPE_CHECKING:
    from beanfleet.work.job import Reserved
    from beanfleet.work.worker import Worker

MONITOR_INTERVAL = 0.05  # monitor tick: second signal, heartbeat, log flush
MIN_TOUCH_INTERVAL = 0.3  # touch every ttr/3, but not more often than this
ABORT_GRACE = 2.0  # second signal and no handler running: exit hard if still here by then


class Monitor:
    def __init__(
        self,
        worker: Worker,
        *,
        announce: bool = True,
        running: Callable[[], Reserved | None] | None = None,
    ) -> None:
        self.worker = worker
        # A process serving several servers runs a monitor per server; one of them says
        # "stopping", naming the job running on whichever server (``running``).
        self.announce = announce
        self._running = running
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

    def _run(self) -> None:
        steps = (self._signals, self._heartbeat, self.worker.log.flush)
        while not self.stop.wait(MONITOR_INTERVAL):
            for step in steps:
                try:
                    step()
                except Exception as exc:
                    self._step_failed(step.__name__, exc)

    def _step_failed(self, name: str, exc: Exception) -> None:
        if name in self._failed:
            return
        self._failed.add(name)
        with contextlib.suppress(Exception):  # the log itself may be what fails
            self.worker.log.event(
                "monitor-error",
                f"monitor step {name.strip('_')} failed, going on: {type(exc).__name__}: {exc}",
                level="error",
            )

    def _signals(self) -> None:
        flags = self.worker.flags
        if flags.count != self._signals_seen:
            self._signals_seen = flags.count
            if self.announce:
                self._log_stopping(self._signals_seen)
        if flags.aborting:
            self._abort()

    def _log_stopping(self, count: int) -> None:
        # From the monitor thread: the signal handler itself only counts.
        worker = self.worker
        job = self._running() if self._running is not None else worker.running
        name = worker.flags.signal_name
        if count == 1:
            doing = f"finishing job {job.id}, then exiting" if job else "exiting"
            worker.log.event("stopping", f"{name}: no new jobs; {doing}")
        elif count == 2:
            doing = f"releasing job {job.id} and exiting now" if job else "exiting now"
            worker.log.event("stopping", f"second {name}: {doing}")

    def _heartbeat(self) -> None:
        worker = self.worker
        job = worker.running
        if job is None or time.monotonic() < job.next_touch:
            return
        with worker.lock:
            conn = worker.conn
            if worker.running is not job or conn is None or worker.conn_broken:
                return
            try:
                if worker.prefetch.busy:
                    worker.prefetch.hand_back(conn, "the current job runs long")
                conn.send([b"touch %d" % job.id])
                status, _ = conn.read_reply()
                if status == b"TOUCHED":
                    # The TTR sets the touch interval; a job that skipped its stats-job at
                    # the start (no crash record) pays for it here, only if it runs long.
                    worker.fetch_stats(conn, job)
            except OSError as exc:
                worker.conn_broken = True
                worker.log.event(
                    "connection-lost",
                    f"lost connection to beanstalkd while job {job.id} runs: "
                    f"{describe_os_error(exc)}",
                    level="error",
                    job=job.id,
                )
                return
            if status == b"TOUCHED":
                ttr = int(job.stats["ttr"]) if job.stats is not None else 1
                job.next_touch = time.monotonic() + max(MIN_TOUCH_INTERVAL, ttr / 3)
                return
            job.next_touch = float("inf")
            worker.log.event(
                "touch-failed",
                f"touch of job {job.id} replied {status.decode(errors='replace')}: "
                "it is not reserved by this worker any more",
                level="warning",
                job=job.id,
            )

    def _abort(self) -> None:
        """Second signal: give the running job back now (priority kept, no delay), exit 0."""
        worker = self.worker
        with worker.lock:
            job = worker.running
            if job is not None:
                self._release_now()
                worker.log.event("stopped", f"worker exiting: second {worker.flags.signal_name}")
                worker.log.flush()
                os._exit(0)
        # No handler running: the main loop is already on its way out; make sure it gets out.
        now = time.monotonic()
        if self._abort_deadline is None:
            self._abort_deadline = now + ABORT_GRACE
        elif now > self._abort_deadline:
            worker.log.event("stopped", "worker exiting: forced after second signal")
            worker.log.flush()
            os._exit(0)

    def _release_now(self) -> None:
        # Runs with the lock held while the handler is still busy in the main thread.
        worker = self.worker
        job = worker.running
        assert job is not None
        reason = f"second {worker.flags.signal_name}: handed back while running"
        conn = worker.conn
        status = b""
        if conn is not None and not worker.conn_broken:
            try:
                worker.prefetch.settle(conn)
                if worker.fetch_stats(conn, job) is not None:  # the priority to keep
                    conn.send([b"release %d %d 0" % (job.id, job.priority)])
                    status, _ = conn.read_reply()
            except (OSError, greenstalk.Error):
                pass  # exiting closes the socket, which returns the job to ready all the same
        if status == b"RELEASED":
            worker.log.job(JobOutcome(job.id, job.tube, job.attempt, None, "released", 0, reason))
        else:
            worker.log_job(job, "returned", reason + " (by closing the connection)")
