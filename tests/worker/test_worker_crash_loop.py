"""A job that kills its worker (kill -9, OOM, a crash in C code) is buried after
max-retries + 1 starts, counted from beanstalkd's own counters, under a process manager that
restarts the worker each time."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from worker_support import Queue, WorkerProcess, read_records, wait_for

pytestmark = pytest.mark.timeout(90)

KILLER = "work=handlers_for_tests:kill_worker"


def test_a_job_that_kills_its_worker_is_buried_after_max_retries_plus_one_starts(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job_id = queue.put("work", {"out": str(out)}, priority=12)
    max_retries = 2
    # The supervising loop: restart the worker whenever it dies, as systemd/supervisor do,
    # until the job is buried (bounded, so a broken worker fails the test).
    workers: list[WorkerProcess] = []
    while queue.state(job_id) != "buried" and len(workers) < max_retries + 3:
        worker = spawn_worker(
            "--server", queue.server.address, "--tube", KILLER, "--max-retries", str(max_retries)
        )
        workers.append(worker)
        wait_for(
            lambda w=worker: w.proc.poll() is not None or queue.state(job_id) == "buried",
            30,
            "the worker to die or bury the job",
        )

    starts = [(r["event"], r["id"], r["attempt"]) for r in read_records(out)]
    assert starts == [("started", job_id, n) for n in range(1, max_retries + 2)]
    assert [w.proc.returncode for w in workers] == [-signal.SIGKILL] * (max_retries + 1) + [None]
    # The last worker buried it before it could start a fourth time, and lives on.
    [line] = workers[-1].wait_outcomes(job_id)
    assert f"attempt={max_retries + 2}" in line and "outcome=buried" in line
    assert "the worker died" in line and f"{max_retries + 1} attempts ended with no outcome" in line
    stats = queue.stats(job_id)
    assert stats is not None
    assert (stats["state"], stats["pri"], stats["buries"]) == ("buried", 12, 1)
    workers[-1].signal(signal.SIGTERM)
    assert workers[-1].wait_exit() == 0
