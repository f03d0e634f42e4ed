"""Worker-side Prometheus metrics, written in prometheus-client's multiprocess file format.

Every worker process of a host writes its own files into one metrics directory
(``--metrics-dir`` / ``$BEANFLEET_METRICS_DIR``); ``beanfleet metrics-endpoint`` serves their
sum (:mod:`beanfleet.metrics.endpoint`).  Off unless a directory is given: then no object of
this module exists and the worker pays nothing.

:class:`WorkerMetrics` observes the worker through :mod:`beanfleet.work.events` (``work/``
never imports this package; ``beanfleet work`` wires it).  Cost on the hot path: recording
a finished job appends one tuple to a deque (its ``job_finished`` hook); the heartbeat
thread's tick, every few tens of milliseconds, folds the queued tuples into per-process totals
and writes the changed ones into the memory-mapped files.  So a job costs an append, and
each flush a handful of writes whatever the job rate.  Labels are the pool, the tube and the
outcome: never a job id.

Which jobs the wait and attempt histograms see: a started job whose ``stats-job`` the worker
had before it started (see :meth:`WorkerMetrics.sample`).  On its fast path (one watched tube,
a state directory) the worker skips that round trip, so it asks it for at most one job per
:data:`WAIT_SAMPLE_INTERVAL` to keep a sample: every job of a quiet pool, a negligible
share of a busy one's (one round trip a second, whatever the job rate; with ``--prefetch``
none: the sampled job is one held ahead, its ``stats-job`` rides an earlier write).

Metrics must never hurt jobs: a write that fails (directory removed, file system full) is
logged once (a ``metrics-off`` event) and switches this process's metrics off
(:meth:`WorkerMetrics.switch_off`); the monitor thread that flushes goes on touching jobs
and writing the log.  Space is allocated before the memory-mapped files are written
(:class:`~beanfleet.metrics.valuefiles.ValuesFile`), so a full disk is an error, not a SIGBUS.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from beanfleet.metrics import valuefiles
from beanfleet.wire.client import describe_os_error
from beanfleet.work.events import Observer, Observers
from beanfleet.work.job import Job
from beanfleet.work.outcome import attempt_of

METRICS_DIR_ENV = "BEANFLEET_METRICS_DIR"
POOL_ENV = "BEANFLEET_POOL"
WAIT_SAMPLE_INTERVAL = 1.0  # seconds
INF = float("inf")

# The job log's outcome -> the metric's (see :meth:`WorkerMetrics.flush` for the two
# exceptions).  A job handed back without being started is not a finished job.
OUTCOMES = {"deleted": "deleted", "released": "retried", "buried": "buried", "lost": "lost"}


@dataclass(frozen=True)
class Histogram:
    name: str
    help: str
    bounds: tuple[float, ...]  # upper bounds, +Inf last


JOBS = ("beanfleet_worker_jobs", "Jobs finished, by outcome (deleted, retried, buried, lost)")
RECYCLES = ("beanfleet_worker_recycles", "Worker processes that exited at a recycling limit")
PROCESSES = ("beanfleet_worker_processes", "Worker processes alive")
DURATION = Histogram(
    "beanfleet_worker_job_duration_seconds",
    "Run time of job handlers",
    (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600, INF),
)
ATTEMPTS = Histogram(
    "beanfleet_worker_job_attempts",
    "Attempt number of started jobs (sampled: jobs whose stats-job was asked before start)",
    (1, 2, 3, 4, 5, 6, 8, 10, 15, 20, INF),
)
WAIT = Histogram(
    "beanfleet_worker_job_wait_seconds",
    "Time from put to first start, whole seconds rounded down (sampled like the attempts)",
    (0, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400, INF),
)


class WorkerMetrics(Observer):
    """One worker process's metrics: queued on the hot path, written by :meth:`flush`.

    ``sample_interval``: at most one job per this many seconds has its stats-job asked for
    the wait and attempt histograms (:meth:`sample`)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        pool: str,
        *,
        sample_interval: float = WAIT_SAMPLE_INTERVAL,
    ) -> None:
        self.sample_interval = sample_interval
        self._events: Observers | None = None
        self.directory = os.fspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.pool = pool
        self.pid = os.getpid()
        # (tube, log outcome, handler duration) and (tube, attempt, age): appended by the
        # main thread (deque appends are atomic), folded in by whoever flushes.
        self.finished: deque[tuple[str | None, str, float | None]] = deque()
        self.starts: deque[tuple[str, int, int]] = deque()
        self._next_sample = 0.0  # time.monotonic() from which the next job is sampled
        self._lock = threading.Lock()
        self._files: dict[str, valuefiles.ValuesFile] = {}
        # This process's totals: jobs by (tube, outcome), histograms by (histogram, tube)
        # as bucket counts (non-cumulative) followed by the sum.
        self._jobs: dict[tuple[str, str], float] = {}
        self._hists: dict[tuple[Histogram, str], list[float]] = {}
        self._durations: dict[str, list[float]] = {}  # by tube: the same lists as in _hists
        self._recycles = 0.0
        self._keys: dict[tuple[str, str, tuple[str, ...]], str] = {}
        self._closed = False
        self._write("gauge_livesum", self._key(PROCESSES[0], "", ("pool",), (pool,)), 1.0)

    # -- the hot path ------------------------------------------------------------------

    def sample(self) -> bool:
        """True at most once per ``sample_interval``: ask this job's stats-job before it
        starts, so its wait and attempt are observed."""
        now = time.monotonic()
        if now < self._next_sample:
            return False
        self._next_sample = now + self.sample_interval
        return True

    def started(self, tube: str, stats: Mapping[str, int | str]) -> None:
        """A job starts whose stats-job the worker has (its attempt and age are known)."""
        self.starts.append((tube, attempt_of(stats), int(stats.get("age", -1))))

    # -- as an observer of the worker ---------------------------------------------------

    def attach(self, events: Observers) -> None:
        self._events = events

    def wants_counters(self, job: Job) -> bool:
        return self.sample()

    def job_started(self, job: Job) -> None:
        if job.stats is not None:
            self.starts.append(
                (job.tube or "", attempt_of(job.stats), int(job.stats.get("age", -1)))
            )

    def job_finished(self, job: Job) -> None:
        self.finished.append((job.tube, job.outcome or "lost", job.duration))

    def tick(self) -> None:
        try:
            self.flush()
        except Exception as exc:  # anything: it must not stop the heartbeat thread
            self._failed(exc)

    def worker_stopped(self, reason: str, jobs: int, *, recycled: bool, unfinished: bool) -> None:
        """The process exits: the last flush (a failure logged as any other), then
        :meth:`close`."""
        try:
            self.flush(recycled=recycled)
        except Exception as exc:
            self._failed(exc)
        with contextlib.suppress(Exception):  # only a race with a failing write gets here
            self.close()

    def _failed(self, error: Exception) -> None:
        if self.switch_off() and self._events is not None:  # once, whichever thread first
            self._events.event("metrics-off", off_message(self.directory, error), level="error")

    # -- writing -----------------------------------------------------------------------

    def flush(self, *, recycled: bool = False) -> None:
        """Fold in what was queued, then write the totals of the label sets that changed.

        Folding is per job (a dict and a bucket increment); writing is per label set."""
        with self._lock:
            if self._closed:
                return
            jobs = self._jobs
            changed_hists: set[tuple[Histogram, str]] = set()
            finished = self.finished
            n = len(finished)
            # The loop runs once per job: locals only, the deleted path first.
            durations = self._durations
            bounds = DURATION.bounds
            bucket_of = bisect.bisect_left
            for _ in range(n):
                tube, outcome, duration = finished.popleft()
                name = outcome if outcome == "deleted" else _metric_outcome(outcome, duration)
                if name is None:
                    continue
                counted = (tube or "", name)
                jobs[counted] = jobs.get(counted, 0) + 1
                if duration is not None:
                    counts = durations.get(counted[0])
                    if counts is None:
                        counts = self._histogram(DURATION, counted[0])
                        durations[counted[0]] = counts
                    counts[bucket_of(bounds, duration)] += 1
                    counts[-1] += duration
            if n:
                changed_hists.update((DURATION, tube) for tube in durations)
            starts = self.starts
            for _ in range(len(starts)):
                tube, attempt, age = starts.popleft()
                changed_hists.add(self._observe(ATTEMPTS, tube, attempt))
                if attempt == 1 and age >= 0:
                    changed_hists.add(self._observe(WAIT, tube, age))
            pool = self.pool
            for (tube, name), total in jobs.items() if n else ():
                key = self._key(JOBS[0], "_total", ("pool", "tube", "outcome"), (pool, tube, name))
                self._write("counter", key, total)
            for histogram, tube in changed_hists:
                counts = self._hists[histogram, tube]
                for bound, count in zip(histogram.bounds, counts, strict=False):
                    le = _LE[bound]
                    key = self._key(histogram.name, "_bucket", _HIST_LE, (pool, tube, le))
                    self._write("histogram", key, count)
                key = self._key(histogram.name, "_sum", _HIST, (pool, tube))
                self._write("histogram", key, counts[-1])
            if recycled:
                self._recycles += 1
                key = self._key(RECYCLES[0], "_total", ("pool",), (pool,))
                self._write("counter", key, self._recycles)

    def close(self, *, recycled: bool = False) -> None:
        """The process exits: last flush, then its processes gauge goes (the counters stay,
        summed with the live processes' by the endpoint).  A failing flush raises after
        that is done."""
        try:
            self.flush(recycled=recycled)
        finally:
            self._shut()
            with contextlib.suppress(OSError):  # the directory may be gone
                valuefiles.process_dead(self.pid, self.directory)

    def switch_off(self) -> bool:
        """After a failed write: drop what is queued, queue nothing more (a deque of
        maxlen 0 drops appends), sample no job, write nothing.  False if already off."""
        with self._lock:
            if self._closed:
                return False
            self.finished = deque(maxlen=0)
            self.starts = deque(maxlen=0)
            self._next_sample = INF
        self._shut()
        return True

    def _shut(self) -> None:
        with self._lock:
            self._closed = True
            for mapped in self._files.values():
                with contextlib.suppress(Exception):  # a failed file may be half made
                    mapped.close()
            self._files.clear()

    def _observe(self, histogram: Histogram, tube: str, value: float) -> tuple[Histogram, str]:
        # Non-cumulative bucket counts then the sum, as prometheus-client stores them in
        # multiprocess mode.  Every bucket is written from the first observation on, +Inf
        # included, or histogram_quantile() would have no +Inf bucket to go by.
        counts = self._hists.get((histogram, tube)) or self._histogram(histogram, tube)
        counts[bisect.bisect_left(histogram.bounds, value)] += 1
        counts[-1] += value
        return histogram, tube

    def _histogram(self, histogram: Histogram, tube: str) -> list[float]:
        counts = self._hists[histogram, tube] = [0.0] * (len(histogram.bounds) + 1)
        return counts

    def _key(
        self, metric: str, suffix: str, names: tuple[str, ...], values: tuple[str, ...]
    ) -> str:
        cache_key = (metric, suffix, values)
        key = self._keys.get(cache_key)
        if key is None:
            key = self._keys[cache_key] = valuefiles.key(
                metric, metric + suffix, names, values, _HELP[metric]
            )
        return key

    def _write(self, typ: str, key: str, value: float) -> None:
        mapped = self._files.get(typ)
        if mapped is None:
            path = os.path.join(self.directory, f"{typ}_{self.pid}.db")
            mapped = self._files[typ] = valuefiles.ValuesFile(path)
        mapped.write(key, value)


def _metric_outcome(outcome: str, duration: float | None) -> str | None:
    """The metric's outcome of a job-log outcome; None: not a finished job (never started)."""
    if duration is None and outcome == "released":
        return "lost"  # handed back mid-run by a second stop signal
    if outcome == "returned" and duration is not None:
        return "lost"  # ran, but its outcome never reached beanstalkd
    return OUTCOMES.get(outcome)


_HIST = ("pool", "tube")
_HIST_LE = ("pool", "tube", "le")
_LE = {b: valuefiles.bound_label(b) for h in (DURATION, ATTEMPTS, WAIT) for b in h.bounds}
_HELP = {
    JOBS[0]: JOBS[1],
    RECYCLES[0]: RECYCLES[1],
    PROCESSES[0]: PROCESSES[1],
    **{h.name: h.help for h in (DURATION, ATTEMPTS, WAIT)},
}


def off_message(directory: str, error: Exception) -> str:
    """The one line that says why this process's metrics are off."""
    if isinstance(error, OSError):
        reason = describe_os_error(error)
    else:
        reason = f"{type(error).__name__}: {error}"
    return f"worker metrics switched off: cannot write into {directory}: {reason}"
