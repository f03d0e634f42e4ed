"""SIGTERM / SIGINT on a real ``beanfleet work`` process: warm shutdown finishes and deletes
the running job, a second signal hands it back without waiting for the handler, an idle
worker exits and takes no job on its way out.  (How fast is `make bench`'s business.)
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from worker_support import Queue, WorkerProcess, graceful_stop, read_records, started, wait_for

pytestmark = pytest.mark.timeout(60)

SLOW = "work=handlers_for_tests:slow"
RECORD = "work=handlers_for_tests:record"


def test_first_signal_finishes_and_deletes_the_running_job(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    graceful_stop(queue, spawn_worker, tmp_path, signal.SIGTERM)


def test_second_signal_releases_the_running_job_at_once(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job_id = queue.put("work", {"out": str(out), "seconds": 60}, priority=321)
    worker = spawn_worker("--server", queue.server.address, "--tube", SLOW)
    wait_for(lambda: started(out, job_id), 10, "the handler to start")

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
