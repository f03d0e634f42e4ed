"""beanstalkd going away under a real ``beanfleet work`` process (kill -9 and restart on the
same port and binlog): the worker reconnects, re-watches, finishes what it can, never dies.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import greenstalk
import pytest
from beanstalkd_server import Beanstalkd
from worker_support import Queue, WorkerProcess, read_records, wait_for

pytestmark = pytest.mark.timeout(60)

RECORD = "work=handlers_for_tests:record"
SLOW = "work=handlers_for_tests:slow"


def _restart_hard(queue: Queue) -> None:
    queue.server.kill()  # kill -9: what is in the binlog is what comes back
    queue.reset()
    queue.server.start()


def test_reconnects_after_beanstalkd_restart_and_rewatches(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    worker = spawn_worker("--server", queue.server.address, "--tube", RECORD)
    first = queue.put("work", {"out": str(out)})
    wait_for(lambda: queue.state(first) is None, 10, "the first job to be done")

    _restart_hard(queue)
    worker.wait_log("event=connection-lost")
    worker.wait_log("event=connected", count=2)
    # Re-watched the right tube, and only it.
    wait_for(lambda: queue.tube_stats("work")["current-watching"] == 1, 10, "a watcher")
    in_default = queue.put("default", {"out": str(out)})
    second = queue.put("work", {"out": str(out)})
    wait_for(lambda: queue.state(second) is None, 10, "the second job to be done")
    assert [r["id"] for r in read_records(out)] == [first, second]
    assert queue.state(in_default) == "ready"
    assert worker.proc.poll() is None


def _restart_under_a_running_job(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> tuple[Path, Path, int, WorkerProcess]:
    """A worker runs a slow job (until the ``go`` file exists) when beanstalkd is killed
    and restarted: (records file, go file, job id, worker)."""
    out, go = tmp_path / "out", tmp_path / "go"
    job_id = queue.put("work", {"out": str(out), "go": str(go), "seconds": 30})
    worker = spawn_worker("--server", queue.server.address, "--tube", SLOW)
    wait_for(lambda: read_records(out), 10, "the handler to start")
    _restart_hard(queue)
    return out, go, job_id, worker


def test_job_that_succeeded_while_disconnected_is_deleted_after_reconnecting(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    out, go, job_id, worker = _restart_under_a_running_job(queue, spawn_worker, tmp_path)
    # Replayed from the binlog: the reservation died with the old server.
    wait_for(lambda: queue.state(job_id) == "ready", 10, "the job replayed as ready")
    go.touch()

    wait_for(lambda: queue.state(job_id) is None, 10, "the worker to delete it")
    [line] = worker.wait_outcomes(job_id)
    assert "outcome=deleted" in line and "after reconnecting" in line
    assert [r["event"] for r in read_records(out)] == ["started", "done"]  # ran once
    assert worker.proc.poll() is None


def test_job_taken_by_another_worker_meanwhile_is_not_fatal(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    out, go, job_id, worker = _restart_under_a_running_job(queue, spawn_worker, tmp_path)
    other = greenstalk.Client(queue.server.pair, encoding=None, watch="work")
    try:
        assert other.reserve(timeout=5).id == job_id  # "another worker" has it now
        go.touch()
        [line] = worker.wait_outcomes(job_id)
        assert "outcome=lost" in line and "another worker has it" in line
        assert queue.state(job_id) == "reserved"  # untouched: still the other worker's

        later = queue.put("work", {"out": str(out), "seconds": 0})
        wait_for(lambda: queue.state(later) is None, 10, "the worker to carry on")
    finally:
        other.close()
    assert worker.proc.poll() is None


def test_server_down_at_start_is_retried_with_backoff(
    spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    server = Beanstalkd(binlog_dir=tmp_path / "late-binlog")  # not started yet
    try:
        worker = spawn_worker("--server", server.address, "--tube", RECORD)
        lines = worker.wait_log("event=connect-failed", count=3)
        assert f"cannot connect to beanstalkd at {server.address}: connection refused" in lines[0]
        assert "retrying in" in lines[0]

        server.start()
        queue = Queue(server)
        try:
            job_id = queue.put("work", {"out": str(tmp_path / "out")})
            wait_for(lambda: queue.state(job_id) is None, 15, "the job to be done")
        finally:
            queue.close()
        assert worker.proc.poll() is None
    finally:
        server.kill()


def test_signal_while_waiting_for_the_server_exits_at_once(
    spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    server = Beanstalkd(binlog_dir=None)  # never started: nothing listens on its port
    worker = spawn_worker("--server", server.address, "--tube", RECORD)
    worker.wait_log("event=connect-failed", count=2)
    worker.signal(signal.SIGTERM)
    # It stops between connect tries (the backoff sleep looks at the flag), without one
    # more try after the signal was seen.
    assert worker.wait_exit(10) == 0
    lines = worker.lines()
    assert "worker exiting: SIGTERM" in lines[-1]
    assert "event=connect-failed" not in lines[-2]
