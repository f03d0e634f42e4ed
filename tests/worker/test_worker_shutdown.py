"""SIGTERM / SIGINT on a real ``beanfleet work`` process: warm shutdown finishes and deletes
the running job, a second signal hands it back without waiting for the handler, an idle
worker exits and takes no job on its way out.  (How fast is `make bench`'s business.)
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from worker_support import Queue, WorkerProcess, read_records, wait_for

pytestmark = pytest.mark.timeout(60)

SLOW = "work=handlers_for_tests:slow"
RECORD = "work=handlers_for_tests:record"


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
    assert worker.wait_exit(10) == 0  # the handler sleeps 60 s: it did not wait for it

    stats = queue.stats(job_id)
    assert stats is not None
    assert stats["state"] == "ready"  # released with no delay: another worker can take it
    assert stats["pri"] == 321  # priority kept
    assert stats["releases"] == 1
    assert [r["event"] for r in read_records(out)] == ["started"]  # never finished
    assert any(f"job={job_id} " in line and "outcome=released" in line for line in worker.lines())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_idle_worker_exits_on_a_signal_and_takes_no_job_on_its_way_out(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path, sig: int
) -> None:
    out = tmp_path / "out"
    worker = spawn_worker("--server", queue.server.address, "--tube", RECORD)
    # Idle = watching the tube and blocked in a reserve.
    wait_for(lambda: queue.tube_stats("work")["current-waiting"] == 1, 10, "a waiting reserve")

    worker.signal(sig)
    # A job put while the worker stops may reach its abandoned reserve; it must not run,
    # and it must be ready again once the worker is gone.
    job_id = queue.put("work", {"out": str(out)})
    assert worker.wait_exit(10) == 0
    assert read_records(out) == []
    assert queue.state(job_id) == "ready"
    assert "worker exiting: " + signal.Signals(sig).name in worker.lines()[-1]
