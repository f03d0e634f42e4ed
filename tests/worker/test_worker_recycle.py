"""--max-jobs / --max-time / --max-memory on a real ``beanfleet work`` process: the worker
exits 0 between jobs, after finishing (and deleting) the one it runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from worker_support import Queue, WorkerProcess, read_records, wait_for

pytestmark = pytest.mark.timeout(60)


def test_max_jobs(queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path) -> None:
    out = tmp_path / "out"
    ids = [queue.put("work", {"out": str(out)}) for _ in range(5)]
    worker = spawn_worker(
        "--server", queue.server.address, "--tube", "work=handlers_for_tests:record",
        "--max-jobs", "3",
    )  # fmt: skip
    assert worker.wait_exit(15) == 0
    assert [r["id"] for r in read_records(out)] == ids[:3]
    assert [queue.state(i) for i in ids] == [None, None, None, "ready", "ready"]
    assert any("max-jobs reached (3 jobs)" in line for line in worker.lines())


def test_max_time_while_idle(queue: Queue, spawn_worker: Callable[..., WorkerProcess]) -> None:
    started = time.monotonic()
    worker = spawn_worker(
        "--server", queue.server.address, "--tube", "work=handlers_for_tests:record",
        "--max-time", "1",
    )  # fmt: skip
    assert worker.wait_exit(10) == 0
    assert time.monotonic() - started >= 1.0  # never before its limit (how soon after: bench)
    assert any("max-time reached (1s)" in line for line in worker.lines())


def test_max_time_lets_the_running_job_finish(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    running = queue.put("work", {"out": str(out), "seconds": 1.5})
    waiting = queue.put("work", {"out": str(out), "seconds": 0})
    worker = spawn_worker(
        "--server", queue.server.address, "--tube", "work=handlers_for_tests:slow",
        "--max-time", "0.5",
    )  # fmt: skip
    assert worker.wait_exit(15) == 0
    assert [(r["event"], r["id"]) for r in read_records(out)] == [
        ("started", running),
        ("done", running),
    ]
    assert queue.state(running) is None  # deleted before the exit
    assert queue.state(waiting) == "ready"


def test_max_memory_counts_current_rss(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    small = queue.put("work", {"out": str(out), "mb": 0})
    big = queue.put("work", {"out": str(out), "mb": 200})  # held after the handler returns
    after = queue.put("work", {"out": str(out), "mb": 0})
    worker = spawn_worker(
        "--server", queue.server.address, "--tube", "work=handlers_for_tests:ballast",
        "--max-memory", "150",
    )  # fmt: skip
    assert worker.wait_exit(15) == 0
    assert [r["id"] for r in read_records(out)] == [small, big]  # went on after the small one
    assert queue.state(big) is None
    assert queue.state(after) == "ready"
    [line] = [line for line in worker.lines() if "max-memory reached" in line]
    assert ">= 150 MB" in line


def test_no_limit_keeps_serving(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    worker = spawn_worker(
        "--server", queue.server.address, "--tube", "work=handlers_for_tests:record"
    )
    ids = [queue.put("work", {"out": str(out)}) for _ in range(3)]
    wait_for(lambda: len(read_records(out)) == 3, 10, "three jobs done")
    assert [r["id"] for r in read_records(out)] == ids
    assert worker.proc.poll() is None
