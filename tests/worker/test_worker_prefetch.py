"""``--prefetch``: the worker reserves the next job while a handler runs.  It must still run
every job once, in priority order, and never keep a job it has not started: it gives the
job back when it stops or when the current job runs long, without counting an attempt.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from beanfleet.metrics.worker import WorkerMetrics
from beanfleet.names import parse_server
from beanfleet.wire.connection import Connection
from beanfleet.work.events import Observer
from beanfleet.work.handlers import JobInfo
from beanfleet.work.job import Job
from beanfleet.work.loop import Worker
from worker_support import Queue, WorkerProcess, read_records, run_worker, wait_for

pytestmark = pytest.mark.timeout(60)

SLOW = "work=handlers_for_tests:slow"
RECORD = "work=handlers_for_tests:record"


def attempts_of(seen: list[tuple[int, Any]]) -> Callable[[Any, JobInfo], None]:
    def handler(data: Any, job: JobInfo) -> None:
        seen.append((job.id, job.attempt))

    return handler


def _recorder(seen: list[tuple[int, Any]]) -> Callable[[Any, JobInfo], None]:
    def handler(data: Any, job: JobInfo) -> None:
        seen.append((job.id, data))

    return handler


def test_prefetch_runs_every_job_once_in_priority_order(queue: Queue) -> None:
    priorities = [(n * 7) % 3 * 100 for n in range(300)]  # 0, 100, 200 mixed
    put = [(queue.put("work", {"n": n}, priority=pri), pri) for n, pri in enumerate(priorities)]
    seen: list[tuple[int, Any]] = []

    reason, lines = run_worker(
        queue.server.address, {"work": _recorder(seen)}, max_jobs=len(put), prefetch=True
    )

    assert reason.startswith("max-jobs")
    expected = [job_id for job_id, _ in sorted(put, key=lambda p: (p[1], p[0]))]
    assert [job_id for job_id, _ in seen] == expected
    assert sum("outcome=deleted" in line for line in lines) == len(put)
    stats = queue.tube_stats("work")
    assert (stats["current-jobs-ready"], stats["current-jobs-reserved"]) == (0, 0)
    assert stats["total-jobs"] == len(put)  # no job was made twice


def test_stop_gives_the_prefetched_job_back_unstarted(queue: Queue) -> None:
    first = queue.put("work", {"n": 1}, priority=100)
    second = queue.put("work", {"n": 2}, priority=2000)
    seen: list[tuple[int, Any]] = []
    workers: list[Worker] = []

    def stop_after_first(data: Any, job: JobInfo) -> None:
        seen.append((job.id, data))
        workers[0].request_stop("test stop")

    reason, lines = run_worker(
        queue.server.address,
        {"work": stop_after_first},
        prefetch=True,
        before_run=workers.append,
    )

    assert reason == "test stop"
    assert seen == [(first, {"n": 1})]
    assert queue.state(first) is None  # done and deleted before the worker left
    stats = queue.stats(second)
    assert stats is not None
    # It was reserved (prefetched) and handed back: ready, same priority, and its one
    # reservation marked as not started by the bury before the kick (retry.attempt_of).
    assert (stats["state"], stats["pri"], stats["reserves"]) == ("ready", 2000, 1)
    assert (stats["releases"], stats["buries"], stats["kicks"]) == (0, 1, 1)
    attempts: list[tuple[int, Any]] = []
    run_worker(queue.server.address, {"work": attempts_of(attempts)}, max_jobs=1)
    assert attempts == [(second, 1)]
    assert any(f"job={second} " in line and "prefetched, not started" in line for line in lines)


def test_prefetched_job_is_handed_back_when_the_current_job_runs_long(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    out, go = tmp_path / "out", tmp_path / "go"
    long_job = queue.put("work", {"out": str(out), "go": str(go), "seconds": 30}, priority=100)
    waiting = queue.put("work", {"out": str(out), "seconds": 0}, priority=1024)
    first = spawn_worker("--server", queue.server.address, "--tube", SLOW, "--prefetch")
    wait_for(lambda: read_records(out), 10, "the long job to start")

    # Handed back once the long job runs past the heartbeat: ready again, same priority,
    # the reservation marked as not started by its bury (then kicked).
    def handed_back() -> dict[str, Any] | None:
        stats = queue.stats(waiting)
        return stats if stats and stats["state"] == "ready" and stats["reserves"] else None

    stats = wait_for(handed_back, 10, "the prefetched job to be handed back")
    assert (stats["reserves"], stats["releases"], stats["buries"], stats["kicks"]) == (1, 0, 1, 1)
    assert stats["pri"] == 1024

    # Another worker takes it while the long job still runs; it is that job's attempt 1.
    second = spawn_worker("--server", queue.server.address, "--tube", SLOW)
    wait_for(lambda: queue.state(waiting) is None, 10, "the second worker to do it")
    records = read_records(out)
    done = [r for r in records if r["id"] == waiting and r["event"] == "done"]
    assert [(r["pid"], r["attempt"]) for r in done] == [(second.pid, 1)]
    assert not any(r["id"] == long_job and r["event"] == "done" for r in records)

    go.touch()
    wait_for(lambda: queue.state(long_job) is None, 10, "the long job to finish")
    assert first.proc.poll() is None
    assert any(f"job={waiting} " in line and "outcome=returned" in line for line in first.lines())


def test_a_handler_runs_with_at_most_two_jobs_held_and_no_stats_round_trip(
    queue: Queue,
) -> None:
    ids = [queue.put("work", {"n": n}) for n in range(12)]
    reserved_while_running: list[int] = []

    def handler(data: Any, job: JobInfo) -> None:
        reserved_while_running.append(queue.tube_stats("work")["current-jobs-reserved"])

    before = queue.server_stats()["cmd-stats-job"]
    run_worker(queue.server.address, {"work": handler}, max_jobs=len(ids), prefetch=True)
    # The running job plus at most two held: one with its counters asked, one reserved.
    assert max(reserved_while_running) == 3 and min(reserved_while_running) >= 1
    # One stats-job per job, each asked a job before it starts (in the write that carries
    # the reserves), so no job waits for its own.
    assert queue.server_stats()["cmd-stats-job"] - before == len(ids)
    assert all(queue.state(job_id) is None for job_id in ids)


class _Waits(Observer):
    """Records the jobs whose start waited a round trip for their own stats-job."""

    def __init__(self) -> None:
        self.waited: list[int] = []

    def job_started(self, job: Job) -> None:
        if job.waited:
            self.waited.append(job.ref)


def test_the_metrics_wait_sample_is_asked_a_job_ahead_at_most_once_per_interval(
    queue: Queue, tmp_path: Path
) -> None:
    # One tube and a state directory: only the wait sample asks stats-job.  Its job is
    # picked while held, so its stats-job rides an earlier write; only the first two jobs,
    # never held before they start (nothing was reserved ahead yet), may wait for theirs.
    interval = 0.05
    ids = [queue.put("work", {"n": n}) for n in range(16)]
    waits = _Waits()
    before = queue.server_stats()["cmd-stats-job"]
    began = time.monotonic()
    run_worker(
        queue.server.address,
        {"work": lambda data, job: time.sleep(0.02)},
        max_jobs=len(ids),
        prefetch=True,
        state_dir=tmp_path / "state",
        metrics=WorkerMetrics(tmp_path / "metrics", "p", sample_interval=interval),
        observers=[waits],
    )
    elapsed = time.monotonic() - began
    asked = queue.server_stats()["cmd-stats-job"] - before
    assert 2 <= asked <= 1 + elapsed / interval
    assert set(waits.waited) <= set(ids[:2])
    assert all(queue.state(job_id) is None for job_id in ids)


def test_a_hand_back_whose_worker_is_gone_before_the_server_reads_it_strands_nothing(
    queue: Queue,
) -> None:
    # The hand-back's bury and kick-job go in one write.  The worker dies right after it,
    # before beanstalkd (stopped here) has read a byte: beanstalkd still runs both, so the
    # job is ready, not left buried, and its reservation is not counted as an attempt.
    job_id = queue.put("work", {}, priority=7)
    conn = Connection(parse_server(queue.server.address))
    server = queue.server.proc
    assert server is not None
    try:
        conn.send([b"watch work", b"reserve-with-timeout 0"])
        conn.expect(b"WATCHING")
        _, values = conn.expect(b"RESERVED")
        conn.read_chunk(int(values[1]))
        server.send_signal(signal.SIGSTOP)
        conn.send([b"bury %d 7" % job_id, b"kick-job %d" % job_id])
    finally:
        conn.close()
        server.send_signal(signal.SIGCONT)
    wait_for(lambda: queue.state(job_id) == "ready", 10, "the handed-back job to be ready")
    stats = queue.stats(job_id)
    assert stats is not None
    assert (stats["pri"], stats["buries"], stats["kicks"], stats["releases"]) == (7, 1, 1, 0)
    attempts: list[tuple[int, Any]] = []
    run_worker(queue.server.address, {"work": attempts_of(attempts)}, max_jobs=1)
    assert attempts == [(job_id, 1)]


def test_prefetch_survives_a_server_restart_mid_stream_without_repeats(queue: Queue) -> None:
    ids = [queue.put("work", {"n": n}) for n in range(100)]
    runs: dict[int, int] = {}
    workers: list[Worker] = []

    def handler(data: Any, job: JobInfo) -> None:
        runs[data["n"]] = runs.get(data["n"], 0) + 1
        if data["n"] == 40 and runs[40] == 1:
            # kill -9 and restart on the same port and binlog while a job is prefetched
            # and the previous job's delete is still owed.
            queue.server.kill()
            queue.reset()
            queue.server.start()
        if len(runs) == len(ids):
            workers[0].request_stop("all done")

    reason, lines = run_worker(
        queue.server.address, {"work": handler}, prefetch=True, before_run=workers.append
    )

    assert reason == "all done"
    assert sorted(runs) == list(range(100))
    assert {n: c for n, c in runs.items() if c > 1} == {}
    assert any("event=connection-lost" in line for line in lines)
    assert [job_id for job_id in ids if queue.state(job_id) is not None] == []


def test_sigterm_during_a_stream_loses_and_repeats_nothing(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    # The handler reads job.attempt (a stats-job while prefetch replies are owed).
    out = tmp_path / "out"
    ids = [queue.put("work", {"out": str(out)}) for _ in range(600)]
    for target in (150, 300, None):
        worker = spawn_worker("--server", queue.server.address, "--tube", RECORD, "--prefetch")
        if target is not None:
            wait_for(lambda n=target: len(read_records(out)) >= n, 20, f"{target} jobs done")
            worker.signal(signal.SIGTERM)
            assert worker.wait_exit(10) == 0
            # It held a prefetched job when it stopped, and gave it back unstarted.
            assert any("prefetched, not started; worker stopping" in x for x in worker.lines())
    wait_for(lambda: len(read_records(out)) >= len(ids), 30, "every job to be done")
    wait_for(lambda: queue.tube_stats("work")["current-jobs-reserved"] == 0, 10, "deletes")
    records = read_records(out)
    assert sorted(r["id"] for r in records) == ids  # each once
    assert {r["attempt"] for r in records} == {1}
    stats = queue.tube_stats("work")
    assert (stats["current-jobs-ready"], stats["total-jobs"]) == (0, len(ids))
