"""The worker loop: reserve a job, run its tube's handler, then delete, release or bury it.

Threads: the handler runs in the main thread (so ``--timeout`` can interrupt it with
SIGALRM); a monitor thread touches long-running jobs so they outlive their TTR, releases
the running job on a second SIGTERM/SIGINT, and writes the queued log lines.  Both threads
share one connection: while a handler runs, every use of it holds ``_lock``; outside that
window only the main thread uses it and no reply is ever left unread.

Hot path (one round trip per job): a successful job's ``delete`` goes out in the same write
as the next ``reserve-with-timeout``, and ``stats-job`` is only asked when its answer is
needed: the tube when several are watched, the attempt when the handler reads it or the job
failed, the TTR when the job runs long enough to need touching.

Prefetch (opt-in): every write carries the finished job's ``delete`` and a
``reserve-with-timeout 0`` for the job after next, and the reply read is the one asked for a
job earlier, so beanstalkd answers while the handler runs: worker and server work at the
same time instead of taking turns.  While a handler runs the worker holds at most one job
it has not started.  It gives that job back when it stops (closing the connection returns
it to ready; no counter moves) or when the current job runs longer than ``HEARTBEAT_AFTER``
(``bury`` + ``kick-job``: the job keeps its id, priority, place in the queue and
``releases`` count, so its attempt number is unchanged).
Replies owed for such pipelined commands are read (``_settle``) before any other exchange.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Mapping
from types import FrameType
from typing import Any

import greenstalk

from beanfleet.address import check_tube, parse_server
from beanfleet.client import describe_os_error
from beanfleet.errors import ConfigError, JobTimeout
from beanfleet.handlers import Handler, JobInfo
from beanfleet.joblog import JobLog, JobOutcome
from beanfleet.protocol import Connection
from beanfleet.recycle import RecycleLimits, Recycler
from beanfleet.retry import RetryPolicy, RetryResult, schedule_retry, unwrap
from beanfleet.shutdown import ShutdownFlags

RESERVE_TIMEOUT = 5  # server-side wait per reserve; its TIMED_OUT reply proves the link alive
REPLY_GRACE = 10.0  # no reply this long after RESERVE_TIMEOUT: treat the connection as dead
WAIT_SLICE = 0.1  # how often a waiting reserve looks at the stop flags
MONITOR_INTERVAL = 0.05  # monitor tick: second signal, heartbeat, log flush
HEARTBEAT_AFTER = 0.5  # touch only jobs still running this long after their reservation
MIN_TOUCH_INTERVAL = 0.3  # touch every ttr/3, but not more often than this
DEADLINE_SOON_PAUSE = 0.1
RECONNECT_FIRST = 0.1
RECONNECT_CAP = 5.0
CONNECT_TIMEOUT = 5.0
ABORT_GRACE = 2.0  # second signal and no handler running: exit hard if still here by then

_RESERVE = b"reserve-with-timeout %d\r\n" % RESERVE_TIMEOUT
_RESERVE_NOW = b"reserve-with-timeout 0\r\n"  # prefetch: a job if one is ready, else TIMED_OUT
_decode_json = json.JSONDecoder().decode  # json.loads minus its per-call type checks


class _Reserved:
    """A job reserved on the current connection (once handled: awaiting its delete)."""

    __slots__ = (
        "body",
        "duration",
        "id",
        "info",
        "next_touch",
        "origin",
        "prior",
        "stats",
        "tube",
    )

    def __init__(self, job_id: int, body: bytes, tube: str | None) -> None:
        self.id = job_id
        self.body = body
        self.tube = tube
        self.stats: dict[str, int | str] | None = None  # stats-job, asked at most once
        self.info: JobInfo | None = None
        self.duration: float | None = None
        self.next_touch = time.monotonic() + HEARTBEAT_AFTER
        self.prior = 0  # attempts made before this copy was put (its retry envelope)
        self.origin = job_id  # the id the producer's job had (its retry envelope)

    @property
    def attempt(self) -> int | None:
        if self.info is not None and self.info.attempt_if_known is not None:
            return self.info.attempt_if_known
        return None if self.stats is None else self.attempt_of(self.stats)

    def attempt_of(self, stats: Mapping[str, int | str]) -> int:
        # The envelope's count survives re-puts; beanstalkd counts releases of this copy
        # itself (a second-signal release, a retry whose re-put was refused).  Both survive
        # worker restarts.
        return self.prior + int(stats["releases"]) + 1


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
    ) -> None:
        if not handlers:
            raise ConfigError("no tubes to watch: give at least one TUBE=MODULE:FUNCTION")
        self.server = server
        self.address = parse_server(server)
        self.handlers = dict(handlers)
        for tube in self.handlers:
            check_tube(tube)
        self.policy = policy or RetryPolicy()
        self.timeout = timeout
        self.recycler = Recycler(limits or RecycleLimits())
        self.log = log or JobLog()
        self.reconnect_cap = reconnect_cap
        self.prefetch = prefetch
        self.flags = ShutdownFlags()
        self.tubes = self.tubes_to_watch()
        # With one watched tube every job's tube is known without asking the server.
        self._single_tube = self.tubes[0] if len(self.tubes) == 1 else None

        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._conn_broken = False  # set by the monitor when a touch hits a dead socket
        self._healthy = False  # the current connection has answered a reserve
        self._backoff = RECONNECT_FIRST
        self._current: _Reserved | None = None  # reserved here, outcome not sent yet
        self._running: _Reserved | None = None  # its handler is executing right now
        self._pending_delete: _Reserved | None = None  # succeeded, delete not confirmed
        # Prefetch: replies owed on the connection, in order: a job whose delete was sent
        # (awaiting DELETED), or None for a prefetch reserve; and the jobs those got.
        self._owed: deque[_Reserved | None] = deque()
        self._prefetched: deque[_Reserved] = deque()
        self._unconfirmed: list[_Reserved] = []  # owed deletes cut off by a lost connection
        self._deadline_soon_logged = False
        self._timed_out = False
        self._alarm_deferred = False
        self._abort_deadline: float | None = None
        self._monitor_stop = threading.Event()

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
        self._monitor_stop = threading.Event()
        monitor = threading.Thread(target=self._monitor, name="beanfleet-monitor", daemon=True)
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
            self._monitor_stop.set()
            monitor.join(timeout=2)
            self._drop_connection()
            if previous_alarm is not None:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous_alarm)
            self.flags.restore()
            self.log.flush()
        self.log.event("stopped", f"worker exiting: {reason}", jobs=self.recycler.jobs)
        return reason

    def _loop(self) -> str:
        flags = self.flags
        recycler = self.recycler
        while True:
            if flags.count or recycler.limited:
                reason = flags.signal_name if flags.count else recycler.reason()
                if reason is not None:
                    self._finish_pending_delete()
                    return reason
            try:
                conn = self._conn
                if conn is None or self._conn_broken:
                    if not self._connect():
                        continue  # stop requested while connecting
                    conn = self._conn
                    assert conn is not None
                job = self._reserve(conn)
                if job is not None:
                    self._process(conn, job)
            except OSError as exc:  # ConnectionError, broken pipe, reset, no reply, ...
                self._connection_lost(exc)

    # -- connection --------------------------------------------------------------------------

    def _open(self) -> Connection:
        conn = Connection(self.address, connect_timeout=CONNECT_TIMEOUT)
        try:
            commands = [b"watch " + tube.encode() for tube in self.tubes]
            if greenstalk.DEFAULT_TUBE not in self.tubes:
                commands.append(b"ignore " + greenstalk.DEFAULT_TUBE.encode())
            conn.send(commands)
            for _ in commands:
                conn.expect(b"WATCHING")
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect(self, attempts: int | None = None) -> bool:
        """Connect and watch the tubes, retrying with capped, jittered backoff.

        Gives up (False) when a stop is requested, or after ``attempts`` tries.
        """
        tries = 0
        while attempts is None or tries < attempts:
            if attempts is None and self.flags.stopping:
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
            with self._lock:
                self._conn = conn
                self._conn_broken = False
            self._healthy = False
            self.log.event(
                "connected",
                f"connected to beanstalkd at {self.server}, watching {', '.join(self.tubes)}",
            )
            while self._unconfirmed:
                self._delete_after_reconnect(conn, self._unconfirmed[0])
                self._unconfirmed.pop(0)
            return True
        return False

    def _drop_connection(self) -> None:
        # beanstalkd puts every job reserved on a closed connection back to ready at once.
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _connection_lost(self, exc: OSError) -> None:
        self.log.event(
            "connection-lost",
            f"lost connection to beanstalkd at {self.server}: {describe_os_error(exc)}",
            level="error",
        )
        self._drop_connection()
        job, self._current = self._current, None
        if job is not None:
            self._log_job(
                job,
                "returned",
                "connection lost before its outcome was sent; beanstalkd puts it back to ready",
            )
        self._forget_prefetched("connection lost")
        cut_off = [entry for entry in self._owed if entry is not None]
        self._owed.clear()
        if self._pending_delete is not None:
            cut_off.append(self._pending_delete)
            self._pending_delete = None
        for done in cut_off:
            self.log.event(
                "delete-pending",
                f"job {done.id} succeeded but its delete was cut off; "
                "deleting it after reconnecting",
                level="warning",
                job=done.id,
            )
        self._unconfirmed.extend(cut_off)
        if not self._healthy:
            # Lost again before it ever answered a reserve: back off instead of spinning.
            self._pause(self._backoff * random.uniform(0.5, 1.0))
            self._backoff = min(self._backoff * 2, self.reconnect_cap)

    def _delete_after_reconnect(self, conn: Connection, done: _Reserved) -> None:
        # delete also works on a ready job.  NOT_FOUND: another worker reserved it (or our
        # first delete reached the server before the connection broke).
        conn.send([b"delete %d" % done.id])
        status, _ = conn.read_reply()
        if status == b"DELETED":
            self._log_job(done, "deleted", "deleted after reconnecting")
        else:
            self._log_job(
                done,
                "lost",
                f"delete after reconnecting replied {status.decode(errors='replace')}: "
                "another worker has it, or it was already deleted",
            )

    def _finish_pending_delete(self) -> None:
        """On the way out: make sure succeeded jobs are deleted (one reconnect try).

        A prefetched job stays reserved until the connection closes, which returns it."""
        if self._owed or self._prefetched:
            try:
                if self._conn is not None and not self._conn_broken:
                    self._settle(self._conn)
            except OSError as exc:
                self._connection_lost(exc)
            self._forget_prefetched("worker stopping")
        if self._pending_delete is not None:
            self._unconfirmed.append(self._pending_delete)
            self._pending_delete = None
        if not self._unconfirmed:
            return
        try:
            conn = self._conn
            if conn is not None and not self._conn_broken:
                while self._unconfirmed:
                    done = self._unconfirmed[0]
                    conn.send([b"delete %d" % done.id])
                    status, _ = conn.read_reply()
                    self._unconfirmed.pop(0)
                    self._log_delete(done, status)
                return
            self._drop_connection()
            if self._connect(attempts=1):
                return  # _connect deleted them
        except OSError:
            pass
        for done in self._unconfirmed:
            self._log_job(done, "returned", "succeeded, but not deleted: server unreachable")
        self._unconfirmed.clear()

    def _pause(self, seconds: float) -> bool:
        """Sleep in short slices; False as soon as a stop is requested."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if self.flags.stopping:
                return False
            time.sleep(min(left, WAIT_SLICE))
        return not self.flags.stopping

    # -- reserving ---------------------------------------------------------------------------

    def _reserve(self, conn: Connection) -> _Reserved | None:
        if self._owed or self._prefetched:
            job = self._take_prefetched(conn)
            if job is not None or self.flags.count:
                return job  # None with a stop requested: the loop's top hands the rest back
        done = self._pending_delete
        if done is None:
            conn.sock.sendall(_RESERVE)
        else:
            conn.sock.sendall(b"delete %d\r\n%s" % (done.id, _RESERVE))
            status, _ = conn.read_reply()
            self._pending_delete = None
            self._log_delete(done, status)

        if not conn.has_buffered() and not self._wait_readable(conn):
            self._drop_connection()  # abandons the reserve; a job it got goes back to ready
            return None

        status, values = conn.read_reply()
        if status == b"RESERVED":
            job = _Reserved(int(values[0]), conn.read_chunk(int(values[1])), self._single_tube)
            self._current = job
            if not self._healthy:
                self._healthy = True
                self._backoff = RECONNECT_FIRST
            self._deadline_soon_logged = False
            if self.flags.count:
                # The signal came while the reply was in flight: hand the job straight back.
                self._current = None
                self._drop_connection()
                self._log_job(job, "returned", "worker stopping; not started")
                return None
            if self.prefetch:
                conn.sock.sendall(_RESERVE_NOW)
                self._owed.append(None)
            return job
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

    # -- prefetch ----------------------------------------------------------------------------

    def _settle(self, conn: Connection, *, until_job: bool = False) -> None:
        """Read the replies owed on the connection, in order: confirm sent deletes, keep the
        jobs prefetch reserves got.  All of them, or (``until_job``) until a job is held.
        Callers hold the lock or know that no handler runs."""
        owed = self._owed
        while owed and not (until_job and self._prefetched):
            done = owed[0]
            status, values = conn.read_reply()
            if done is not None:
                owed.popleft()
                self._log_delete(done, status)
                continue
            if status == b"RESERVED":
                body = conn.read_chunk(int(values[1]))
                self._prefetched.append(_Reserved(int(values[0]), body, self._single_tube))
            elif status not in (b"TIMED_OUT", b"DEADLINE_SOON"):
                raise ConnectionError(
                    f"unexpected reply to reserve: {status.decode(errors='replace')}"
                )
            owed.popleft()

    def _take_prefetched(self, conn: Connection) -> _Reserved | None:
        """The next prefetched job, or None when prefetching found none (then nothing is
        owed any more and the caller reserves as usual).

        Writes first, reads after: the last job's delete and the next prefetch go out in
        one write, and the reply read now was asked for one job earlier, so beanstalkd had
        that job's whole run to answer it."""
        out = b""
        done, self._pending_delete = self._pending_delete, None
        if done is not None:
            out = b"delete %d\r\n" % done.id
            self._owed.append(done)
        # At most two jobs ahead (held or asked for): one of them runs next, so while a
        # handler runs the worker holds at most one job it has not started.
        ahead = len(self._prefetched) + self._owed.count(None)
        if not self.flags.count and ahead < 2:
            out += _RESERVE_NOW
            self._owed.append(None)
        if out:
            conn.sock.sendall(out)
        self._settle(conn, until_job=True)
        if not self._prefetched or self.flags.count:
            return None
        job = self._prefetched.popleft()
        self._current = job
        job.next_touch = time.monotonic() + HEARTBEAT_AFTER  # its time starts now
        return job

    def _forget_prefetched(self, why: str) -> None:
        """Log the held jobs as returned: closing the connection gives them back."""
        while self._prefetched:
            held = self._prefetched.popleft()
            self._log_job(held, "returned", f"prefetched, not started; {why}")

    def _hand_back(self, conn: Connection, job: _Reserved) -> None:
        """Return a prefetched job that would wait behind a long one (lock held).

        ``bury`` + ``kick-job`` instead of ``release``: a release would count as a failed
        attempt.  Kicked, the job is ready again with its id, priority and place."""
        try:
            pri = int(self._job_stats(job)["pri"])
        except greenstalk.Error as exc:  # NOT_FOUND: its TTR ran out, it is back already
            buried, kicked = type(exc).__name__.encode(), b"-"
        else:
            conn.send([b"bury %d %d" % (job.id, pri), b"kick-job %d" % job.id])
            buried, _ = conn.read_reply()
            kicked, _ = conn.read_reply()
        if buried == b"BURIED" and kicked == b"KICKED":
            self._log_job(job, "returned", "prefetched, not started; the current job runs long")
            return
        self.log.event(
            "handback-failed",
            f"prefetched job {job.id}: bury replied {buried.decode(errors='replace')}, "
            f"kick-job {kicked.decode(errors='replace')}",
            level="warning",
            job=job.id,
        )

    def _wait_readable(self, conn: Connection) -> bool:
        """Wait for the reserve's reply in short slices; False if the worker should stop."""
        sent = time.monotonic()
        while True:
            if self.flags.count or self.recycler.time_reason() is not None:
                return False
            readable, _, _ = select.select([conn], [], [], WAIT_SLICE)
            if readable:
                return True
            if time.monotonic() - sent > RESERVE_TIMEOUT + REPLY_GRACE:
                raise TimeoutError(f"no reply to reserve in {RESERVE_TIMEOUT + REPLY_GRACE:g}s")

    # -- processing --------------------------------------------------------------------------

    def _process(self, conn: Connection, job: _Reserved) -> None:
        try:
            if job.tube is None:  # several tubes watched: ask which one
                job.tube = str(self._job_stats(job)["tube"])
            handler = self.handlers.get(job.tube)
            if handler is None:
                self._bury(conn, job, f"no handler for tube {job.tube!r}")
                return
            try:
                data, envelope = unwrap(_decode_json(job.body.decode("utf-8")))
            except UnicodeDecodeError:
                self._bury(conn, job, "body is not valid UTF-8")
                return
            except ValueError as exc:
                self._bury(conn, job, f"body is not valid JSON: {exc}")
                return
            except RecursionError:  # e.g. 100000 "[": a poison body, not a worker crash
                self._bury(conn, job, "body is not valid JSON: nested too deeply")
                return
            if envelope is not None:
                job.prior, job.origin = envelope.attempts, envelope.origin
            info = job.info = JobInfo(
                job.id,
                job.tube,
                attempt=None if job.stats is None else job.attempt_of(job.stats),
                fetch_attempt=lambda: self._fetch_attempt(job),
            )
            error = self._call(handler, data, info, job)
            if error is None:
                self._current = None
                self._pending_delete = job  # deleted in the same write as the next reserve
            else:
                self._fail(conn, job, error, data)
        except greenstalk.Error as exc:
            # An error reply about this job (e.g. NOT_FOUND once its TTR ran out): the
            # connection is still in step, so log and carry on.
            self._current = None
            self._log_job(job, "lost", f"beanstalkd replied {type(exc).__name__}")
        finally:
            self.recycler.jobs += 1

    def _call(
        self, handler: Handler, data: object, info: JobInfo, job: _Reserved
    ) -> BaseException | None:
        # Publishing needs no lock: the monitor re-checks _running under the lock before it
        # touches.  Clearing it does (below): a touch may be mid-exchange on the connection.
        self._running = job
        self._timed_out = False
        error: BaseException | None = None
        started = time.monotonic()
        try:
            try:
                if self.timeout is not None:
                    signal.setitimer(signal.ITIMER_REAL, self.timeout)
                handler(data, info)
            finally:
                if self.timeout is not None:
                    signal.setitimer(signal.ITIMER_REAL, 0)
        except (Exception, JobTimeout) as exc:
            error = exc
        job.duration = time.monotonic() - started
        if error is None and self._timed_out and self.timeout is not None:
            error = JobTimeout(self.timeout)  # the handler caught and swallowed it
        with self._lock:
            self._running = None
        return error

    def _on_alarm(self, _signum: int, _frame: FrameType | None) -> None:
        self._timed_out = True
        if self._alarm_deferred:
            return  # mid protocol exchange; _fetch_attempt raises once it is done
        assert self.timeout is not None
        raise JobTimeout(self.timeout)

    def _job_stats(self, job: _Reserved) -> dict[str, int | str]:
        """stats-job of the reserved job, asked once (its pri, ttr and releases hold still
        while it is reserved here).  Settles owed replies first: every synchronous exchange
        (touch, bury, retry, release) starts here."""
        conn = self._conn
        if self._owed and conn is not None and not self._conn_broken:
            self._settle(conn)  # every exchange that follows reads its own reply
        if job.stats is None:
            if conn is None or self._conn_broken:
                raise ConnectionError("connection to beanstalkd lost")
            job.stats = conn.stats_job(job.id)
        return job.stats

    def _fetch_attempt(self, job: _Reserved) -> int:
        # The handler reads job.attempt (main thread) while the monitor may be touching:
        # take the lock, and keep SIGALRM from raising halfway through the exchange.
        with self._lock:
            self._alarm_deferred = True
            try:
                stats = self._job_stats(job)
            except OSError:
                self._conn_broken = True
                raise
            finally:
                self._alarm_deferred = False
        if self._timed_out and self.timeout is not None:
            raise JobTimeout(self.timeout)
        return job.attempt_of(stats)

    def _fail(self, conn: Connection, job: _Reserved, error: BaseException, data: Any) -> None:
        if self._conn_broken:
            raise ConnectionError("connection to beanstalkd lost while the handler ran")
        stats = self._job_stats(job)
        attempt = job.attempt_of(stats)
        decision = self.policy.decide(attempt, error, describe_error(error))
        if decision.action == "release":
            assert job.tube is not None
            retry = schedule_retry(
                conn, job.id, job.tube, stats, decision.delay, data, attempt, job.origin
            )
            self._current = None
            outcome, delay, reason = self._retry_outcome(job, retry, decision.reason)
        else:
            status = self._send_bury(conn, job.id, stats)
            self._current = None
            outcome, delay, reason = self._outcome_of(status, "bury", decision.reason)
        # For a JobTimeout the traceback shows where the handler was when it was stopped.
        detail = "".join(traceback.format_exception(error))
        self.log.job(
            JobOutcome(job.id, job.tube, attempt, job.duration, outcome, delay, reason, detail)
        )

    def _bury(self, conn: Connection, job: _Reserved, reason: str) -> None:
        """Bury a job that cannot be handled at all (poison body, no handler)."""
        stats = self._job_stats(job)
        status = self._send_bury(conn, job.id, stats)
        self._current = None
        outcome, delay, why = self._outcome_of(status, "bury", reason)
        self.log.job(JobOutcome(job.id, job.tube, job.attempt_of(stats), None, outcome, delay, why))

    @staticmethod
    def _send_bury(conn: Connection, job_id: int, stats: Mapping[str, int | str]) -> bytes:
        conn.send([b"bury %d %d" % (job_id, int(stats["pri"]))])
        status, _ = conn.read_reply()
        return status

    def _retry_outcome(
        self, job: _Reserved, retry: RetryResult, reason: str
    ) -> tuple[str, int | None, str]:
        if retry.new_id is not None:
            what = f"retried as job {retry.new_id} (origin {job.origin})"
            if retry.note is not None:
                what += f"; {retry.note}"
            if retry.status == b"BURIED":  # the server had to bury the copy (out of memory)
                return "buried", None, f"server out of memory; {what}; {reason}"
            return "released", retry.delay, f"{what}; {reason}"
        self.log.event(
            "retry-fallback",
            f"job {job.id}: {retry.note}; releasing it with delay 0 instead",
            level="warning",
            job=job.id,
        )
        outcome, delay, why = self._outcome_of(retry.status, "release", reason)
        if outcome == "released":
            why = f"{retry.note}; released with delay 0 instead; {reason}"
        return outcome, delay, why

    @staticmethod
    def _outcome_of(status: bytes, verb: str, reason: str) -> tuple[str, int | None, str]:
        """Outcome of our ``bury`` or (delay-0) ``release`` from beanstalkd's reply."""
        if status == b"RELEASED":
            return "released", 0, reason
        if status == b"BURIED":
            # Our bury, or a release the server had to turn into a bury (out of memory).
            return "buried", None, reason if verb == "bury" else f"server out of memory; {reason}"
        text = status.decode(errors="replace")
        if status in (b"OUT_OF_MEMORY", b"INTERNAL_ERROR"):
            # beanstalkd 1.12 has taken the job off its reserved list before the binlog
            # write failed: it is in no queue until the server restarts (drill 5).
            return (
                "lost",
                None,
                f"beanstalkd refused {verb} with {text}: binlog disk full? the job stays "
                f"reserved by nobody until beanstalkd restarts; {reason}",
            )
        return (
            "lost",
            None,
            f"beanstalkd replied {text}: not reserved by this worker any more (TTR ran out?); "
            f"{reason}",
        )

    # -- logging -----------------------------------------------------------------------------

    def _log_delete(self, done: _Reserved, status: bytes) -> None:
        info = done.info
        if status == b"DELETED" and info is not None and done.duration is not None:
            self.log.deleted(done.id, info.tube, info.attempt_if_known, done.duration)
        elif status == b"DELETED":
            self.log.job(JobOutcome(done.id, done.tube, done.attempt, done.duration, "deleted"))
        else:
            self._log_job(
                done,
                "lost",
                f"delete replied {status.decode(errors='replace')}: not reserved by this "
                "worker any more (TTR ran out?)",
            )

    def _log_job(self, job: _Reserved, outcome: str, reason: str) -> None:
        self.log.job(JobOutcome(job.id, job.tube, job.attempt, job.duration, outcome, None, reason))

    # -- monitor thread: second signal, heartbeat, log flush ---------------------------------

    def _monitor(self) -> None:
        signals_seen = 0
        while not self._monitor_stop.wait(MONITOR_INTERVAL):
            if self.flags.count != signals_seen:
                signals_seen = self.flags.count
                self._log_stopping(signals_seen)
            if self.flags.aborting:
                self._abort()
            self._heartbeat()
            self.log.flush()

    def _log_stopping(self, count: int) -> None:
        # From the monitor thread: the signal handler itself only counts.
        job = self._running
        if count == 1:
            doing = f"finishing job {job.id}, then exiting" if job else "exiting"
            self.log.event("stopping", f"{self.flags.signal_name}: no new jobs; {doing}")
        elif count == 2:
            doing = f"releasing job {job.id} and exiting now" if job else "exiting now"
            self.log.event("stopping", f"second {self.flags.signal_name}: {doing}")

    def _heartbeat(self) -> None:
        job = self._running
        if job is None or time.monotonic() < job.next_touch:
            return
        with self._lock:
            conn = self._conn
            if self._running is not job or conn is None or self._conn_broken:
                return
            try:
                if self._owed:
                    self._settle(conn)
                while self._prefetched:
                    self._hand_back(conn, self._prefetched.popleft())
                ttr = int(self._job_stats(job)["ttr"])
                conn.send([b"touch %d" % job.id])
                status, _ = conn.read_reply()
            except OSError as exc:
                self._conn_broken = True
                self.log.event(
                    "connection-lost",
                    f"lost connection to beanstalkd while job {job.id} runs: "
                    f"{describe_os_error(exc)}",
                    level="error",
                    job=job.id,
                )
                return
            except greenstalk.Error as exc:  # NOT_FOUND from stats-job: the job is gone
                status = type(exc).__name__.encode()
            if status == b"TOUCHED":
                job.next_touch = time.monotonic() + max(MIN_TOUCH_INTERVAL, ttr / 3)
                return
            job.next_touch = float("inf")
            self.log.event(
                "touch-failed",
                f"touch of job {job.id} replied {status.decode(errors='replace')}: "
                "it is not reserved by this worker any more",
                level="warning",
                job=job.id,
            )

    def _abort(self) -> None:
        """Second signal: give the running job back now (priority kept, no delay), exit 0."""
        with self._lock:
            job = self._running
            if job is not None:
                self._release_now(job)
                self.log.event("stopped", f"worker exiting: second {self.flags.signal_name}")
                os._exit(0)
        # No handler running: the main loop is already on its way out; make sure it gets out.
        now = time.monotonic()
        if self._abort_deadline is None:
            self._abort_deadline = now + ABORT_GRACE
        elif now > self._abort_deadline:
            self.log.event("stopped", "worker exiting: forced after second signal")
            os._exit(0)

    def _release_now(self, job: _Reserved) -> None:
        # Runs with the lock held while the handler is still busy in the main thread.
        reason = f"second {self.flags.signal_name}: handed back while running"
        conn = self._conn
        status = b""
        if conn is not None and not self._conn_broken:
            try:
                pri = int(self._job_stats(job)["pri"])
                conn.send([b"release %d %d 0" % (job.id, pri)])
                status, _ = conn.read_reply()
            except (OSError, greenstalk.Error):
                pass  # exiting closes the socket, which returns the job to ready all the same
        if status == b"RELEASED":
            self.log.job(JobOutcome(job.id, job.tube, job.attempt, None, "released", 0, reason))
        else:
            self._log_job(job, "returned", reason + " (by closing the connection)")
