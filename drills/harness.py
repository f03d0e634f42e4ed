"""Shared machinery of the failure drills: servers, worker processes, a numbered job stream,
the execution log, waiting with deadlines, the set-up every drill starts from, and the
result of one drill.

Every wait in the drills goes through :func:`wait_for` (a deadline, a bounded loop); sleeps
only pace load or hold a failure for its stated duration, never stand in for a condition.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import greenstalk

ROOT = Path(__file__).resolve().parent.parent
DRILLS_DIR = ROOT / "drills"
sys.path.insert(0, str(ROOT / "tests"))

from beanfleet.errors import BeanfleetError, ConnectError
from beanfleet.produce.producer import Producer
from beanstalkd_server import Beanstalkd as _Beanstalkd
from beanstalkd_server import free_port

__all__ = [
    "ROOT",
    "Beanstalkd",
    "DrillError",
    "DrillResult",
    "ExecLog",
    "StreamProducer",
    "WorkerProc",
    "binlog_bytes",
    "free_port",
    "tube_counts",
    "wait_for",
]

SIZES = ("ci", "full")
HANDLER_MODULE = "drill_handlers"


class DrillError(Exception):
    """A condition a drill waited for did not come true before its deadline."""


def wait_for(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.02
) -> float:
    """Poll ``condition`` until it is truthy; return the seconds it took.

    Raises :class:`DrillError` naming ``what`` after ``timeout`` seconds.
    """
    start = time.monotonic()
    deadline = start + timeout
    while True:
        if condition():
            return time.monotonic() - start
        if time.monotonic() >= deadline:
            raise DrillError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def fmt_s(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds:.2f} s"


def parse_ts(text: str) -> float:
    """The worker log's ``2026-01-02T03:04:05.678Z`` as Unix time."""
    return datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


# -- results -----------------------------------------------------------------------------------


@dataclass
class DrillResult:
    """One row of the drills table, plus what the tests assert on."""

    name: str
    title: str
    sent: int = 0  # acknowledged puts of numbered jobs
    processed: int = 0  # distinct acknowledged jobs whose handler completed
    lost: int = 0  # acknowledged, never completed
    run_twice: int = 0  # jobs whose handler was started more than once
    run_twice_bound: str = "0"
    recovery: str = "n/a"
    notes: str = ""
    failures: list[str] = field(default_factory=list)
    # Problems found and reported to their owners that the drill works around; they do not
    # fail the drill (tests pin them with xfail so a fix shows up).
    known_issues: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)  # markdown lines for docs/drills.md
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures

    def check(self, condition: bool, failure: str) -> None:
        if not condition:
            self.failures.append(failure)

    def count(self, log: ExecLog, acked: set[int]) -> None:
        """Fill sent/processed/lost/run-twice from the execution log."""
        stats = log.stats()
        self.sent = len(acked)
        self.processed = len(acked & stats.done_seqs)
        self.lost = len(acked - stats.done_seqs)
        self.run_twice = len(stats.started_twice)
        self.metrics["lost_seqs"] = sorted(acked - stats.done_seqs)[:20]
        self.metrics["started_twice"] = sorted(stats.started_twice)[:20]
        self.metrics["completed_twice"] = sorted(stats.completed_twice)[:20]


# -- the execution log ---------------------------------------------------------------------------


@dataclass
class Execution:
    seq: int | None
    pid: int
    job_id: int
    phase: str
    at: float
    server: str | None = None  # with several servers the handler's job id is SERVER/ID


@dataclass
class LogStats:
    starts: Counter[int]
    dones: Counter[int]
    unnumbered: Counter[str]  # phase -> count, for bodies without a seq

    @property
    def done_seqs(self) -> set[int]:
        return set(self.dones)

    @property
    def started_twice(self) -> set[int]:
        return {seq for seq, n in self.starts.items() if n > 1}

    @property
    def completed_twice(self) -> set[int]:
        return {seq for seq, n in self.dones.items() if n > 1}


class ExecLog:
    """The file the drill handlers append to (see drill_handlers.py)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()

    def entries(self) -> list[Execution]:
        out: list[Execution] = []
        with open(self.path, "rb") as f:
            data = f.read()
        for raw in data.splitlines():
            parts = raw.decode().split()
            if len(parts) != 5:
                continue  # a line being written right now
            seq, pid, job_id, phase, at = parts
            server, _, number = job_id.rpartition("/")
            out.append(
                Execution(
                    None if seq == "-" else int(seq),
                    int(pid),
                    int(number),
                    phase,
                    float(at),
                    server or None,
                )
            )
        return out

    def stats(self) -> LogStats:
        starts: Counter[int] = Counter()
        dones: Counter[int] = Counter()
        unnumbered: Counter[str] = Counter()
        for e in self.entries():
            if e.seq is None:
                unnumbered[e.phase] += 1
            elif e.phase == "start":
                starts[e.seq] += 1
            elif e.phase == "done":
                dones[e.seq] += 1
        return LogStats(starts, dones, unnumbered)

    def all_done(self, seqs: set[int]) -> bool:
        return seqs <= self.stats().done_seqs


# -- beanstalkd helpers ---------------------------------------------------------------------------


def spawn_logged(argv: list[str], log_path: Path, **popen: Any) -> subprocess.Popen[bytes]:
    """Start ``argv`` with its stderr appended to ``log_path`` and no stdin or stdout: how
    the drills start servers and workers, whose output belongs in files, not in theirs."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, **popen
        )


class Beanstalkd(_Beanstalkd):
    """The test fixture's server, with its stderr (one warning per refused put when the
    disk is full, for example) in a file next to its binlog instead of the drill's output."""

    def spawn(self) -> subprocess.Popen[bytes]:
        base = self.binlog_dir.parent if self.binlog_dir is not None else Path("/tmp")
        self.stderr_path = base / f"beanstalkd-{self.port}.err"
        return spawn_logged(self.argv(), self.stderr_path)

    def exit_detail(self) -> str:
        return ": " + self.stderr_path.read_text(errors="replace")[-500:]


def binlog_bytes(directory: Path) -> int:
    """Sum of the sizes of the binlog files (what ``du --apparent-size`` would count)."""
    total = 0
    for path in directory.glob("binlog.*"):
        with contextlib.suppress(FileNotFoundError):
            total += path.stat().st_size
    return total


def server_stats(address: tuple[str, int]) -> dict[str, Any]:
    with contextlib.closing(greenstalk.Client(address, encoding=None)) as client:
        return dict(client.stats())


def tube_counts(address: tuple[str, int], tube: str) -> dict[str, int]:
    """ready/reserved/delayed/buried counts of one tube (all 0 if the tube is gone)."""
    keys = (
        "current-jobs-ready",
        "current-jobs-reserved",
        "current-jobs-delayed",
        "current-jobs-buried",
    )
    try:
        with contextlib.closing(greenstalk.Client(address, encoding=None)) as client:
            stats = client.stats_tube(tube)
    except greenstalk.NotFoundError:
        return {k.removeprefix("current-jobs-"): 0 for k in keys}
    return {k.removeprefix("current-jobs-"): int(stats[k]) for k in keys}


def tube_idle(address: tuple[str, int], tube: str) -> bool:
    """No ready, reserved or delayed job left (buried ones are counted separately)."""
    try:
        counts = tube_counts(address, tube)
    except OSError:
        return False
    return counts["ready"] == counts["reserved"] == counts["delayed"] == 0


# -- worker processes ----------------------------------------------------------------------------


def beanfleet_argv() -> list[str]:
    script = Path(sys.executable).parent / "beanfleet"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from beanfleet.cli import main; main()"]


def drill_env(exec_log: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(DRILLS_DIR), env.get("PYTHONPATH", "")) if p
    )
    if exec_log is not None:
        env["BEANFLEET_DRILL_LOG"] = str(exec_log)
    env.pop("BEANFLEET_SERVER", None)
    return env


class WorkerProc:
    """One ``beanfleet work`` subprocess with JSON logs in its own file."""

    def __init__(
        self,
        server: str,
        workdir: Path,
        name: str,
        exec_log: Path,
        tubes: dict[str, str],
        extra: list[str] | None = None,
    ) -> None:
        self.server = server
        self.name = name
        self.exec_log = exec_log
        self.tubes = tubes  # tube -> handler function in drill_handlers
        self.extra = extra or []
        self.log_path = workdir / f"worker-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.returncode: int | None = None

    def argv(self) -> list[str]:
        argv = [
            *beanfleet_argv(),
            "work",
            "--server",
            self.server,
            "--log-format",
            "json",
        ]
        for tube, function in self.tubes.items():
            argv += ["--tube", f"{tube}={HANDLER_MODULE}:{function}"]
        return argv + self.extra

    def start(self, wait_connected: bool = True, timeout: float = 15.0) -> WorkerProc:
        assert self.proc is None or self.proc.poll() is not None
        marker = self._line_count()
        self.proc = spawn_logged(
            self.argv(),
            self.log_path,
            env=drill_env(self.exec_log),
            cwd=str(self.log_path.parent),
        )
        self.started_at = time.time()
        self.returncode = None
        if wait_connected:
            wait_for(
                lambda: self._connected_since(marker) or not self.alive,
                timeout,
                f"worker {self.name} to connect",
            )
            if not self.alive:
                raise DrillError(f"worker {self.name} exited at start: {self.tail()}")
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise DrillError(f"worker {self.name} did not exit in {timeout:g}s") from exc
        return self.returncode

    def kill(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.kill()
            self.returncode = self.proc.wait(timeout=10)

    def events(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if not self.log_path.exists():
            return out
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def tail(self, lines: int = 5) -> str:
        if not self.log_path.exists():
            return ""
        return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _line_count(self) -> int:
        return len(self.events())

    def _connected_since(self, marker: int) -> bool:
        return any(e.get("event") == "connected" for e in self.events()[marker:])

    def connected_times(self) -> list[float]:
        return [parse_ts(e["ts"]) for e in self.events() if e.get("event") == "connected"]


class Fleet:
    """The workers of one drill: same server, work directory, execution log and handlers;
    all killed on exit, whatever happened."""

    def __init__(self, server: str, workdir: Path, exec_log: Path, tubes: dict[str, str]) -> None:
        self.server = server
        self.workdir = workdir
        self.exec_log = exec_log
        self.tubes = tubes
        self.workers: list[WorkerProc] = []

    def start(self, name: str, extra: list[str] | None = None) -> WorkerProc:
        """Start (and wait for the connect of) one more worker, with ``extra`` options."""
        worker = WorkerProc(self.server, self.workdir, name, self.exec_log, self.tubes, extra)
        self.workers.append(worker)  # before it starts: a failed start is killed on exit too
        return worker.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        for worker in self.workers:
            with contextlib.suppress(Exception):
                worker.kill()


@contextlib.contextmanager
def running_server(server: Beanstalkd) -> Iterator[Beanstalkd]:
    server.start()
    try:
        yield server
    finally:
        server.kill()


# -- the job stream ----------------------------------------------------------------------------


class StreamProducer(threading.Thread):
    """Puts numbered jobs ``{"seq": n, ...}`` at a steady rate through beanfleet's Producer.

    A put that returned an id is *acknowledged*; one that raised after it may have reached
    the server is *unknown* (never retried under the same number, so a duplicate can only
    come from the server or the workers, never from this producer); one the server refused
    is recorded with its error.
    """

    def __init__(
        self,
        server: str,
        tube: str,
        rate: float,
        count: int | None = None,
        extra: Callable[[int], dict[str, Any]] | None = None,
        ttr: int = 60,
        first_seq: int = 0,
    ) -> None:
        super().__init__(daemon=True, name=f"producer-{tube}")
        self.server = server
        self.tube = tube
        self.rate = rate
        self.count = count
        self.extra = extra
        self.ttr = ttr
        self.next_seq = first_seq
        self.acked: dict[int, int] = {}
        self.ack_times: dict[int, float] = {}
        self.unknown: list[int] = []
        self.refused: list[tuple[int, str]] = []
        self.errors: Counter[str] = Counter()
        self.stop_event = threading.Event()
        self._producer: Producer | None = None
        self.lock = threading.Lock()

    def acked_seqs(self) -> set[int]:
        with self.lock:
            return set(self.acked)

    def stop(self, timeout: float = 15.0) -> None:
        self.stop_event.set()
        self.join(timeout)
        if self.is_alive():
            raise DrillError("producer thread did not stop")
        if self._producer is not None:
            with contextlib.suppress(Exception):
                self._producer.close()

    def put_one(self) -> bool:
        """Put the next numbered job; True if acknowledged."""
        seq = self.next_seq
        self.next_seq += 1
        data: dict[str, Any] = {"seq": seq}
        if self.extra is not None:
            data.update(self.extra(seq))
        try:
            if self._producer is None:
                self._producer = Producer(self.server, timeout=2.0)
            job_id = self._producer.put(self.tube, data, ttr=self.ttr)
        except ConnectError as exc:
            # Raised before sending (cannot connect) or after (link broke): unknowable here.
            self.errors[f"{type(exc).__name__}: {exc}"] += 1
            self.unknown.append(seq)
            self._producer = None
            return False
        except (BeanfleetError, greenstalk.Error) as exc:
            self.errors[f"{type(exc).__module__}.{type(exc).__name__}: {exc}"] += 1
            self.refused.append((seq, type(exc).__name__))
            return False
        with self.lock:
            self.acked[seq] = job_id
            self.ack_times[seq] = time.time()
        return True

    def run(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self.stop_event.is_set():
            if self.count is not None and self.next_seq >= self.count:
                return
            ok = self.put_one()
            if not ok:
                self.stop_event.wait(0.05)  # do not spin against a dead server
                next_at = time.monotonic()
                continue
            next_at += interval
            pause = next_at - time.monotonic()
            if pause > 0:
                self.stop_event.wait(pause)
            elif pause < -1.0:
                next_at = time.monotonic()  # fell behind: do not burst to catch up


# -- drill set-up ------------------------------------------------------------------------------


@contextlib.contextmanager
def stage(
    workdir: Path, tube: str, handler: str = "record", **server_options: Any
) -> Iterator[tuple[ExecLog, Beanstalkd, Fleet]]:
    """What every drill runs on: an execution log and a server (binlog) in ``workdir``, and
    a fleet of workers for ``handler`` on ``tube``; the workers, then the server, are killed
    on exit.  One set-up, so the counts of all drills come from the same plumbing."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = ExecLog(workdir / "exec.log")
    with (
        running_server(Beanstalkd(binlog_dir=workdir / "binlog", **server_options)) as server,
        Fleet(server.address, workdir, log.path, {tube: handler}) as fleet,
    ):
        yield log, server, fleet


@contextlib.contextmanager
def stream_stage(
    workdir: Path,
    tube: str,
    rate: float,
    workers: int = 2,
    worker_options: list[str] | None = None,
    job_extra: Callable[[int], dict[str, Any]] | None = None,
    **server_options: Any,
) -> Iterator[tuple[ExecLog, Beanstalkd, Fleet, StreamProducer]]:
    """A :func:`stage` with ``workers`` workers (w0, w1, ...) running, then a producer
    streaming numbered jobs (plus ``job_extra(seq)``) to ``tube``: the load of the drills that
    break something under it.  The producer stops on exit."""
    with stage(workdir, tube, **server_options) as (log, server, fleet):
        for i in range(workers):
            fleet.start(f"w{i}", worker_options)
        producer = StreamProducer(server.address, tube, rate=rate, extra=job_extra)
        producer.start()
        try:
            yield log, server, fleet, producer
        finally:
            producer.stop_event.set()


def finish_stream(
    producer: StreamProducer, log: ExecLog, server: Beanstalkd, others: Iterable[int] = ()
) -> set[int]:
    """Stop the stream, wait until every acknowledged job (and ``others``, put besides the
    stream) is done and the tube is empty; return their seqs.  Every stream drill ends this
    way, so "lost" means the same in each."""
    producer.stop()
    acked = producer.acked_seqs() | set(others)
    wait_for(lambda: log.all_done(acked), 60, "every acknowledged job to be done", 0.1)
    wait_for(lambda: tube_idle(server.pair, producer.tube), 30, "the tube to be empty", 0.1)
    return acked


def first_after(times: list[float], moment: float) -> float | None:
    later = [t for t in times if t >= moment]
    return min(later) - moment if later else None


def cleanup_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def send_signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


SIGKILL = signal.SIGKILL
SIGTERM = signal.SIGTERM
