"""Worker metrics: real `beanfleet work` processes write them, a real
`beanfleet metrics-endpoint` serves their sum, scraped over HTTP."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import greenstalk
import pytest
from scraping import Samples, Served
from worker_support import Queue, WorkerProcess, beanfleet_argv, read_records, wait_for

HANDLERS = "handlers_for_tests"


def Endpoint(directory: Path) -> Served:
    """``beanfleet metrics-endpoint`` as a child process on a port of its own choosing."""
    return Served([*beanfleet_argv(), "metrics-endpoint", "--dir", str(directory)])


@pytest.fixture
def metrics_dir(tmp_path: Path) -> Path:
    return tmp_path / "metrics"


@pytest.fixture
def endpoint(metrics_dir: Path) -> Iterator[Served]:
    running = Endpoint(metrics_dir)
    try:
        yield running
    finally:
        running.stop()


def at(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


def jobs(s: Samples, pool: str, tube: str, outcome: str) -> float:
    key = ("beanfleet_worker_jobs_total", (("outcome", outcome), ("pool", pool), ("tube", tube)))
    return s.get(key, 0.0)


def pool_series(s: Samples, name: str, pool: str) -> float | None:
    return s.get((name, (("pool", pool),)))


def test_every_outcome_is_counted(
    queue: Queue,
    spawn_worker: Callable[..., WorkerProcess],
    endpoint: Served,
    metrics_dir: Path,
    tmp_path: Path,
) -> None:
    worker = spawn_worker(
        "--server", queue.server.address,
        "--tube", f"ok={HANDLERS}:record",
        "--tube", f"bad={HANDLERS}:fail",
        "--max-retries", "1", "--backoff-base", "0", "--backoff-cap", "0",
        "--metrics-dir", str(metrics_dir), "--pool", "mixed",
    )  # fmt: skip
    out = str(tmp_path / "out.jsonl")
    for _ in range(3):
        queue.put("ok", {"out": out})
    failing = queue.put("bad", {"out": out})
    worker.wait_outcomes(failing, count=2)

    def counted() -> Samples | None:
        s = endpoint.scrape()
        done = jobs(s, "mixed", "ok", "deleted") == 3 and jobs(s, "mixed", "bad", "buried") == 1
        return s if done else None

    s = wait_for(counted, 10, "the outcomes in a scrape")
    assert jobs(s, "mixed", "bad", "retried") == 1
    assert jobs(s, "mixed", "ok", "retried") == 0
    assert pool_series(s, "beanfleet_worker_processes", "mixed") == 1
    ok = {"pool": "mixed", "tube": "ok"}
    assert s[at("beanfleet_worker_job_duration_seconds_count", **ok)] == 3
    assert s[at("beanfleet_worker_job_duration_seconds_bucket", le="+Inf", **ok)] == 3
    # Several tubes watched: every job's stats-job is asked before it starts, so each
    # start is in the attempts sample, and first attempts in the wait sample.
    bad = {"pool": "mixed", "tube": "bad"}
    assert s[at("beanfleet_worker_job_attempts_count", **bad)] == 2
    assert s[at("beanfleet_worker_job_attempts_bucket", le="1.0", **bad)] == 1
    assert s[at("beanfleet_worker_job_wait_seconds_count", **ok)] == 3
    assert s[at("beanfleet_worker_job_wait_seconds_count", **bad)] == 1  # first attempts only
    # Never a job id in a label.
    for _, labels in s:
        assert {name for name, _ in labels} <= {"pool", "tube", "outcome", "le"}


def test_a_job_whose_outcome_cannot_be_applied_is_lost(
    queue: Queue,
    spawn_worker: Callable[..., WorkerProcess],
    endpoint: Served,
    metrics_dir: Path,
    tmp_path: Path,
) -> None:
    out, go = tmp_path / "out", tmp_path / "go"
    job_id = queue.put("work", {"out": str(out), "go": str(go), "seconds": 30})
    worker = spawn_worker(
        "--server", queue.server.address, "--tube", f"work={HANDLERS}:slow",
        "--metrics-dir", str(metrics_dir), "--pool", "p",
    )  # fmt: skip
    wait_for(lambda: read_records(out), 10, "the handler to start")
    queue.server.kill()  # the reservation dies with the server; the binlog keeps the job
    queue.reset()
    queue.server.start()
    other = greenstalk.Client(queue.server.pair, encoding=None, watch="work")
    try:
        assert other.reserve(timeout=10).id == job_id  # another worker has it now
        go.touch()
        [line] = worker.wait_outcomes(job_id)
        assert "outcome=lost" in line
        wait_for(lambda: jobs(endpoint.scrape(), "p", "work", "lost") == 1, 10, "a lost job")
        s = endpoint.scrape()
        assert jobs(s, "p", "work", "deleted") == 0
        assert s[at("beanfleet_worker_job_duration_seconds_count", pool="p", tube="work")] == 1
    finally:
        other.close()


def test_two_processes_are_summed_and_a_dead_ones_gauge_goes(
    queue: Queue,
    spawn_worker: Callable[..., WorkerProcess],
    endpoint: Served,
    metrics_dir: Path,
    tmp_path: Path,
) -> None:
    args = ["--server", queue.server.address, "--tube", f"ok={HANDLERS}:record"]
    args += ["--metrics-dir", str(metrics_dir), "--pool", "p"]
    first, second = spawn_worker(*args), spawn_worker(*args)
    for worker in (first, second):
        worker.wait_log("event=connected")
    out = tmp_path / "out.jsonl"
    for _ in range(40):
        queue.put("ok", {"out": str(out)})
    wait_for(lambda: jobs(endpoint.scrape(), "p", "ok", "deleted") == 40, 10, "40 deleted jobs")
    pids = {line.split('"pid": ')[1].split("}")[0] for line in out.read_text().splitlines()}
    assert pids == {str(first.pid), str(second.pid)}, "both workers must have run jobs"
    assert pool_series(endpoint.scrape(), "beanfleet_worker_processes", "p") == 2

    first.signal(signal.SIGKILL)  # no chance to remove its own files
    first.wait_exit()
    s = wait_for(
        lambda: (
            (s := endpoint.scrape())
            and pool_series(s, "beanfleet_worker_processes", "p") == 1
            and s
        ),
        10,
        "the dead worker's gauge to go",
    )
    assert jobs(s, "p", "ok", "deleted") == 40, "a dead worker's counts stay"
    # Its files were folded into the archive: no file of its pid is left.
    assert not [p for p in os.listdir(metrics_dir) if p.endswith(f"_{first.pid}.db")]
    assert "counter_archive.db" in os.listdir(metrics_dir)

    second.signal(signal.SIGTERM)
    assert second.wait_exit() == 0
    s = endpoint.scrape()
    assert pool_series(s, "beanfleet_worker_processes", "p") in (None, 0)
    assert jobs(s, "p", "ok", "deleted") == 40


@pytest.mark.parametrize("prefetch", [False, True], ids=["plain", "prefetch"])
def test_recycles_and_the_wait_sample_of_the_fast_path(
    queue: Queue,
    spawn_worker: Callable[..., WorkerProcess],
    endpoint: Served,
    metrics_dir: Path,
    prefetch: bool,
) -> None:
    count = 200
    worker = spawn_worker(
        "--server", queue.server.address, "--tube", f"one={HANDLERS}:noop",
        "--max-jobs", str(count), "--metrics-dir", str(metrics_dir),
        *(["--prefetch"] if prefetch else []),
    )  # fmt: skip
    for _ in range(count):
        queue.put("one", {})
    assert worker.wait_exit(timeout=30) == 0  # max-jobs reached
    s = endpoint.scrape()
    assert jobs(s, "one", "one", "deleted") == count  # the pool defaults to the tubes
    assert pool_series(s, "beanfleet_worker_recycles_total", "one") == 1
    assert pool_series(s, "beanfleet_worker_processes", "one") in (None, 0)
    # One tube and a state directory: no stats-job per job, at most one a second (the
    # first job is always sampled).
    sample = {"pool": "one", "tube": "one"}
    sampled = s[at("beanfleet_worker_job_wait_seconds_count", **sample)]
    assert 1 <= sampled < count / 2
    assert s[at("beanfleet_worker_job_attempts_count", **sample)] == sampled
    assert s[at("beanfleet_worker_job_wait_seconds_bucket", le="+Inf", **sample)] == sampled


def test_without_a_metrics_dir_nothing_is_written(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    worker = spawn_worker("--server", queue.server.address, "--tube", f"one={HANDLERS}:noop")
    queue.put("one", {})
    worker.wait_log("outcome=deleted")
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit() == 0
    assert not list(tmp_path.rglob("*.db"))
