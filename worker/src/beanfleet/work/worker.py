"""The worker loop: reserve a job, run its tube's handler, then delete, release or bury it.

Threads: the handler runs in the main thread (so ``--timeout`` can interrupt it with
SIGALRM); the monitor thread (:mod:`beanfleet.work.heartbeat`) touches long-running jobs, releases
the running job on a second stop signal and writes the queued log lines.  Both share one
connection: while a handler runs, every use of it holds ``lock``; outside that window only
the main thread uses it and no reply is left unread except the prefetch ones
(:mod:`beanfleet.work.prefetch`).

Per job: the finished job's ``delete`` goes out in the same write as the next reserve, and
that is the only round trip (:meth:`Worker._deleted` logs every delete).  A job that keeps
killing its workers must be buried before it runs again, but the reserve reply carries no
counters: a ``stats-job`` would cost a second round trip per job.  So the worker asks only
for a job named by another worker's record in the per-host state directory
(:mod:`beanfleet.work.crashguard`): a worker on this host started it and may have died running it.
Such a job is buried unstarted once ``max_retries + 1`` of its reservations ended with no
outcome (:func:`beanfleet.work.outcome.unfinished_of`); a release (another client's, a second
SIGTERM's) or a prefetch hand-back is an outcome, not a crash.  Any other job starts at once;
its attempt number is asked when something needs it (a failure, the handler reading
``job.attempt``, the heartbeat's TTR).  A worker watching several tubes still asks every
job's ``stats-job`` (the reserve reply does not say which tube the job came from), and with
metrics one a second is sampled; counters asked for those reasons never bury a job no
record names, so whether a job runs is the same in every configuration.  With prefetch the
asks go out a job earlier and cost no round trip (:mod:`beanfleet.work.prefetch`).

A handler that raises, ``SystemExit`` and ``KeyboardInterrupt`` included, has failed an
attempt (retried or buried); an exception of the worker's own that ends it with a job
started and unfinished leaves the run record, as a death would.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from types import FrameType
from typing import TYPE_CHECKING

import greenstalk

from beanfleet.bounds import MAX_SECONDS, check_number
from beanfleet.errors import ConfigError, JobNotFound, JobTimeout
from beanfleet.names import check_tube, parse_server
from beanfleet.wire.client import describe_os_error
from beanfleet.wire.connection import Connection
from beanfleet.work.crashguard import RunRecords
from beanfleet.work.handlers import Handler, JobInfo, check_handler, returned_unrun
from beanfleet.work.heartbeat import Monitor
from beanfleet.work.job import Reserved, parse_job_stats
from beanfleet.work.joblog import JobLog, JobOutcome
from beanfleet.work.outcome import (
    RetryOutcome,
    RetryPolicy,
    attempt_of,
    bury,
    schedule_retry,
    unfinished_of,
)
from beanfleet.work.prefetch import Prefetch
from beanfleet.work.recycle import RecycleLimits, Recycler
from beanfleet.work.shutdown import ShutdownFlags

if TYPE_CHECKING:
    from beanfleet.metrics.worker import WorkerMetrics

RESERVE_TIMEOUT = 5  # server-side wait per reserve; its TIMED_OUT reply proves the link alive
REPLY_GRACE = 10.0  # no reply this long after RESERVE_TIMEOUT: treat the connection as dead
WAIT_SLICE = 0.1  # how often a waiting reserve looks at the stop flags
DEADLINE_SOON_PAUSE = 0.1
RECONNECT_FIRST = 0.1
RECONNECT_CAP = 5.0
CONNECT_TIMEOUT = 5.0

_RESERVE = b"reserve-with-timeout %d\r\n" % RESERVE_TIMEOUT


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
    """Runs handlers for jobs from one or more tubes until stopped or recycled.

    ``run()`` returns why it stopped.  From code (benchmarks, tests) stop it with
    ``limits`` or :meth:`request_stop` (e.g. from a handler).
    """

    def __init__(
        self,
        server: str,
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
        if not handlers:
            raise ConfigError("no tubes to watch: give at least one TUBE=MODULE:FUNCTION")
        self.server = server
        self.address = parse_server(server)
        self.handlers = dict(handlers)
        for tube, handler in self.handlers.items():
            check_tube(tube)
            check_handler(tube, handler)
        self.policy = policy or RetryPolicy()
        if timeout is not None:
            check_number(timeout, "timeout", low=0, low_open=True, high=MAX_SECONDS)
        self.timeout = timeout
        self.recycler = Recycler(limits or RecycleLimits())
        self.log = log or JobLog()
        self.reconnect_cap = reconnect_cap
        self.prefetching = prefetch
        # Outcomes reach the metrics through ``log`` (a MeteredJobLog); here only the
        # sampled stats-job asks and the starts they make observable.
        self.metrics = metrics
        # Without a state directory every job's counters are asked before it starts.
        try:
            self.records = None if state_dir is None else RunRecords(state_dir, *self.address)
        except OSError as exc:
            raise ConfigError(f"cannot use state directory {state_dir}: {exc}") from None
        self._pruned = False
        self.flags = ShutdownFlags()
        self.tubes = self.tubes_to_watch()
        # With one watched tube every job's tube is known without asking the server.
        single_tube = self.tubes[0] if len(self.tubes) == 1 else None
        self._single_tube = single_tube

        # Shared with the monitor thread (under ``lock`` while a handler runs).
        self.lock = threading.Lock()
        self.conn: Connection | None = None
        self.conn_broken = False  # set by the monitor when a touch hits a dead socket
        self.running: Reserved | None = None  # its handler is executing right now
        self.prefetch = Prefetch(single_tube, self.log_returned, self._deleted, self._needs_stats)
        # Hooks for a process serving several servers (beanfleet.work.pool): how ids are shown,
        # whether prefetch asks for more jobs, and shorter waits on a silent server.
        self.make_id: Callable[[int], int] = int
        self.prefetch_more = True
        self.connect_timeout = CONNECT_TIMEOUT
        self.reply_limit = RESERVE_TIMEOUT + REPLY_GRACE

        self._healthy = False  # the current connection has answered a reserve
        self._backoff = RECONNECT_FIRST
        self._current: Reserved | None = None  # reserved here, outcome not sent yet
        self._pending_delete: Reserved | None = None  # succeeded, delete not confirmed
        self._unconfirmed: list[Reserved] = []  # deletes cut off by a lost connection
        self._deadline_soon_logged = False
        self._timed_out = False

    def tubes_to_watch(self) -> list[str]:
        """The watch list: the handlers' tubes (never ``default`` unless it has one)."""
        return list(self.handlers)

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
        monitor = Monitor(self)
        monitor.start()
        self.log.event(
            "started",
            f"worker started, tubes {', '.join(self.tubes)}",
            pid=os.getpid(),
            server=self.server,
        )
        try:
            reason = self._loop()
        finally:
            monitor.join()
            self._drop_connection()
            if previous_alarm is not None:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous_alarm)
            self.flags.restore()
            if self.records is not None:
                self.records.close(keep=self._current is not None)
            self.log.flush()
        self.log.event("stopped", f"worker exiting: {reason}", jobs=self.recycler.jobs)
        return reason

    def _stop_reason(self) -> str | None:
        if self.flags.count:
            return self.flags.signal_name
        return self.recycler.reason() if self.recycler.limited else None

    def _loop(self) -> str:
        while True:
            reason = self._stop_reason()
            if reason is not None:
                self._finish()
                return reason
            try:
                conn = self.conn
                if conn is None or self.conn_broken:
                    if not self._connect():
                        continue  # stop or recycling limit while connecting
                    conn = self.conn
                    assert conn is not None
                job = self._reserve(conn)
                if job is not None:
                    self._process(job)
            except OSError as exc:  # ConnectionError, broken pipe, reset, no reply, ...
                self._connection_lost(exc)

    # -- connection --------------------------------------------------------------------------

    def _open(self) -> Connection:
        conn = Connection(self.address, connect_timeout=self.connect_timeout)
        try:
            commands = [b"watch " + tube.encode() for tube in self.tubes]
            if greenstalk.DEFAULT_TUBE not in self.tubes:
                commands.append(b"ignore " + greenstalk.DEFAULT_TUBE.encode())
            # A frozen server (SIGSTOP, a paused container) still completes the TCP connect
            # from its listen backlog but never answers: bound the handshake like the connect,
            # or the process would hang here, and with several servers stop serving the others.
            conn.sock.settimeout(self.connect_timeout)
            conn.send(commands)
            for _ in commands:
                conn.expect(b"WATCHING")
            # From here every reply (touch, delete, stats-job, ...) is waited for at most
            # ``reply_limit`` (the reserve's own wait is bounded in _wait_readable): a
            # frozen server costs that wait, then its connection, never the process.
            conn.bound_waits(self.reply_limit)
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect(self, attempts: int | None = None) -> bool:
        """Connect and watch the tubes, retrying with capped, jittered backoff.

        Gives up (False) when a stop is requested or a recycling limit is reached (they
        apply while reconnecting too), or after ``attempts`` tries.
        """
        if self.conn is not None:  # the monitor found it dead while a handler ran
            self._cut_off()
        tries = 0
        while attempts is None or tries < attempts:
            if attempts is None and self._stop_reason() is not None:
                return False
            tries += 1
            try:
                conn = self._open()
            except (OSError, greenstalk.Error) as exc:
                what = describe_os_error(exc) if isinstance(exc, OSError) else repr(exc)
                delay = self._backoff * random.uniform(0.5, 1.0)
                self._backoff = min(self._backoff * 2, self.reconnect_cap)
                last = attempts is not None and tries >= attempts
                self.log.event(
                    "connect-failed",
                    f"cannot connect to beanstalkd at {self.server}: {what}"
                    + ("" if last else f"; retrying in {delay:.1f}s"),
                    level="error",
                    attempt=tries,
                )
                if not last:
                    self._pause(delay)
                continue
            with self.lock:
                self.conn = conn
                self.conn_broken = False
            self._healthy = False
            self.log.event(
                "connected",
                f"connected to beanstalkd at {self.server}, watching {', '.join(self.tubes)}",
            )
            while self._unconfirmed:
                self._pending_delete = self._unconfirmed[0]
                self._send_after_delete(conn, b"", after_reconnect=True)
                self._unconfirmed.pop(0)
            if not self._pruned:
                self._pruned = True
                self._prune_records(conn)
            return True
        return False

    def _prune_records(self, conn: Connection) -> None:
        """Once per worker: drop records older than a day, and those whose job beanstalkd no
        longer has (one pipelined stats-job each), so the directory stays small."""
        if self.records is None:
            return
        named = self.records.prune()
        if not named:
            return
        conn.sock.sendall(b"".join(b"stats-job %d\r\n" % job_id for job_id in named))
        for job_id, paths in named.items():
            status, values = conn.read_reply()
            if status == b"OK":
                conn.read_chunk(int(values[0]))
            elif status == b"NOT_FOUND":
                self.records.clear(job_id)
                for path in paths:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()

    def _needs_stats(self, job: Reserved) -> bool:
        """Must ``job``'s counters be known before it starts?  Only if its tube is unknown
        or another worker's record on this host names it (that worker may have died in it),
        or, with metrics on, for at most one job a second (their wait sample)."""
        records = self.records
        return (
            records is None
            or job.tube is None
            or records.suspect(job.id)
            or (self.metrics is not None and self.metrics.sample())
        )

    def fetch_stats(self, conn: Connection, job: Reserved) -> dict[str, int | str] | None:
        """``job``'s stats-job now (one round trip unless known); None: the job is gone.
        Callers hold ``lock`` while a handler runs, as for any exchange."""
        if not job.stats_known:
            self.prefetch.settle(conn, until=job if job.stats_asked else None)
        if not job.stats_known:
            job.stats_asked = True
            conn.send([b"stats-job %d" % job.id])
            status, values = conn.read_reply()
            if status == b"OK":
                job.stats = parse_job_stats(conn.read_chunk(int(values[0])))
            job.stats_known = True
        return job.stats

    def _attempt_for_handler(self, job: Reserved) -> int:
        """``job.attempt`` read by the running handler: asked now, under the lock the
        monitor takes for its touches."""
        with self.lock:
            conn = self.conn
            if conn is None or self.conn_broken:
                raise ConnectionError("connection to beanstalkd lost while the handler ran")
            try:
                stats = self.fetch_stats(conn, job)
            except BaseException:
                # Cut off mid-exchange (the --timeout alarm, a dead socket): a reply may be
                # left unread, so the connection is out of step; the main loop reconnects.
                self.conn_broken = True
                raise
        if stats is None:
            raise JobNotFound(f"job {job.id} is gone (its TTR ran out)")
        return attempt_of(stats)

    def _drop_connection(self) -> None:
        # beanstalkd puts every job reserved on a closed connection back to ready at once.
        with self.lock:
            conn, self.conn = self.conn, None
        if conn is not None:
            self._write_deletes(conn)
            conn.close()

    def _write_deletes(self, conn: Connection) -> None:
        """Before closing ``conn``, write the deletes of succeeded jobs not written yet,
        without waiting (the link may be dead).  A frozen server's kernel holds the bytes
        and the server reads them before the close when it resumes, so the job is deleted;
        sent after a reconnect instead, the delete would find the job reserved by the old
        connection (NOT_FOUND) or back in ready, where another worker may take it."""
        unsent = [
            job
            for job in (self._pending_delete, *self._unconfirmed)
            if job is not None and not job.delete_sent
        ]
        if not unsent:
            return
        data = b"".join(b"delete %d\r\n" % job.id for job in unsent)
        try:
            conn.sock.settimeout(0)
            if conn.sock.send(data) == len(data):
                for job in unsent:
                    job.delete_sent = True
        except OSError:
            pass  # dead: the deletes after reconnecting are all there is

    def _connection_lost(self, exc: OSError, *, pause: bool = True) -> None:
        self.log.event(
            "connection-lost",
            f"lost connection to beanstalkd at {self.server}: {describe_os_error(exc)}",
            level="error",
        )
        self._cut_off()
        if pause and not self._healthy:
            # Lost again before it ever answered a reserve: back off instead of spinning.
            self._pause(self._backoff * random.uniform(0.5, 1.0))
            self._backoff = min(self._backoff * 2, self.reconnect_cap)

    def _cut_off(self) -> None:
        """Close the connection: the job whose outcome was not sent goes back to ready, and
        the succeeded jobs whose delete is unconfirmed are deleted again after reconnecting."""
        self._drop_connection()
        job, self._current = self._current, None
        if job is not None:
            self.log_job(
                job,
                "returned",
                "connection lost before its outcome was sent; beanstalkd puts it back to ready",
            )
        cut_off = self._forget_prefetch("connection lost")
        done, self._pending_delete = self._pending_delete, None
        if done is not None:
            cut_off.append(done)
        for done in cut_off:
            self.log.event(
                "delete-pending",
                f"job {done.id} succeeded but its delete was cut off; "
                "deleting it after reconnecting",
                level="warning",
                job=done.id,
            )
        self._unconfirmed.extend(cut_off)

    def _forget_prefetch(self, why: str) -> list[Reserved]:
        """The connection is going: the succeeded jobs whose pipelined delete is unanswered
        (written: prefetch owes only the replies of commands it wrote)."""
        cut_off = self.prefetch.forget(why)
        for job in cut_off:
            job.delete_sent = True
        return cut_off

    def _send_after_delete(
        self, conn: Connection, commands: bytes, *, after_reconnect: bool = False
    ) -> None:
        """Send ``commands``, preceded in the same write by the ``delete`` of the job that
        succeeded last (if any); read that delete's reply and log the job.

        The one place a succeeded job is deleted: on the hot path, on the way out and after
        a reconnect.  Until its reply is read the job stays ``_pending_delete``, so a
        connection lost meanwhile deletes it after reconnecting."""
        done = self._pending_delete
        if done is None:
            if commands:
                conn.sock.sendall(commands)
            return
        conn.sock.sendall(b"delete %d\r\n%s" % (done.id, commands))
        done.delete_sent = True
        status, _ = conn.read_reply()
        self._pending_delete = None
        self._deleted(done, status, after_reconnect=after_reconnect)

    def _deleted(self, done: Reserved, status: bytes, *, after_reconnect: bool = False) -> None:
        """Log a succeeded job once beanstalkd answered its ``delete`` (sent here or, with
        prefetch, pipelined and read by :meth:`Prefetch.settle`)."""
        info = done.info
        if status == b"DELETED" and after_reconnect:
            self.log_job(done, "deleted", "deleted after reconnecting")
        elif status == b"DELETED" and info is not None and done.duration is not None:
            self.log.deleted(done.id, info.tube, info.known_attempt, done.duration)
        elif status == b"DELETED":
            self.log_job(done, "deleted", "deleted on the way out")
        elif after_reconnect:
            # delete also works on a ready job.  NOT_FOUND: another worker reserved it (or
            # the first delete reached the server before the connection broke).
            self.log_job(
                done,
                "lost",
                f"delete after reconnecting replied {status.decode(errors='replace')}: "
                "another worker has it, or it was already deleted",
            )
        else:
            self.log_job(
                done,
                "lost",
                f"delete replied {status.decode(errors='replace')}: not reserved by this "
                "worker any more (TTR ran out?)",
            )

    def _finish(self) -> None:
        """On the way out: hand held jobs back, make sure succeeded jobs are deleted (one
        reconnect try)."""
        conn = self.conn
        try:
            if conn is not None and not self.conn_broken:
                if self.prefetch.busy:
                    self.prefetch.hand_back(conn, "worker stopping")
                self._send_after_delete(conn, b"")
        except (OSError, greenstalk.Error) as exc:
            self._connection_lost(exc if isinstance(exc, OSError) else ConnectionError(exc))
        self._unconfirmed.extend(self._forget_prefetch("worker stopping"))
        if self._pending_delete is not None:
            self._unconfirmed.append(self._pending_delete)
            self._pending_delete = None
        if not self._unconfirmed:
            return
        self._drop_connection()
        try:
            if self._connect(attempts=1):
                return  # _connect deleted them
        except OSError:
            pass
        for done in self._unconfirmed:
            if done.delete_sent:
                # Written before the connection dropped: a frozen server applies it when it
                # resumes; a server that lost the connection first did not get it.
                why = "succeeded; its delete was sent but not confirmed: server unreachable"
            else:
                why = "succeeded, but not deleted: server unreachable"
            self.log_job(done, "returned", why)
        self._unconfirmed.clear()

    def _pause(self, seconds: float) -> bool:
        """Sleep in short slices; False as soon as a stop is requested."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if self._stop_reason() is not None:
                return False
            time.sleep(min(left, WAIT_SLICE))
        return True

    # -- reserving ---------------------------------------------------------------------------

    def _reserve(self, conn: Connection, command: bytes = _RESERVE) -> Reserved | None:
        if self.prefetch.busy:
            if self.flags.count:
                return None  # the loop's top hands the held jobs back
            job = self.prefetch.next_held(conn)
            if job is not None:
                return self._started_with_stats(conn, job)
        self._send_after_delete(conn, command)
        if not conn.has_buffered() and not self._wait_readable(conn):
            self._drop_connection()  # abandons the reserve; a job it got goes back to ready
            return None

        status, values = conn.read_reply()
        if status == b"RESERVED":
            job_id = self.make_id(int(values[0]))
            job = Reserved(job_id, conn.read_chunk(int(values[1])), self._single_tube)
            self._current = job
            if not self._healthy:
                self._healthy = True
                self._backoff = RECONNECT_FIRST
            self._deadline_soon_logged = False
            if self.flags.count:
                # The signal came while the reply was in flight: hand the job straight back.
                self._current = None
                self._drop_connection()
                self.log_job(job, "returned", "worker stopping; not started")
                return None
            return self._started_with_stats(conn, job)
        if status == b"TIMED_OUT":
            self._healthy = True
            self._backoff = RECONNECT_FIRST
            return None
        if status == b"DEADLINE_SOON":
            # A job reserved on this connection is about to time out (the worker holds none
            # while reserving, so this is unexpected but harmless): retry until it has.
            if not self._deadline_soon_logged:
                self._deadline_soon_logged = True
                self.log.event(
                    "deadline-soon",
                    "reserve answered DEADLINE_SOON: a job reserved on this connection is "
                    "about to time out; retrying the reserve",
                    level="warning",
                )
            self._pause(DEADLINE_SOON_PAUSE)
            return None
        raise ConnectionError(f"unexpected reply to reserve: {status.decode(errors='replace')}")

    def _started_with_stats(self, conn: Connection, job: Reserved) -> Reserved | None:
        """The job about to start, with its ``stats-job`` if it needs one
        (:meth:`_needs_stats`): asked now (one round trip), or with prefetch a job earlier
        (none)."""
        self._current = job
        if self.prefetching:
            done, self._pending_delete = self._pending_delete, None
            self.prefetch.start(conn, job, done, ask=self.prefetch_more and not self.flags.count)
        elif self._needs_stats(job):
            self._send_after_delete(conn, b"stats-job %d\r\n" % job.id)
            job.stats_asked = True
            status, values = conn.read_reply()
            if status == b"OK":
                job.stats = parse_job_stats(conn.read_chunk(int(values[0])))
            job.stats_known = True
        if job.stats_asked and job.stats is None:  # NOT_FOUND: its TTR ran out already
            self._current = None
            self.log_job(job, "lost", "stats-job replied NOT_FOUND: its TTR ran out")
            return None
        return job

    def _wait_readable(self, conn: Connection) -> bool:
        """Wait for the reserve's reply in short slices; False if the worker should stop."""
        sent = time.monotonic()
        while True:
            if self.flags.count or self.recycler.time_reason() is not None:
                return False
            readable, _, _ = select.select([conn], [], [], WAIT_SLICE)
            if readable:
                return True
            if time.monotonic() - sent > self.reply_limit:
                raise TimeoutError(f"no reply to reserve in {self.reply_limit:g}s")

    # -- processing --------------------------------------------------------------------------

    def _process(self, job: Reserved) -> None:
        try:
            attempt = job.attempt  # None: no record, counters not asked (see _needs_stats)
            if job.tube is None:  # several tubes watched: the counters were asked
                assert job.stats is not None
                job.tube = str(job.stats["tube"])
            # Counters asked for another reason (the tube, a metrics sample) must not
            # decide whether a job runs: only a record says that it started before.  With
            # no state directory (API use only) nothing does, so every job is checked.
            if job.stats is not None and (self.records is None or self.records.suspect(job.id)):
                died = self.policy.crashed_too_often(unfinished_of(job.stats))
                if died is not None:
                    self._bury(job, died)
                    if self.records is not None:
                        self.records.clear(job.id)
                    return
            handler = self.handlers.get(job.tube)
            if handler is None:
                self._bury(job, f"no handler for tube {job.tube!r}")
                return
            try:
                data = _decode_json(job.body.decode("utf-8"))
            except UnicodeDecodeError:
                self._bury(job, "body is not valid UTF-8")
                return
            except ValueError as exc:
                self._bury(job, f"body is not valid JSON: {exc}")
                return
            except RecursionError:  # e.g. 100000 "[": a poison body, not a worker crash
                self._bury(job, "body is not valid JSON: nested too deeply")
                return
            job.info = JobInfo(job.id, job.tube, attempt, lambda: self._attempt_for_handler(job))
            error = self._call(handler, data, job)
            if error is None:
                self._current = None
                self._pending_delete = job  # deleted in the same write as the next reserve
            else:
                self._fail(job, error)
        except greenstalk.Error as exc:
            # An error reply about this job (e.g. NOT_FOUND once its TTR ran out): the
            # connection is still in step, so log and carry on.
            self._current = None
            self.log_job(job, "lost", f"beanstalkd replied {type(exc).__name__}")
        finally:
            self.recycler.jobs += 1

    def _call(self, handler: Handler, data: object, job: Reserved) -> BaseException | None:
        assert job.info is not None
        # Publishing needs no lock: the monitor re-checks ``running`` under the lock before
        # it touches.  Clearing it does (below): a touch may be mid-exchange on the connection.
        records = self.records
        if records is not None:
            try:
                records.mark(job.id)  # a worker that dies from here on leaves it behind
            except OSError as exc:
                # The job runs all the same: only a crash loop would go unnoticed on this
                # host (the counters still count its starts once a record is found).
                self.log.event(
                    "record-failed",
                    f"cannot write the running record of job {job.id} in "
                    f"{records.directory}: {describe_os_error(exc)}",
                    level="warning",
                    job=job.id,
                )
        job.started()
        if self.metrics is not None and job.stats is not None:
            self.metrics.started(job.tube or "", job.stats)
        self.running = job
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
            # (beanfleet.work.shutdown), so these come from the handler, and a failed attempt is
            # what they are; let through, they would end the worker with the job unfinished.
            error = exc
        job.duration = time.monotonic() - started
        if error is None and self._timed_out and self.timeout is not None:
            error = JobTimeout(self.timeout)  # the handler caught and swallowed it
        if error is None and result is not None:
            error = returned_unrun(result)  # a coroutine or generator: the work was not done
        with self.lock:
            self.running = None
        return error

    def _on_alarm(self, _signum: int, _frame: FrameType | None) -> None:
        self._timed_out = True
        assert self.timeout is not None
        raise JobTimeout(self.timeout)

    def _settled(self) -> Connection:
        """The connection, with the prefetch replies read: every exchange after a handler
        ran starts here."""
        conn = self.conn
        if conn is None or self.conn_broken:
            raise ConnectionError("connection to beanstalkd lost while the handler ran")
        self.prefetch.settle(conn)
        return conn

    def _fail(self, job: Reserved, error: BaseException) -> None:
        conn = self._settled()
        # The retry decision needs the attempt and the release the priority: a failure pays
        # the stats-job round trip a success skipped.
        if self.fetch_stats(conn, job) is None:
            self._current = None
            self.log_job(job, "lost", "stats-job replied NOT_FOUND: its TTR ran out")
            return
        attempt = job.attempt
        assert attempt is not None
        decision = self.policy.decide(attempt, error, describe_error(error))
        if decision.action == "release":
            result = schedule_retry(conn, job.id, job.priority, decision.delay)
        else:
            result = bury(conn, job.id, job.priority)
        self._current = None
        # For a JobTimeout the traceback shows where the handler was when it was stopped.
        detail = "".join(traceback.format_exception(error))
        self._log_outcome(job, result, decision.reason, detail)

    def _bury(self, job: Reserved, reason: str) -> None:
        """Bury a job that must not run (poison body, no handler, crash loop)."""
        conn = self._settled()
        if self.fetch_stats(conn, job) is None:  # its priority comes from there
            self._current = None
            self.log_job(job, "lost", "stats-job replied NOT_FOUND: its TTR ran out")
            return
        result = bury(conn, job.id, job.priority)
        self._current = None
        self._log_outcome(job, result, reason)

    def _log_outcome(
        self, job: Reserved, result: RetryOutcome, reason: str, detail: str | None = None
    ) -> None:
        if result.note is not None:
            self.log.event(
                "retry-fallback" if result.outcome == "released" else "outcome-refused",
                f"job {job.id}: {result.note}",
                level="warning",
                job=job.id,
            )
            reason = f"{result.note}; {reason}"
        self.log.job(
            JobOutcome(
                job.id,
                job.tube,
                job.attempt,
                job.duration,
                result.outcome,
                result.delay,
                reason,
                detail,
            )
        )

    # -- logging -----------------------------------------------------------------------------

    def log_job(self, job: Reserved, outcome: str, reason: str) -> None:
        self.log.job(JobOutcome(job.id, job.tube, job.attempt, job.duration, outcome, None, reason))

    def log_returned(self, job: Reserved, reason: str) -> None:
        self.log_job(job, "returned", reason)
