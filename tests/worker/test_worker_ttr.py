"""Time limits on a real ``beanfleet work`` process: the heartbeat keeps a job running past
its TTR away from other workers, ``--timeout`` stops a handler and counts as a failed
attempt, and a job whose worker dies comes back.

Not tested here: a *frozen* worker (SIGSTOP) that has touched its job.  beanstalkd 1.12
often never times such a job out while the connection stays open (after any command
following the reserve, the connection is not rescheduled; cf. beanstalkd #262, #380).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import greenstalk
import pytest
from worker_support import Queue, WorkerProcess, read_records, wait_for

pytestmark = pytest.mark.timeout(60)

SLOW = "work=handlers_for_tests:slow"


def _events(out: Path) -> list[tuple[str, int]]:
    return [(r["event"], r["attempt"]) for r in read_records(out)]


def test_touch_keeps_a_job_longer_than_its_ttr_from_a_second_worker(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job_id = queue.put("work", {"out": str(out), "seconds": 3}, ttr=1)  # runs 3x its TTR
    worker = spawn_worker("--server", queue.server.address, "--tube", SLOW)
    wait_for(lambda: read_records(out), 10, "the handler to start")

    # Play a second worker: it must not get the job while the first one runs it.
    second = greenstalk.Client(queue.server.pair, encoding=None, watch="work")
    try:
        with pytest.raises(greenstalk.TimedOutError):
            second.reserve(timeout=3)
    finally:
        second.close()

    wait_for(lambda: queue.state(job_id) is None, 10, "the job to be deleted")
    [line] = worker.wait_outcomes(job_id)
    assert "outcome=deleted" in line
    assert _events(out) == [("started", 1), ("done", 1)]  # ran once, never handed out
    assert queue.server_stats()["job-timeouts"] == 0


def test_timeout_stops_the_handler_and_counts_as_a_failed_attempt(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job_id = queue.put("work", {"out": str(out), "seconds": 30})
    worker = spawn_worker(
        "--server", queue.server.address, "--tube", SLOW,
        "--timeout", "0.5", "--max-retries", "1", "--backoff-base", "0",
    )  # fmt: skip
    wait_for(lambda: queue.state(job_id) == "buried", 15, "the job to be buried")

    # Two attempts, both stopped (no "done"), then buried: retries exhausted.  The retry
    # released the same job.
    assert _events(out) == [("started", 1), ("started", 2)]
    stats = queue.stats(job_id)
    assert stats is not None and (stats["releases"], stats["buries"]) == (1, 1)
    first, second = worker.wait_outcomes(job_id, count=2)
    assert "outcome=released" in first and "JobTimeout: timeout after 0.5s" in first
    assert "in slow)" in first  # names where the handler was stopped
    assert "outcome=buried" in second and "retries exhausted" in second
    assert worker.proc.poll() is None  # still serving


def test_job_of_a_killed_worker_comes_back(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job_id = queue.put("work", {"out": str(out), "seconds": 60}, ttr=3600)
    worker = spawn_worker("--server", queue.server.address, "--tube", SLOW)
    wait_for(lambda: read_records(out), 10, "the handler to start")
    assert queue.state(job_id) == "reserved"

    worker.signal(signal.SIGKILL)
    # beanstalkd returns it when the dead worker's connection closes, not at its TTR (an
    # hour): no timeout counted.
    wait_for(lambda: queue.state(job_id) == "ready", 30, "the job back in ready")
    stats = queue.stats(job_id)
    assert stats is not None and (stats["timeouts"], stats["reserves"]) == (0, 1)

    record = "work=handlers_for_tests:record"
    rescuer = spawn_worker("--server", queue.server.address, "--tube", record)
    wait_for(lambda: queue.state(job_id) is None, 10, "another worker to finish it")
    assert [r["event"] for r in read_records(out)] == ["started", "done"]
    assert rescuer.proc.poll() is None
