"""Worker-side Prometheus metrics, written in prometheus-client's multiprocess file format.

Every worker process of a host writes its own files into one metrics directory
(``--metrics-dir`` / ``$BEANFLEET_METRICS_DIR``); ``beanfleet metrics-endpoint`` serves their
sum (:mod:`beanfleet.metrics_endpoint`).  Off unless a directory is given: then no object of
this module exists and the worker pays nothing.

Cost on the hot path: recording a finished job appends one tuple to a deque (the worker's
:class:`MeteredJobLog` does it where it logs the outcome); the monitor thread, which flushes
the log every few tens of milliseconds, also folds the queued tuples into per-process totals
and writes the changed ones into the memory-mapped files.  So a job costs an append, and
each flush a handful of writes whatever the job rate.  Labels are the pool, the tube and the
outcome: never a job id.

Which jobs the wait and attempt histograms see: a started job whose ``stats-job`` the worker
had before it started (see :meth:`WorkerMetrics.sample`).  On its fast path (one watched tube,
a state directory) the worker skips that round trip, so it asks it for one job in
:data:`WAIT_SAMPLE_EVERY` (pipelined with ``--prefetch``) to keep a sample.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

from beanfleet import multiproc_files
from beanfleet.joblog import JobLog, JobOutcome, LogFormat

METRICS_DIR_ENV = "BEANFLEET_METRICS_DIR"
POOL_ENV = "BEANFLEET_POOL"
WAIT_SAMPLE_EVERY = 50
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

_Key = tuple[str, str]  # (file type, mmap key)


class WorkerMetrics:
    """One worker process's metrics: queued on the hot path, written by :meth:`flush`."""

    def __init__(self, directory: str | os.PathLike[str], pool: str) -> None:
        self.directory = os.fspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.pool = pool
        self.pid = os.getpid()
        # (tube, log outcome, handler duration) and (tube, attempt, age): appended by the
        # main thread (deque appends are atomic), folded in by whoever flushes.
        self.finished: deque[tuple[str | None, str, float | None]] = deque()
        self.starts: deque[tuple[str, int, int]] = deque()
        self._countdown = WAIT_SAMPLE_EVERY
        self._lock = threading.Lock()
        self._files: dict[str, multiproc_files.ValuesFile] = {}
        self._totals: dict[_Key, float] = {}
        self._keys: dict[tuple[str, str, tuple[str, ...]], str] = {}
        self._histograms: set[tuple[str, tuple[str, str]]] = set()
        self._closed = False
        self._write("gauge_livesum", self._key(PROCESSES[0], "", ("pool",), (pool,)), 1.0)

    # -- the hot path ------------------------------------------------------------------

    def sample(self) -> bool:
        """True once every :data:`WAIT_SAMPLE_EVERY` calls: ask this job's stats-job before
        it starts, so its wait and attempt are observed."""
        self._countdown -= 1
        if self._countdown:
            return False
        self._countdown = WAIT_SAMPLE_EVERY
        return True

    def started(self, tube: str, stats: Mapping[str, int | str]) -> None:
        """A job starts whose stats-job the worker has (its attempt and age are known)."""
        self.starts.append(
            (tube, int(stats["reserves"]) + int(stats["kicks"]), int(stats.get("age", -1)))
        )

    # -- writing -----------------------------------------------------------------------

    def flush(self, *, recycled: bool = False) -> None:
        """Fold in what was queued and write the changed totals to the files."""
        with self._lock:
            if self._closed:
                return
            changed: set[_Key] = set()
            pool = self.pool
            finished = self.finished
            for _ in range(len(finished)):
                tube, outcome, duration = finished.popleft()
                name = OUTCOMES.get(outcome)
                if duration is None and outcome == "released":
                    name = "lost"  # handed back mid-run by a second stop signal
                elif outcome == "returned" and duration is not None:
                    name = "lost"  # ran, but its outcome never reached beanstalkd
                if name is None:
                    continue
                labels = (pool, tube or "")
                key = self._key(JOBS[0], "_total", ("pool", "tube", "outcome"), (*labels, name))
                self._add("counter", key, 1.0, changed)
                if duration is not None:
                    self._observe(DURATION, labels, duration, changed)
            starts = self.starts
            for _ in range(len(starts)):
                tube, attempt, age = starts.popleft()
                self._observe(ATTEMPTS, (pool, tube), attempt, changed)
                if attempt == 1 and age >= 0:
                    self._observe(WAIT, (pool, tube), age, changed)
            if recycled:
                self._add(
                    "counter", self._key(RECYCLES[0], "_total", ("pool",), (pool,)), 1.0, changed
                )
            for typ, key in changed:
                self._write(typ, key, self._totals[typ, key])

    def close(self, *, recycled: bool = False) -> None:
        """The process exits: last flush, then its processes gauge goes (the counters stay,
        summed with the live processes' by the endpoint)."""
        self.flush(recycled=recycled)
        with self._lock:
            self._closed = True
            for mapped in self._files.values():
                mapped.close()
            self._files.clear()
            multiproc_files.process_dead(self.pid, self.directory)

    def _key(
        self, metric: str, suffix: str, names: tuple[str, ...], values: tuple[str, ...]
    ) -> str:
        cache_key = (metric + suffix, "\0".join(names), values)
        key = self._keys.get(cache_key)
        if key is None:
            help_text = _HELP[metric]
            key = self._keys[cache_key] = multiproc_files.key(
                metric, metric + suffix, list(names), list(values), help_text
            )
        return key

    def _add(self, typ: str, key: str, amount: float, changed: set[_Key]) -> None:
        self._totals[typ, key] = self._totals.get((typ, key), 0.0) + amount
        changed.add((typ, key))

    def _observe(
        self, histogram: Histogram, labels: tuple[str, str], value: float, changed: set[_Key]
    ) -> None:
        # Buckets are stored non-cumulative, as prometheus-client does in multiprocess mode;
        # each one is written from the first observation on, +Inf included, or
        # histogram_quantile() would have no +Inf bucket to go by.
        names = ("pool", "tube")
        if (histogram.name, labels) not in self._histograms:
            self._histograms.add((histogram.name, labels))
            for each in histogram.bounds:
                le = multiproc_files.bound_label(each)
                self._add(
                    "histogram",
                    self._key(histogram.name, "_bucket", (*names, "le"), (*labels, le)),
                    0.0,
                    changed,
                )
        bound = histogram.bounds[bisect.bisect_left(histogram.bounds, value)]
        bucket = self._key(
            histogram.name, "_bucket", (*names, "le"), (*labels, multiproc_files.bound_label(bound))
        )
        self._add("histogram", bucket, 1.0, changed)
        self._add("histogram", self._key(histogram.name, "_sum", names, labels), value, changed)

    def _write(self, typ: str, key: str, value: float) -> None:
        mapped = self._files.get(typ)
        if mapped is None:
            path = os.path.join(self.directory, f"{typ}_{self.pid}.db")
            mapped = self._files[typ] = multiproc_files.ValuesFile(path)
        mapped.write(key, value)


_HELP = {
    JOBS[0]: JOBS[1],
    RECYCLES[0]: RECYCLES[1],
    PROCESSES[0]: PROCESSES[1],
    **{h.name: h.help for h in (DURATION, ATTEMPTS, WAIT)},
}


class MeteredJobLog(JobLog):
    """The job log that also counts each outcome it logs (every outcome passes here once)
    and writes the metrics whenever it flushes."""

    def __init__(
        self, fmt: LogFormat, metrics: WorkerMetrics, stream: TextIO | None = None
    ) -> None:
        super().__init__(fmt, stream)
        self.metrics = metrics
        self._finished = metrics.finished

    def deleted(self, job_id: int, tube: str, attempt: int | None, duration: float) -> None:
        super().deleted(job_id, tube, attempt, duration)
        self._finished.append((tube, "deleted", duration))

    def job(self, result: JobOutcome) -> None:
        super().job(result)
        self._finished.append((result.tube, result.outcome, result.duration))

    def flush(self) -> None:
        super().flush()
        self.metrics.flush()
