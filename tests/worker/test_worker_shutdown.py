"""SIGTERM / SIGINT on a real ``beanfleet work`` process: warm shutdown finishes and deletes
the running job, a second signal hands it back at once, an idle worker exits within 1 s.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from worker_support import Queue, WorkerProcess, read_records, wait_for

pytestmark = pytest.mark.timeout(60)

SLOW = "work=handlers_for_tests:slow"


def _started(out: Path, job_id: int) -> bool:
    return any(r["event"] == "started" and r["id"] == job_id for r in read_records(out))


def test_first_signal_finishes_and_deletes_the_running_job(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    out, go = tmp_path / "out", tmp_path / "go"
    running = queue.put("work", {"out": str(out), "go": str(go), "seconds": 30})
    waiting = queue.put("work", {"out": str(out)})
    worker = spawn_worker("--server", queue.server.address, "--tube", SLOW)
    wait_for(lambda: _started(out, running), 10, "the handler to start")

    worker.signal(signal.SIGTERM)
    [line] = worker.wait_log("event=stopping")  # the signal was seen...
    assert f"finishing job {running}" in line
    assert worker.proc.poll() is None, "exited before its job finished"  # ...and it stays
    go.touch()  # let the handler finish

    assert worker.wait_exit(10) == 0
    assert [r["event"] for r in read_records(out)] == ["started", "done"]
    assert queue.state(running) is None  # deleted
    stats = queue.stats(waiting)
    assert stats is not None and stats["state"] == "ready" and stats["reserves"] == 0
    assert any(f"job={running} " in line and "outcome=deleted" in line for line in worker.lines())


def test_second_signal_releases_the_running_job_at_once(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job_id = queue.put("work", {"out": str(out), "seconds": 60}, priority=321)
    worker = spawn_worker("--server", queue.server.address, "--tube", SLOW)
    wait_for(lambda: _started(out, job_id), 10, "the handler to start")

    worker.signal(signal.SIGTERM)
    # Two signals sent back to back may merge into one (kernel and CPython both coalesce a
    # pending signal), so send the second once the first was seen.
    worker.wait_log("event=stopping")
    worker.signal(signal.SIGTERM)
    signalled = time.monotonic()
    assert worker.wait_exit(10) == 0
    assert time.monotonic() - signalled < 2.0  # at once, not after the 60 s handler

    stats = queue.stats(job_id)
    assert stats is not None
    assert stats["state"] == "ready"  # released with no delay: another worker can take it
    assert stats["pri"] == 321  # priority kept
    assert stats["releases"] == 1
    assert [r["event"] for r in read_records(out)] == ["started"]  # never finished
    assert any(f"job={job_id} " in line and "outcome=released" in line for line in worker.lines())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_idle_worker_exits_within_a_second(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], sig: int
) -> None:
    worker = spawn_worker("--server", queue.server.address, "--tube", SLOW)
    # Idle = watching the tube and blocked in a reserve.
    wait_for(lambda: queue.tube_stats("work")["current-waiting"] == 1, 10, "a waiting reserve")

    signalled = time.monotonic()
    worker.signal(sig)
    assert worker.wait_exit(5) == 0
    elapsed = time.monotonic() - signalled
    assert elapsed < 1.0, f"idle worker took {elapsed:.2f}s to exit"
    # Nothing was left reserved by the abandoned reserve.
    wait_for(lambda: queue.tube_stats("work")["current-watching"] == 0, 5, "no watchers")


def test_signal_while_idle_leaves_later_jobs_untouched(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    worker = spawn_worker("--server", queue.server.address, "--tube", SLOW)
    wait_for(lambda: queue.tube_stats("work")["current-waiting"] == 1, 10, "a waiting reserve")
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit(5) == 0
    job_id = queue.put("work", {"out": str(tmp_path / "out")})
    stats = queue.stats(job_id)
    assert stats is not None and stats["state"] == "ready" and stats["reserves"] == 0
