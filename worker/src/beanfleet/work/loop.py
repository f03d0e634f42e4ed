"""The worker loop, read top to bottom: take a job, run its tube's handler, settle it.

May import: every other ``work`` module, ``wire`` and the base modules.  Read this module
first; behind it, one module per concern: where jobs come from (:mod:`.sources`, over one
:mod:`.session` per server), what a job is (:mod:`.job`), retry and bury (:mod:`.outcome`),
the heartbeat thread (:mod:`.heartbeat`), and who observes (:mod:`.events`: the job log, the
per-host run records of :mod:`.crashguard`, the metrics).

One job's path::

    session, job = sources.next_job()    # a held job, or the reply to the blocking reserve
    session.begin(job, ...)              # its counters if needed; with prefetch, the next jobs
    crash-loop check, handler lookup, decode (a poison job is buried here)
    events.job_started(job); handler(data, info)   # under --timeout's SIGALRM
    session.succeed(job)                 # its delete rides the next write on that connection
    or: counters, RetryPolicy.decide, release or bury   (events.job_finished: once, at its end)

A job that keeps killing its workers must be buried before it runs again, but the reserve
reply carries no counters and a ``stats-job`` costs a round trip.  So the worker asks only for
a job named by another worker's run record on this host (:mod:`.crashguard`), a job whose
tube it cannot tell (several tubes watched), a metrics sample, or every job without a state
directory; a job is buried unstarted once ``max_retries + 1`` of its reservations ended with
no outcome (:func:`~beanfleet.work.outcome.unfinished_of`) and a record (or no state
directory) says it started before.

A handler that raises, ``SystemExit`` and ``KeyboardInterrupt`` included, has failed an
attempt; an exception of the worker's own that ends it with a job started and unfinished
leaves the run record, as a death would.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from types import FrameType

import greenstalk

from beanfleet.bounds import MAX_SECONDS, check_number
from beanfleet.errors import ConfigError, JobNotFound, JobTimeout
from beanfleet.names import check_tube
from beanfleet.wire.jobref import JobRef, public_id
from beanfleet.work.crashguard import CrashGuard
from beanfleet.work.events import Observer, Observers
from beanfleet.work.handlers import Handler, JobInfo, check_handler, returned_unrun
from beanfleet.work.heartbeat import Heartbeat
from beanfleet.work.job import KNOWN, Job
from beanfleet.work.joblog import JobLog
from beanfleet.work.link import RECONNECT_CAP
from beanfleet.work.outcome import RetryOutcome, RetryPolicy, bury, schedule_retry, unfinished_of
from beanfleet.work.recycle import RecycleLimits, Recycler
from beanfleet.work.session import Session
from beanfleet.work.shutdown import ShutdownFlags
from beanfleet.work.sources import Sources


def _refuse_constant(name: str) -> object:
    # NaN, Infinity and -Infinity are not JSON (other clients and our producer refuse them);
    # called only for bodies that hold one, so the hot path pays nothing.
    raise ValueError(f"{name} is not a JSON value")


# json.loads minus its per-call type checks, and strict about the constants.
_decode_json = json.JSONDecoder(parse_constant=_refuse_constant).decode


def describe_error(error: BaseException) -> str:
    """``ValueError: boom (tasks.py:12 in send)``: one line, with the innermost frame of the
    handler's code (a JobTimeout is raised in this module, where the alarm hit it)."""
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename != __file__]
    if frames:
        last = frames[-1]
        text += f" ({os.path.basename(last.filename)}:{last.lineno} in {last.name})"
    return text


class Worker:
    """Runs handlers for jobs from one or more tubes on one or more servers until stopped or
    recycled.  ``run()`` returns why it stopped; from code stop it with ``limits`` or
    :meth:`request_stop` (e.g. from a handler)."""

    def __init__(
        self,
        servers: str | Sequence[str],
        handlers: Mapping[str, Handler],
        *,
        policy: RetryPolicy | None = None,
        timeout: float | None = None,
        limits: RecycleLimits | None = None,
        log: JobLog | None = None,
        reconnect_cap: float = RECONNECT_CAP,
        prefetch: bool = False,
        state_dir: str | os.PathLike[str] | None = None,
        observers: Sequence[Observer] = (),
    ) -> None:
        if not handlers:
            raise ConfigError("no tubes to watch: give at least one TUBE=MODULE:FUNCTION")
        self.servers = [servers] if isinstance(servers, str) else list(servers)
        if not self.servers:
            raise ConfigError("no servers given")
        self.handlers = dict(handlers)
        for tube, handler in self.handlers.items():
            check_tube(tube)
            check_handler(tube, handler)
        self.policy = policy or RetryPolicy()
        if timeout is not None:
            check_number(timeout, "timeout", low=0, low_open=True, high=MAX_SECONDS)
        self.timeout = timeout
        self.recycler = Recycler(limits or RecycleLimits())
        self.prefetching = prefetch
        self.flags = ShutdownFlags()
        self.tubes = self.tubes_to_watch()
        # Without a state directory every job's counters are asked before it starts.
        self.guard = None if state_dir is None else CrashGuard(state_dir, self.servers)
        self.log = log or JobLog()
        # The log last: the others' closing words come before its "stopped" line.
        self.events = Observers([*filter(None, [self.guard]), *observers, self.log])
        lock = threading.Lock()  # one job runs at a time: one lock for its exchanges
        self.sessions = [
            self.session(server, partial(public_id, self.servers, server), lock, reconnect_cap)
            for server in self.servers
        ]
        self.sources = Sources(self.sessions, self.flags)
        self.heartbeat = Heartbeat(self.sessions, self.flags, self.events, lock)
        self._timed_out = False

    def tubes_to_watch(self) -> list[str]:
        """The watch list: the handlers' tubes (never ``default`` unless it has one)."""
        return list(self.handlers)

    def session(
        self, server: str, ref: Callable[[int], int | JobRef], lock: threading.Lock, cap: float
    ) -> Session:
        """The session of one server (a seam: a subclass may return its own)."""
        return Session(server, self.tubes, ref, self.events, lock, self.guard, cap)

    def request_stop(self, why: str = "stop requested") -> None:
        self.flags.request_stop(why)

    # -- lifecycle ---------------------------------------------------------------------------

    def run(self) -> str:
        in_main = self.flags.install()
        previous_alarm = None
        if self.timeout is not None:
            if not in_main:
                raise ConfigError("a job timeout needs the worker in the main thread (SIGALRM)")
            previous_alarm = signal.signal(signal.SIGALRM, self._on_alarm)
        self.heartbeat.start()
        self.events.worker_started(self.tubes, self.servers)
        reason: str | None = None
        try:
            while (reason := self._stop_reason()) is None:
                taken = self.sources.next_job()
                if taken is not None:
                    self.work(*taken)
            self.sources.finish("worker stopping")
        finally:
            self.heartbeat.join()
            unfinished = self.sources.unfinished()
            for session in self.sessions:
                if session.conn is not None:  # an exception ended the loop
                    session.cut_off("worker stopping")
            if previous_alarm is not None:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous_alarm)
            self.flags.restore()
            recycled = not self.flags.count
            self.events.worker_stopped(
                reason or "an exception in the worker",
                self.recycler.jobs,
                recycled=recycled,
                unfinished=unfinished,
            )
        assert reason is not None
        return reason

    def _stop_reason(self) -> str | None:
        if self.flags.count:
            return self.flags.signal_name
        return self.recycler.reason() if self.recycler.limited else None

    # -- one job -----------------------------------------------------------------------------

    def work(self, session: Session, job: Job) -> None:
        """Run ``job`` (held on ``session``) and settle it."""
        try:
            more = not self.flags.count
            if not session.begin(job, self._wants_counters, prefetch=self.prefetching, more=more):
                return  # gone before it started: not counted
        except OSError as exc:
            session.lost(exc)
            return
        try:
            self._process(session, job)
        except greenstalk.Error as exc:
            # An error reply about this job (e.g. NOT_FOUND once its TTR ran out): the
            # connection is still in step, so log and carry on.
            session.ended(job, "lost", f"beanstalkd replied {type(exc).__name__}")
        except OSError as exc:  # ConnectionError, reset, no reply, ...
            session.lost(exc)
        finally:
            self.recycler.jobs += 1

    def _wants_counters(self, job: Job) -> bool:
        """Must ``job``'s counters be known before it starts (see the module docstring)?"""
        return self.guard is None or job.tube is None or self.events.wants_counters(job)

    def _process(self, session: Session, job: Job) -> None:
        if job.tube is None:  # several tubes watched: the counters were asked
            assert job.stats is not None
            job.tube = str(job.stats["tube"])
        # Counters asked for another reason (the tube, a metrics sample) must not decide
        # whether a job runs: only a record says that it started before.  With no state
        # directory (API use only) nothing does, so every job is checked.
        if job.stats is not None and (self.guard is None or self.guard.suspect(job)):
            died = self.policy.crashed_too_often(unfinished_of(job.stats))
            if died is not None:
                self._bury(session, job, died)
                if self.guard is not None:
                    self.guard.clear(job)
                return
        handler = self.handlers.get(job.tube)
        if handler is None:
            self._bury(session, job, f"no handler for tube {job.tube!r}")
            return
        try:
            data = _decode_json(job.body.decode("utf-8"))
        except UnicodeDecodeError:
            self._bury(session, job, "body is not valid UTF-8")
            return
        except ValueError as exc:
            self._bury(session, job, f"body is not valid JSON: {exc}")
            return
        except RecursionError:  # e.g. 100000 "[": a poison body, not a worker crash
            self._bury(session, job, "body is not valid JSON: nested too deeply")
            return
        job.info = JobInfo(job.ref, job.tube, job.attempt, partial(self._attempt, session, job))
        error = self._call(session, handler, data, job)
        if error is None:
            session.succeed(job)  # deleted in the same write as the next command
        else:
            self._fail(session, job, error)

    def _call(
        self, session: Session, handler: Handler, data: object, job: Job
    ) -> BaseException | None:
        assert job.info is not None
        for hook in self.events.starting:  # the run record: a worker dying from here leaves it
            hook(job)
        job.start()
        # Publishing needs no lock: the heartbeat re-checks ``running`` under the lock before
        # it touches.  Clearing it does (below): a touch may be mid-exchange.
        session.running = job
        self._timed_out = False
        error: BaseException | None = None
        result: object = None
        started = time.monotonic()
        try:
            try:
                if self.timeout is not None:
                    signal.setitimer(signal.ITIMER_REAL, self.timeout)
                result = handler(data, job.info)
            finally:
                if self.timeout is not None:
                    signal.setitimer(signal.ITIMER_REAL, 0)
        except BaseException as exc:
            # SystemExit and KeyboardInterrupt too: the worker's own signals only set flags
            # (beanfleet.work.shutdown), so these come from the handler, and a failed attempt
            # is what they are; let through, they would end the worker with the job unfinished.
            error = exc
        job.duration = time.monotonic() - started
        if error is None and self._timed_out and self.timeout is not None:
            error = JobTimeout(self.timeout)  # the handler caught and swallowed it
        if error is None and result is not None:
            error = returned_unrun(result)  # a coroutine or generator: the work was not done
        with session.lock:
            session.running = None
        return error

    def _on_alarm(self, _signum: int, _frame: FrameType | None) -> None:
        self._timed_out = True
        assert self.timeout is not None
        raise JobTimeout(self.timeout)

    def _attempt(self, session: Session, job: Job) -> int:
        """``job.attempt`` read by the running handler: asked now, under the lock the
        heartbeat takes for its touches."""
        with session.lock:
            session.connection()
            try:
                stats = session.counters(job)
            except BaseException:
                # Cut off mid-exchange (the --timeout alarm, a dead socket): a reply may be
                # left unread, so the connection is out of step; the loop reconnects.
                session.broken = True
                raise
        if stats is None:
            raise JobNotFound(f"job {job.ref} is gone (its TTR ran out)")
        attempt = job.attempt
        assert attempt is not None
        return attempt

    def _fail(self, session: Session, job: Job, error: BaseException) -> None:
        # The retry decision needs the attempt and the release the priority: a failure pays
        # the stats-job round trip a success skipped.
        session.connection()
        if session.counters(job) is None:
            session.ended(job, "lost", "stats-job replied NOT_FOUND: its TTR ran out")
            return
        attempt = job.attempt
        assert attempt is not None
        decision = self.policy.decide(attempt, error, describe_error(error))
        conn = session.settled()
        if decision.action == "release":
            result = schedule_retry(conn, job.id, job.priority, decision.delay)
        else:
            result = bury(conn, job.id, job.priority)
        # For a JobTimeout the traceback shows where the handler was when it was stopped.
        self._settle(
            session, job, result, decision.reason, "".join(traceback.format_exception(error))
        )

    def _bury(self, session: Session, job: Job, reason: str) -> None:
        """Bury a job that must not run (poison body, no handler, crash loop)."""
        session.connection()
        if session.counters(job) is None:  # its priority comes from there
            session.ended(job, "lost", "stats-job replied NOT_FOUND: its TTR ran out")
            return
        self._settle(session, job, bury(session.settled(), job.id, job.priority), reason)

    def _settle(
        self,
        session: Session,
        job: Job,
        result: RetryOutcome,
        reason: str,
        detail: str | None = None,
    ) -> None:
        if result.note is not None:
            self.events.event(
                "retry-fallback" if result.outcome == "released" else "outcome-refused",
                f"job {job.ref}: {result.note}",
                level="warning",
                job=job.ref,
            )
            reason = f"{result.note}; {reason}"
        job.detail = detail
        assert job.counters is KNOWN
        session.ended(job, result.outcome, reason, result.delay)
