"""The per-host running records (beanfleet.work.crashguard): a job no record names starts with no
stats-job at all, ``job.attempt`` is still right when a handler reads it, a record left by a
dead worker sends the job down the counted path, and stale records are pruned at start."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from beanfleet.names import parse_server
from worker_support import Queue, WorkerProcess, read_records, wait_for

pytestmark = pytest.mark.timeout(90)


def _record_dir(queue: Queue, state: Path) -> Path:
    host, port = parse_server(queue.server.address)
    return state / "running" / f"{host}_{port}"


def _leave_record(queue: Queue, state: Path, pid: int, job_id: int) -> Path:
    """The file a worker with ``pid`` leaves when it dies running ``job_id``."""
    directory = _record_dir(queue, state)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / str(pid)
    path.write_text(f"{job_id:20d}\n")
    return path


@pytest.mark.parametrize("prefetch", [False, True], ids=["plain", "prefetch"])
def test_jobs_with_no_record_run_without_any_stats_job(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path, prefetch: bool
) -> None:
    count = 50
    for _ in range(count):
        queue.put("work", {})
    before = queue.server_stats()
    args = ["--server", queue.server.address, "--tube", "work=handlers_for_tests:noop"]
    worker = spawn_worker(*args, *(["--prefetch"] if prefetch else []))
    # Counted by the server's own counters (the test asks with `stats`, never `stats-job`).
    wait_for(
        lambda: queue.server_stats()["cmd-delete"] == before["cmd-delete"] + count,
        30,
        "every job deleted",
    )
    after = queue.server_stats()
    assert after["cmd-stats-job"] == before["cmd-stats-job"]
    assert after["cmd-reserve-with-timeout"] - before["cmd-reserve-with-timeout"] >= count
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit() == 0
    assert list(_record_dir(queue, tmp_path / "state").iterdir()) == []  # removed at exit


@pytest.mark.parametrize("prefetch", [False, True], ids=["plain", "prefetch"])
def test_a_handler_reading_attempt_gets_every_retry_counted(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path, prefetch: bool
) -> None:
    out = tmp_path / "out"
    job_id = queue.put("work", {"out": str(out)})
    worker = spawn_worker(
        *(["--prefetch"] if prefetch else []),
        "--server",
        queue.server.address,
        "--tube",
        "work=handlers_for_tests:fail",
        "--max-retries",
        "2",
        "--backoff-base",
        "0",
    )
    wait_for(lambda: queue.state(job_id) == "buried", 30, "the job buried")
    assert [(r["id"], r["attempt"]) for r in read_records(out)] == [(job_id, n) for n in (1, 2, 3)]
    [buried] = [line for line in worker.wait_outcomes(job_id, count=3) if "buried" in line]
    assert "attempt=3" in buried and "retries exhausted after 3 attempts" in buried
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit() == 0


def test_a_record_left_behind_makes_the_next_start_count_the_attempts(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    """A record as a dead worker leaves it: the job's counters are asked (the crash-loop
    check), it runs with its attempt known, and the record is gone afterwards."""
    out = tmp_path / "out"
    job_id = queue.put("work", {"out": str(out)})
    record = _leave_record(queue, tmp_path / "state", 999_999_991, job_id)
    before = queue.server_stats()["cmd-stats-job"]
    worker = spawn_worker(
        "--server", queue.server.address, "--tube", "work=handlers_for_tests:record"
    )
    [line] = worker.wait_outcomes(job_id)
    assert "outcome=deleted" in line and "attempt=1" in line  # known before it started
    assert [(r["event"], r["attempt"]) for r in read_records(out)] == [("done", 1)]
    # The prune at start (job exists: kept) and the start itself: one stats-job each.
    assert queue.server_stats()["cmd-stats-job"] - before == 2
    assert record.exists()  # pruned once beanstalkd no longer has the job
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit() == 0


def test_stale_records_are_pruned_at_start(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    alive = queue.put("elsewhere", {})  # a job in a tube this worker does not watch
    old = queue.put("elsewhere", {})
    gone = queue.put("elsewhere", {})
    queue.client.delete(gone)
    paths = {
        job_id: _leave_record(queue, state, pid, job_id)
        for pid, job_id in ((999_999_991, alive), (999_999_992, old), (999_999_993, gone))
    }
    two_days_ago = time.time() - 2 * 86400
    os.utime(paths[old], (two_days_ago, two_days_ago))
    worker = spawn_worker(
        "--server", queue.server.address, "--tube", "work=handlers_for_tests:noop"
    )
    wait_for(
        lambda: (
            {p.name for p in _record_dir(queue, state).iterdir()} == {"999999991", str(worker.pid)}
        ),
        10,
        "the old and the gone record pruned",
    )
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit() == 0


def test_an_unusable_state_directory_is_one_line(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory\n")
    worker = spawn_worker(
        "--server",
        queue.server.address,
        "--tube",
        "work=handlers_for_tests:noop",
        "--state-dir",
        str(blocker / "sub"),
    )
    assert worker.wait_exit() != 0
    [line] = worker.lines()
    assert "cannot use state directory" in line
