"""A Prometheus collector that asks a set of beanstalkd servers (1..N) for their stats on
every scrape.

Server-wide values come from ``stats``, per-tube ones from ``stats-tube`` and the
oldest-ready scan of :class:`~beanfleet.admin.Admin` (which remembers what it learnt between
scrapes, so each job id is examined about once).  When beanstalkd cannot be reached the
scrape still succeeds with ``beanfleet_up 0``; the next scrape reconnects.

A scrape waits for beanstalkd at most ``timeout`` seconds (:class:`ServerQuery`): a frozen
server (SIGSTOP, a paused VM: the kernel accepts the connection, nothing answers) is
``beanfleet_up 0`` for that scrape instead of hanging it and every scrape after it.  The
servers are asked at once, and a scrape waits for them at most ``timeout`` seconds in all.

One collector serves one server or several: each server is asked the same way and yields
the same families, merged by name (a name may appear only once in an exposition).  Only the
``server`` label depends on the count, and it is one flag, ``label_servers``, decided where
output is formatted (``cli/format``): with one server no label, so dashboards and alerts
written for it keep working (Prometheus' own ``instance`` label names the exporter, hence
the server); with several every sample gets ``server="HOST:PORT"``.  A server that does not
answer yields ``beanfleet_up 0`` and no other series (no stale per-tube figures): its jobs
wait in its binlog, and an alert on ``beanfleet_up == 0`` says so.

Owns the collector, the per-server question thread and the families' names.  May import:
``admin`` (the queries), the base modules and prometheus_client.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import greenstalk
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.metrics_core import Metric as BaseMetric
from prometheus_client.registry import Collector, CollectorRegistry

from beanfleet.admin.queries import Admin, Stats, TubeStats
from beanfleet.errors import BeanfleetError

Metric = GaugeMetricFamily | CounterMetricFamily | InfoMetricFamily

# Under Prometheus' scrape timeout (10 s by default, the scrape interval when shorter: 5 s
# in the Vagrant fleet).
DEFAULT_TIMEOUT = 4.0

JOB_STATES = ("ready", "reserved", "delayed", "buried")

# beanstalkd's ``stats`` fields served as series, in this order: field, kind, series name
# (after ``beanfleet_``), help.  Gauges are current values; counters only grow (until
# beanstalkd restarts, which Prometheus' rate() treats as a counter reset).
_SERVER_TABLE = """\
current-jobs-urgent     gauge   urgent_jobs             Ready jobs with priority < 1024
current-connections     gauge   connections             Open connections
current-producers       gauge   producers               Connections that have put a job
current-workers         gauge   workers                 Connections that have reserved a job
current-waiting         gauge   waiting_connections     Connections blocked in reserve
current-tubes           gauge   tubes                   Existing tubes
uptime                  gauge   uptime_seconds          Seconds since beanstalkd started
max-job-size            gauge   max_job_size_bytes      Largest job body the server accepts
binlog-oldest-index     gauge   binlog_oldest_index     Index of the oldest binlog file
binlog-current-index    gauge   binlog_current_index    Index of the binlog file written
binlog-max-size         gauge   binlog_max_size_bytes   Maximum size of a binlog file
total-jobs              counter jobs_created            Jobs created since beanstalkd started
job-timeouts            counter job_timeouts            Reserved jobs whose TTR ran out
total-connections       counter connections_opened      Connections accepted
binlog-records-written  counter binlog_records_written  Records written to binlog
binlog-records-migrated counter binlog_records_migrated Records compacted
"""
_KINDS: dict[str, type[GaugeMetricFamily | CounterMetricFamily]] = {
    "gauge": GaugeMetricFamily,
    "counter": CounterMetricFamily,
}
SERVER_SERIES = {
    key: (f"beanfleet_{name}", text, _KINDS[kind])
    for key, kind, name, text in (row.split(maxsplit=3) for row in _SERVER_TABLE.splitlines())
}


Answer = tuple[Stats, list[TubeStats]]


@dataclass(eq=False)
class _Question:
    started: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    finished: float = 0.0  # time.monotonic() when done
    answer: Answer | None = None  # None once done: beanstalkd failed to answer


class ServerQuery:
    """Asks one beanstalkd for its stats in a thread of its own, waited for with a deadline.

    Only the asking thread uses the :class:`~beanfleet.admin.Admin`, and one question per
    server is in flight: a scrape that finds the previous question unanswered waits for
    that one (until its own deadline) instead of asking again, so a frozen server holds one
    thread, and a long first oldest-ready scan finishes in the background for the next
    scrape.  Scrapes never wait for each other's servers.
    """

    def __init__(self, server: str, *, timeout: float, scan_limit: int) -> None:
        self.server = server
        self.admin = Admin(server, timeout=timeout, scan_budget=scan_limit)
        self._lock = threading.Lock()
        self._current: _Question | None = None

    def ask(self) -> _Question:
        with self._lock:
            question = self._current
            if question is None or question.done.is_set():
                question = self._current = _Question()
                threading.Thread(
                    target=self._ask,
                    args=(question,),
                    name=f"beanfleet-scrape {self.server}",
                    daemon=True,  # a frozen server must not keep the exporter from exiting
                ).start()
            return question

    def _ask(self, question: _Question) -> None:
        try:
            question.answer = (self.admin.server_stats(), self.admin.tube_stats())
        except (BeanfleetError, greenstalk.Error, OSError):
            pass
        finally:
            if question.answer is None:
                self.admin.close()  # reconnect next time, whatever half-state we are in
            question.finished = time.monotonic()
            question.done.set()

    @staticmethod
    def wait(question: _Question, since: float, deadline: float) -> tuple[Answer | None, float]:
        """The answer if it came by ``deadline`` (else None), and the seconds spent on it
        from ``since`` (the scrape's start; times are ``time.monotonic()``)."""
        question.done.wait(max(0.0, deadline - time.monotonic()))
        if not question.done.is_set():
            return None, time.monotonic() - since
        return question.answer, question.finished - max(since, question.started)

    def close(self) -> None:
        self.admin.close()


class BeanstalkdCollector(Collector):
    """Collects the servers' metrics per scrape, all asked at once, waiting at most
    ``timeout`` seconds in all.  ``label_servers``: a ``server`` label on every sample.
    ``binlog_dir``: the local binlog's file system (the exporter beside one beanstalkd)."""

    def __init__(
        self,
        servers: Sequence[str],
        *,
        label_servers: bool,
        timeout: float = DEFAULT_TIMEOUT,
        scan_limit: int = 100_000,
        binlog_dir: str | None = None,
    ) -> None:
        self.servers = list(servers)
        self.label_servers = label_servers
        self.binlog_dir = binlog_dir
        self.timeout = timeout
        self.queries = {
            s: ServerQuery(s, timeout=timeout, scan_limit=scan_limit) for s in self.servers
        }

    def describe(self) -> list[Metric]:
        # Nothing at registration time: describing would need a scrape of beanstalkd.
        return []

    def close(self) -> None:
        for query in self.queries.values():
            query.close()

    def collect(self) -> Iterator[BaseMetric]:
        started = time.monotonic()
        deadline = started + self.timeout
        questions = {server: query.ask() for server, query in self.queries.items()}
        label = ["server"] if self.label_servers else []
        up = GaugeMetricFamily("beanfleet_up", "1 if beanstalkd answered this scrape", labels=label)
        took = GaugeMetricFamily(
            "beanfleet_scrape_duration_seconds",
            "Time spent asking beanstalkd during this scrape",
            labels=label,
        )
        merged: dict[str, BaseMetric] = {}
        for server, question in questions.items():
            answer, seconds = ServerQuery.wait(question, started, deadline)
            families = [*server_metrics(answer[0]), *tube_metrics(answer[1])] if answer else []
            extra = {"server": server} if self.label_servers else {}
            for family in families:
                target = merged.get(family.name)
                if target is None:
                    target = BaseMetric(family.name, family.documentation, family.type)
                    merged[family.name] = target
                for sample in family.samples:
                    target.samples.append(sample._replace(labels={**extra, **sample.labels}))
            up.add_metric(list(extra.values()), 0 if answer is None else 1)
            took.add_metric(list(extra.values()), max(0.0, seconds))
        yield from merged.values()
        if self.binlog_dir is not None:
            yield from binlog_disk_metrics(self.binlog_dir)
        yield up
        yield took


def server_metrics(stats: Stats) -> Iterator[Metric]:
    def number(key: str) -> float:
        value = stats.get(key, 0)
        try:
            return float(value)
        except ValueError:
            return 0.0

    jobs = GaugeMetricFamily("beanfleet_jobs", "Current jobs by state", labels=["state"])
    for state in JOB_STATES:
        jobs.add_metric([state], number(f"current-jobs-{state}"))
    yield jobs
    for key, (name, text, family) in SERVER_SERIES.items():
        yield family(name, text, number(key))
    commands = CounterMetricFamily(
        "beanfleet_commands", "Commands served, by command", labels=["command"]
    )
    for key in sorted(stats):
        if key.startswith("cmd-"):
            commands.add_metric([key.removeprefix("cmd-")], number(key))
    yield commands
    yield CounterMetricFamily(
        "beanfleet_cpu_user_seconds", "User CPU time of beanstalkd", number("rusage-utime")
    )
    yield CounterMetricFamily(
        "beanfleet_cpu_system_seconds", "System CPU time of beanstalkd", number("rusage-stime")
    )
    yield GaugeMetricFamily(
        "beanfleet_draining",
        "1 if the server refuses new jobs",
        float(stats.get("draining") == "true"),
    )
    yield InfoMetricFamily(
        "beanfleet_server",
        "beanstalkd version and identity",
        value={
            "version": str(stats.get("version", "")),
            "hostname": str(stats.get("hostname", "")),
            "id": str(stats.get("id", "")),
        },
    )


def tube_metrics(tubes: list[TubeStats]) -> Iterator[Metric]:
    def gauge(name: str, text: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, text, labels=["tube"])

    def counter(name: str, text: str) -> CounterMetricFamily:
        return CounterMetricFamily(name, text, labels=["tube"])

    jobs = GaugeMetricFamily(
        "beanfleet_tube_jobs", "Current jobs in the tube by state", labels=["tube", "state"]
    )
    urgent = gauge("beanfleet_tube_urgent_jobs", "Ready jobs with priority < 1024")
    waiting = gauge("beanfleet_tube_waiting_connections", "Connections blocked in reserve")
    watching = gauge("beanfleet_tube_watching_connections", "Connections watching the tube")
    using = gauge("beanfleet_tube_using_connections", "Connections using the tube")
    paused = gauge("beanfleet_tube_paused", "1 while the tube is paused")
    pause_left = gauge("beanfleet_tube_pause_time_left_seconds", "Seconds until it resumes")
    oldest = gauge(
        "beanfleet_tube_oldest_ready_age_seconds",
        "Age of the oldest ready job of any priority (0 when none is ready)",
    )
    oldest_exact = gauge(
        "beanfleet_tube_oldest_ready_exact",
        "0 while the oldest-ready age is only a lower bound (scan budget spent)",
    )
    next_age = gauge(
        "beanfleet_tube_next_ready_age_seconds",
        "Age of the job the next reserve gets (0 when none is ready)",
    )
    created = counter("beanfleet_tube_jobs_created", "Jobs created in the tube")
    deletes = counter("beanfleet_tube_deletes", "delete commands for jobs of the tube")
    pauses = counter("beanfleet_tube_pauses", "pause-tube commands for the tube")
    for t in tubes:
        for state in JOB_STATES:
            jobs.add_metric([t.name, state], getattr(t, state))
        urgent.add_metric([t.name], t.urgent)
        waiting.add_metric([t.name], t.waiting)
        watching.add_metric([t.name], t.watching)
        using.add_metric([t.name], t.using)
        paused.add_metric([t.name], int(t.paused))
        pause_left.add_metric([t.name], t.pause_time_left)
        oldest.add_metric([t.name], t.oldest_ready_age or 0)
        oldest_exact.add_metric([t.name], int(t.oldest_ready_exact))
        next_age.add_metric([t.name], t.next_ready_age or 0)
        created.add_metric([t.name], t.total)
        deletes.add_metric([t.name], t.deletes)
        pauses.add_metric([t.name], t.pauses)
    yield from (jobs, urgent, waiting, watching, using, paused, pause_left, oldest)
    yield from (oldest_exact, next_age, created, deletes, pauses)


def binlog_disk_metrics(directory: str) -> Iterator[Metric]:
    """Free and total bytes of the binlog's file system (beanstalkd does not say; a full
    disk makes it refuse every put).  Served while beanstalkd is down too: the disk is why
    it may be down.  Nothing when the directory cannot be read (the series disappear)."""
    try:
        fs = os.statvfs(directory)
    except OSError:
        return
    yield GaugeMetricFamily(
        "beanfleet_binlog_filesystem_avail_bytes",
        "Bytes of the binlog directory's file system available to beanstalkd",
        fs.f_bavail * fs.f_frsize,
    )
    yield GaugeMetricFamily(
        "beanfleet_binlog_filesystem_size_bytes",
        "Size of the binlog directory's file system in bytes",
        fs.f_blocks * fs.f_frsize,
    )


def make_registry(collector: Collector) -> CollectorRegistry:
    """A registry with only our collector (no process/GC metrics of the exporter itself)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
