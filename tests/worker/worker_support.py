"""Helpers for the worker tests: put jobs, read job states, run workers in-process or as a
``beanfleet work`` subprocess, and wait for conditions with a deadline (never fixed sleeps).

A module of its own (not conftest.py): several test folders have a conftest, and a plain
``from conftest import`` could pick another folder's.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import greenstalk
from beanfleet.metrics.worker import WorkerMetrics
from beanfleet.work.events import Observer
from beanfleet.work.handlers import Handler
from beanfleet.work.joblog import JobLog, LogFormat
from beanfleet.work.loop import Worker
from beanfleet.work.outcome import RetryPolicy
from beanfleet.work.recycle import RecycleLimits
from beanstalkd_server import Beanstalkd
from waiting import wait_for

HERE = Path(__file__).resolve().parent
_SLOW = "work=handlers_for_tests:slow"  # holds its job until the file named "go" exists


class Queue:
    """The test's own view of the beanstalkd under test (a separate connection)."""

    def __init__(self, server: Beanstalkd) -> None:
        self.server = server
        self._client: greenstalk.Client[bytes] | None = None

    @property
    def client(self) -> greenstalk.Client[bytes]:
        if self._client is None:
            self._client = greenstalk.Client(self.server.pair, encoding=None)
        return self._client

    def reset(self) -> None:
        """Forget the connection (after beanstalkd was killed or restarted)."""
        if self._client is not None:
            with contextlib.suppress(OSError):  # the server may be gone already
                self._client.close()
        self._client = None

    def put(
        self,
        tube: str,
        body: bytes | Mapping[str, Any],
        priority: int = greenstalk.DEFAULT_PRIORITY,
        ttr: int = 60,
        delay: int = 0,
    ) -> int:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.client.use(tube)
        return self.client.put(raw, priority=priority, delay=delay, ttr=ttr)

    def stats(self, job_id: int) -> dict[str, Any] | None:
        """stats-job, or None when the job is gone (deleted)."""
        try:
            return dict(self.client.stats_job(job_id))
        except greenstalk.NotFoundError:
            return None

    def state(self, job_id: int) -> str | None:
        stats = self.stats(job_id)
        return None if stats is None else str(stats["state"])

    def body(self, job_id: int) -> Any:
        """The decoded JSON body of a job (via peek)."""
        return json.loads(self.client.peek(job_id).body)

    def buried_in(self, tube: str) -> int | None:
        """The id of the next buried job in ``tube``, or None."""
        self.client.use(tube)
        try:
            return self.client.peek_buried().id
        except greenstalk.NotFoundError:
            return None

    def tube_stats(self, tube: str) -> defaultdict[str, Any]:
        """stats-tube; every count 0 while the tube does not exist (nobody uses it yet)."""
        stats: defaultdict[str, Any] = defaultdict(int)
        with contextlib.suppress(greenstalk.NotFoundError):
            stats.update(self.client.stats_tube(tube))
        return stats

    def server_stats(self) -> dict[str, Any]:
        return dict(self.client.stats())

    def close(self) -> None:
        self.reset()


def put_direct(server: Beanstalkd, tube: str, body: bytes) -> int:
    """Put ``body`` on ``server`` (one of several) through a connection of its own."""
    with greenstalk.Client(server.pair, encoding=None, use=tube) as client:
        return client.put(body)


def tube_count(server: Beanstalkd, tube: str, state: str = "ready") -> int:
    """``current-jobs-<state>`` (or ``current-<state>``, e.g. waiting) of a tube; 0 if none."""
    with greenstalk.Client(server.pair, encoding=None) as client:
        try:
            stats: dict[str, Any] = dict(client.stats_tube(tube))
        except greenstalk.NotFoundError:
            return 0
    return int(stats.get(f"current-jobs-{state}", stats.get(f"current-{state}", 0)))


def read_records(path: Path) -> list[dict[str, Any]]:
    """The JSON lines a test handler appended to ``path`` (see handlers_for_tests)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def started(out: Path, job_id: int) -> bool:
    """Whether the handler recorded in ``out`` that it started job ``job_id``."""
    return any(r["event"] == "started" and r["id"] == job_id for r in read_records(out))


# -- in-process ------------------------------------------------------------------------------


def run_worker(
    server: str,
    handlers: Mapping[str, Handler],
    *,
    max_jobs: int | None = None,
    max_time: float = 20.0,  # a bound, so a broken test fails instead of hanging
    policy: RetryPolicy | None = None,
    fmt: LogFormat = "text",
    worker_class: type[Worker] = Worker,
    before_run: Callable[[Worker], None] | None = None,
    prefetch: bool = False,
    state_dir: Path | None = None,
    metrics: WorkerMetrics | None = None,
    observers: Sequence[Observer] = (),
) -> tuple[str, list[str]]:
    """Run a Worker in this (main) thread; return its stop reason and log lines."""
    stream = io.StringIO()
    log = JobLog(fmt, stream)
    worker = worker_class(
        server,
        handlers,
        policy=policy or RetryPolicy(max_retries=3, backoff_base=0),
        limits=RecycleLimits(max_jobs=max_jobs, max_time=max_time),
        log=log,
        prefetch=prefetch,
        state_dir=state_dir,
        observers=[*observers, *([metrics] if metrics is not None else [])],
    )
    if before_run is not None:
        before_run(worker)
    reason = worker.run()
    return reason, stream.getvalue().splitlines()


# -- subprocess ------------------------------------------------------------------------------


def beanfleet_argv() -> list[str]:
    """The installed console script (as a process manager runs it), else the module."""
    script = Path(sys.executable).with_name("beanfleet")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from beanfleet.cli import main; sys.exit(main())"]


class WorkerProcess:
    """``beanfleet work ...`` in a subprocess, its stderr in a file the test can poll."""

    def __init__(self, args: list[str], log_path: Path, env: Mapping[str, str] | None = None):
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(HERE), *filter(None, [environment.get("PYTHONPATH")])]
        )
        # The per-host crash records go under the test's tmp_path, never the working directory.
        environment.setdefault("BEANFLEET_STATE_DIR", str(log_path.parent / "state"))
        environment.update(env or {})
        self.log_path = log_path
        self._log_file = log_path.open("wb")
        self.proc = subprocess.Popen(
            [*beanfleet_argv(), "work", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log_file,
            env=environment,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def wait_log(self, needle: str, timeout: float = 10.0, count: int = 1) -> list[str]:
        def found() -> list[str]:
            hits = [line for line in self.lines() if needle in line]
            if len(hits) >= count:
                return hits
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"worker exited ({self.proc.returncode}) before logging {needle!r}:\n"
                    + "\n".join(self.lines())
                )
            return []

        return wait_for(found, timeout, f"worker log line {needle!r}")

    def wait_outcomes(self, job_id: int, count: int = 1, timeout: float = 10.0) -> list[str]:
        """The job-outcome lines of one job (text format), once there are ``count``."""
        return self.wait_log(f"job={job_id} tube=", timeout, count)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 10.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"worker did not exit within {timeout}s:\n" + "\n".join(self.lines())
            ) from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._log_file.close()


def graceful_stop(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path, sig: int
) -> tuple[WorkerProcess, str]:
    """``sig`` to a ``beanfleet work`` whose handler runs a job (held until its go file is
    made), another job waiting: checks it is a graceful stop (the running job finishes and is
    deleted, the waiting one is not taken, exit 0); returns the worker and its
    ``event=stopping`` line."""
    out, go = tmp_path / "out", tmp_path / "go"
    running = queue.put("work", {"out": str(out), "go": str(go), "seconds": 30})
    waiting = queue.put("work", {"out": str(out)})
    worker = spawn_worker("--server", queue.server.address, "--tube", _SLOW)
    wait_for(lambda: started(out, running), 10, "the handler to start")

    worker.signal(sig)
    [stopping] = worker.wait_log("event=stopping")  # the signal was seen...
    assert f"finishing job {running}" in stopping
    assert worker.proc.poll() is None, "exited before its job finished"  # ...and it stays
    go.touch()  # let the handler finish

    assert worker.wait_exit(10) == 0
    assert [r["event"] for r in read_records(out)] == ["started", "done"]
    assert queue.state(running) is None  # deleted
    stats = queue.stats(waiting)
    assert stats is not None and stats["state"] == "ready" and stats["reserves"] == 0
    assert any(f"job={running} " in line and "outcome=deleted" in line for line in worker.lines())
    return worker, stopping
