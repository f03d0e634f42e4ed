"""Issue 18, metrics must never hurt jobs: a real `beanfleet work --metrics-dir` process
whose metrics directory is removed, or whose file system is full."""

from __future__ import annotations

import contextlib
import io
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from beanfleet.work.handlers import JobInfo
from beanfleet.work.joblog import JobLog
from beanfleet.work.loop import Worker
from beanfleet.work.recycle import RecycleLimits
from small_tmpfs import fill, mounted
from worker_support import Queue, WorkerProcess, read_records, wait_for

HANDLERS = "handlers_for_tests"
METRICS_OFF = "event=metrics-off"


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    with mounted(tmp_path / "small") as mount:
        yield mount


def _worker_args(queue: Queue, metrics_dir: Path, handler: str = "record") -> list[str]:
    return [
        "--server", queue.server.address, "--tube", f"work={HANDLERS}:{handler}",
        "--metrics-dir", str(metrics_dir), "--pool", "p",
    ]  # fmt: skip


def _one_metrics_off_line(worker: WorkerProcess) -> str:
    [line] = [line for line in worker.lines() if METRICS_OFF in line]
    assert " error " in line and "worker metrics switched off" in line, line
    assert "Traceback" not in worker.log_path.read_text()
    return line


def test_removing_the_metrics_dir_keeps_touches_and_log_lines(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    """Issue 18 item 10: after its metrics directory is removed, a worker says once that
    metrics are off and its monitor goes on: a 5 s job with a 2 s TTR is touched (runs
    once, no TTR timeout) and job lines still appear while the worker runs."""
    metrics_dir = tmp_path / "metrics"
    worker = spawn_worker(*_worker_args(queue, metrics_dir, "slow"))
    worker.wait_log("event=connected")
    shutil.rmtree(metrics_dir)  # its next new file cannot be created
    out = tmp_path / "out.jsonl"
    long = queue.put("work", {"out": str(out), "seconds": 5}, ttr=2)
    wait_for(lambda: read_records(out), 10, "the long job to start")
    [line] = worker.wait_outcomes(long, timeout=15)
    assert "outcome=deleted" in line
    assert [r["event"] for r in read_records(out)] == ["started", "done"]  # ran once
    assert queue.server_stats()["job-timeouts"] == 0  # touched in time
    short = queue.put("work", {"out": str(out), "seconds": 0})
    assert "outcome=deleted" in worker.wait_outcomes(short)[0]  # lines flushed while running
    _one_metrics_off_line(worker)
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit() == 0


def test_a_full_metrics_file_system_at_start_does_not_stop_jobs(
    queue: Queue,
    small_tmpfs: Path,
    spawn_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    """Issue 18 item 11: a worker started with its metrics directory on a full file system
    says once that metrics are off (no SIGBUS, rc 135) and runs its jobs."""
    fill(small_tmpfs)
    worker = spawn_worker(*_worker_args(queue, small_tmpfs))
    job = queue.put("work", {"out": str(tmp_path / "out.jsonl")})
    assert "outcome=deleted" in worker.wait_outcomes(job)[0]
    assert "no space left on device" in _one_metrics_off_line(worker)
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit() == 0


def test_a_metrics_file_system_filling_up_while_running_does_not_stop_jobs(
    queue: Queue,
    small_tmpfs: Path,
    spawn_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    """Issue 18 item 11: the metrics file system fills up while the worker runs: its next
    new metrics file cannot get space; metrics go off with one line (no SIGBUS), jobs go on."""
    worker = spawn_worker(*_worker_args(queue, small_tmpfs))
    worker.wait_log("event=connected")
    fill(small_tmpfs)
    out = tmp_path / "out.jsonl"
    for _ in range(3):  # one after the other: the worker must outlive its first flush
        job = queue.put("work", {"out": str(out)})
        assert "outcome=deleted" in worker.wait_outcomes(job)[0]
    assert "no space left on device" in _one_metrics_off_line(worker)
    with contextlib.suppress(FileNotFoundError):
        (small_tmpfs / "filler").unlink()
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit() == 0


class _FlushFailsOnceInTheMonitor(JobLog):
    """A log whose first flush from the monitor thread raises."""

    def __init__(self) -> None:
        super().__init__("text", io.StringIO())
        self.failed = False

    def flush(self) -> None:
        if not self.failed and threading.current_thread().name == "beanfleet-monitor":
            self.failed = True
            raise RuntimeError("flush failed once")
        super().flush()

    def lines(self) -> list[str]:
        assert isinstance(self._stream, io.StringIO)
        return self._stream.getvalue().splitlines()


def test_a_failing_monitor_step_is_logged_once_and_the_monitor_goes_on(queue: Queue) -> None:
    """Issue 18 item 10: whatever a monitor step raises, the monitor thread says so once and
    goes on: a 3 s job with a 1 s TTR is still touched (no TTR timeout) and deleted."""
    ran: list[int] = []

    def handler(data: Any, job: JobInfo) -> None:
        ran.append(job.id)
        time.sleep(3)

    job = queue.put("work", {}, ttr=1)
    log = _FlushFailsOnceInTheMonitor()
    worker = Worker(
        queue.server.address,
        {"work": handler},
        log=log,
        limits=RecycleLimits(max_jobs=1, max_time=20),
    )
    assert worker.run().startswith("max-jobs")
    assert ran == [job]
    assert queue.stats(job) is None  # deleted
    assert queue.server_stats()["job-timeouts"] == 0
    [line] = [line for line in log.lines() if "event=monitor-error" in line]
    assert "RuntimeError: flush failed once" in line
    assert f"job={job} tube=work attempt=1" in "\n".join(log.lines())
