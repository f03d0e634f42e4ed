"""Issue 18: attempt numbers and crash loops at the edges.  Real beanstalkd, real
``beanfleet work`` processes (killed, restarted and signalled as a process manager would).

The rule under test (README, "Attempts" and "Crash loops"): the attempt number is
``reserves - buries``; a job is buried before it starts as a crash loop only when a record of
another worker on this host names it (it really started there) and ``max-retries + 1`` of its
reservations ended with no release, bury or delete.  The same in every configuration.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import greenstalk
import pytest
from beanfleet.metrics.endpoint import make_registry
from beanfleet.names import parse_server
from beanfleet.work.crashguard import read_record
from beanfleet.work.handlers import JobInfo
from beanfleet.work.outcome import Decision, RetryPolicy
from beanstalkd_server import Beanstalkd
from prometheus_client import generate_latest
from scraping import parse
from worker_support import (
    Queue,
    WorkerProcess,
    beanfleet_argv,
    read_records,
    run_worker,
    wait_for,
)

pytestmark = pytest.mark.timeout(90)

HANDLERS = "handlers_for_tests"
CONFIGS = {
    "one-tube": [],
    "two-tubes": ["--tube", f"other={HANDLERS}:noop"],
    "metrics-dir": ["--metrics-dir", "{metrics}"],
    "two-servers": ["--server", "{second}"],
    "prefetch": ["--prefetch"],
}


def _config(name: str, tmp_path: Path, second: Beanstalkd | None = None) -> list[str]:
    values = {"{metrics}": str(tmp_path / "metrics")}
    if second is not None:
        values["{second}"] = second.address
    return [values.get(arg, arg) for arg in CONFIGS[name]]


def _client(queue: Queue, *tubes: str) -> greenstalk.Client[bytes]:
    """A client of its own that watches ``tubes`` (another producer's or worker's view)."""
    return greenstalk.Client(queue.server.pair, encoding=None, watch=list(tubes))


def _supervise(
    spawn: Callable[[], WorkerProcess], done: Callable[[], bool], most: int
) -> list[WorkerProcess]:
    """Restart the worker whenever it exits, as systemd/supervisor do, until ``done()``
    (at most ``most`` processes, so a broken worker fails the test instead of looping)."""
    workers: list[WorkerProcess] = []
    while not done() and len(workers) < most:
        worker = spawn()
        workers.append(worker)
        wait_for(
            lambda w=worker: w.proc.poll() is not None or done(),
            30,
            "the worker to exit or the job to settle",
        )
    return workers


@pytest.mark.parametrize("config", ["two-tubes", "metrics-dir"])
def test_a_prefetched_job_held_while_workers_die_is_never_buried_as_a_crash_loop(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path, config: str
) -> None:
    """Issue 18 item 3: with --prefetch, a job held (reserved, not started) each time
    another job kills the worker is not buried as a crash loop: only the killer is, after
    max-retries + 1 starts (default --max-retries), and the innocent job then runs once."""
    out = tmp_path / "out"
    killer = queue.put(
        "work",
        {"out": str(out), "kill": True, "server": queue.server.address, "held": 2},
        priority=10,
    )
    innocent = queue.put("work", {"out": str(out)}, priority=20)
    args = [
        "--server", queue.server.address, "--tube", f"work={HANDLERS}:kill_or_record",
        "--prefetch", *_config(config, tmp_path),
    ]  # fmt: skip
    workers = _supervise(
        lambda: spawn_worker(*args), lambda: queue.state(innocent) in (None, "buried"), most=6
    )

    records = read_records(out)
    assert [(r["id"], r["attempt"]) for r in records if r["id"] == killer] == [
        (killer, n) for n in (1, 2, 3, 4)
    ]
    # The innocent job was held by each of those four workers when it died: four
    # reservations with no outcome (they count as attempts), but it never started.
    assert [(r["event"], r["id"]) for r in records if r["id"] == innocent] == [("done", innocent)]
    assert queue.state(killer) == "buried"
    assert [w.proc.returncode for w in workers] == [-signal.SIGKILL] * 4 + [None]
    lines = workers[-1].wait_outcomes(killer) + workers[-1].wait_outcomes(innocent)
    assert "outcome=buried" in lines[0] and "the worker died" in lines[0]
    assert "outcome=deleted" in lines[1]
    workers[-1].signal(signal.SIGTERM)
    assert workers[-1].wait_exit() == 0


def _released_by_another_client(queue: Queue, job_ids: list[int], times: int) -> None:
    """Another client (PHP, Ruby, ...) reserves each job and releases it, ``times`` times."""
    with _client(queue, "work") as other:
        for _ in range(times):
            for job_id in job_ids:
                job = other.reserve_job(job_id)
                other.release(job, priority=100)


def _handed_back_by_a_second_sigterm(
    queue: Queue,
    spawn_worker: Callable[..., WorkerProcess],
    job_ids: list[int],
    times: int,
    out: Path,
) -> None:
    """A worker per job starts it; a second SIGTERM hands it back (``release``) and the
    worker exits at once, leaving its run record naming the job."""
    for round_ in range(1, times + 1):
        workers = [
            spawn_worker("--server", queue.server.address, "--tube", f"work={HANDLERS}:slow")
            for _ in job_ids
        ]
        wait_for(
            lambda n=round_: len(read_records(out)) == n * len(job_ids), 20, "every job running"
        )
        for worker in workers:
            worker.signal(signal.SIGTERM)
            worker.wait_log("no new jobs")
            worker.signal(signal.SIGTERM)
        assert [w.wait_exit() for w in workers] == [0] * len(job_ids)
        assert all(queue.state(job_id) == "ready" for job_id in job_ids)


@pytest.mark.parametrize("history", ["released-by-another-client", "second-sigterm"])
def test_releases_and_hand_backs_are_not_crashes_in_any_configuration(
    queue: Queue,
    spawn_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
    history: str,
    second: Beanstalkd,
) -> None:
    """Issue 18 item 4: a job released twice by another client, or handed back twice by a
    second SIGTERM, runs as attempt 3 with --max-retries 1 whether the worker watches one
    tube or two, writes metrics, serves two servers or prefetches: a release is not a crash
    (the issue's four releases with the default --max-retries 3 are the same case)."""
    out, go = tmp_path / "out", tmp_path / "go"
    job_ids = [queue.put("work", {"out": str(out), "go": str(go)}) for _ in CONFIGS]
    if history == "second-sigterm":
        _handed_back_by_a_second_sigterm(queue, spawn_worker, job_ids, 2, out)
    else:
        _released_by_another_client(queue, job_ids, 2)
    for job_id in job_ids:
        stats = queue.stats(job_id)
        assert stats is not None
        assert (stats["state"], stats["reserves"], stats["releases"]) == ("ready", 2, 2)

    go.touch()  # from now on the handler returns at once
    seen: dict[str, str] = {}
    for name in CONFIGS:
        worker = spawn_worker(
            "--server", queue.server.address, "--tube", f"work={HANDLERS}:slow",
            "--max-retries", "1", "--max-jobs", "1", *_config(name, tmp_path, second),
        )  # fmt: skip
        assert worker.wait_exit(20) == 0
        [outcome] = [line for line in worker.lines() if " tube=work " in line]
        fields = dict(f.split("=", 1) for f in outcome.split() if "=" in f)
        seen[name] = f"{fields['outcome']} attempt={fields['attempt']}"
    assert seen == dict.fromkeys(CONFIGS, "deleted attempt=3")
    done = [r for r in read_records(out) if r["event"] == "done"]
    assert sorted((r["id"], r["attempt"]) for r in done) == [(j, 3) for j in job_ids]
    assert all(queue.state(job_id) is None for job_id in job_ids)


@pytest.mark.parametrize("raised", ["SystemExit", "KeyboardInterrupt"])
def test_system_exit_or_keyboard_interrupt_from_a_handler_is_a_failed_attempt(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path, raised: str
) -> None:
    """Issue 18 item 5: SystemExit or KeyboardInterrupt raised by a handler is a failed
    attempt like any exception (retried, then buried when retries are exhausted, logged
    with its type); the worker goes on serving and never exits with the job unfinished."""
    out = tmp_path / "out"
    job_id = queue.put("work", {"out": str(out), "raise": raised})
    args = [
        "--server", queue.server.address, "--tube", f"work={HANDLERS}:raise_base",
        "--max-retries", "2", "--backoff-base", "0",
    ]  # fmt: skip
    workers = _supervise(
        lambda: spawn_worker(*args), lambda: queue.state(job_id) == "buried", most=5
    )

    assert [(r["id"], r["attempt"]) for r in read_records(out)] == [(job_id, n) for n in (1, 2, 3)]
    [worker] = workers  # never exited
    lines = worker.wait_outcomes(job_id, count=3)
    assert ["outcome=released" in x for x in lines] == [True, True, False]
    assert "outcome=buried" in lines[2] and "retries exhausted after 3 attempts" in lines[2]
    assert all(raised in line for line in lines)
    stats = queue.stats(job_id)
    assert stats is not None and (stats["releases"], stats["buries"]) == (2, 1)
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit() == 0


def test_kicking_a_job_in_its_retry_backoff_keeps_its_attempt_count(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    """Issue 18 item 7: a failing job kicked by an operator while it waits in its retry
    backoff (delayed) keeps counting: attempts 1, 2, 3, then buried (max-retries 2)."""
    out = tmp_path / "out"
    job_id = queue.put("work", {"out": str(out)})
    worker = spawn_worker(
        "--server", queue.server.address, "--tube", f"work={HANDLERS}:fail",
        "--max-retries", "2", "--backoff-base", "1000", "--backoff-cap", "1000",
    )  # fmt: skip
    kicks = 0
    while queue.state(job_id) != "buried" and kicks < 4:
        wait_for(lambda: queue.state(job_id) in ("delayed", "buried"), 20, "a backoff or bury")
        if queue.state(job_id) == "delayed":
            if kicks == 0:  # the operator's command, then the protocol's kick-job
                kick = [*beanfleet_argv(), "kick", "-s", queue.server.address, "--job"]
                subprocess.run([*kick, str(job_id)], check=True, capture_output=True)
            else:
                queue.client.kick_job(job_id)
            kicks += 1
            wait_for(lambda n=kicks: len(read_records(out)) > n, 20, "the kicked job to run")

    assert [(r["id"], r["attempt"]) for r in read_records(out)] == [(job_id, n) for n in (1, 2, 3)]
    assert queue.state(job_id) == "buried"
    [buried] = [x for x in worker.wait_outcomes(job_id, count=3) if "outcome=buried" in x]
    assert "attempt=3" in buried and "retries exhausted after 3 attempts" in buried
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit() == 0


def _attempts_histogram(metrics: Path) -> dict[str, float]:
    samples = parse(generate_latest(make_registry(metrics)).decode())
    return {
        dict(labels).get("le", name.rsplit("_", 1)[1]): value
        for (name, labels), value in samples.items()
        if name.startswith("beanfleet_worker_job_attempts") and dict(labels)["tube"] == "work"
    }


def test_the_attempts_histogram_uses_the_job_attempt_number(
    queue: Queue, spawn_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    """Issue 18 item 12 (attempts histogram): the worker metrics observe the same attempt
    number as ``job.attempt`` and the log (reserves - buries), not reserves + kicks."""
    out = tmp_path / "out"
    job_id = queue.put("work", {"out": str(out)})
    with _client(queue, "work") as other:
        other.bury(other.reserve_job(job_id))  # buried by another worker, kicked: 1 more
        other.kick_job(job_id)
        other.release(other.reserve_job(job_id), delay=1000)  # its retry backoff, kicked
        other.kick_job(job_id)
    stats: Any = queue.stats(job_id)
    assert (stats["reserves"], stats["buries"], stats["kicks"]) == (2, 1, 2)
    metrics = tmp_path / "metrics"
    worker = spawn_worker(
        "--server", queue.server.address, "--tube", f"work={HANDLERS}:record",
        "--tube", f"other={HANDLERS}:noop", "--metrics-dir", str(metrics),
    )  # fmt: skip
    histogram = wait_for(
        lambda: (h := _attempts_histogram(metrics)) and h.get("count") == 1 and h,
        10,
        "the start in the attempts histogram",
    )
    assert (histogram["sum"], histogram["1.0"], histogram["2.0"]) == (2, 0, 1)
    [line] = worker.wait_outcomes(job_id)
    assert "attempt=2" in line and "outcome=deleted" in line
    assert [r["attempt"] for r in read_records(out)] == [2]
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit() == 0


def test_a_worker_ended_by_its_own_exception_mid_job_keeps_the_run_record(
    queue: Queue, tmp_path: Path
) -> None:
    """Issue 18 item 5: an exception that ends the worker itself while a started job is
    unfinished (here a bug planted in the retry decision) leaves the run record naming the
    job, as a death would, so the next start on this host counts it as a crash."""
    job_id = queue.put("work", {})

    class Broken(RetryPolicy):
        def decide(self, attempt: int, error: BaseException, reason: str) -> Decision:
            raise RuntimeError("a bug in the worker")

    def handler(data: Any, job: JobInfo) -> None:
        raise ValueError("boom")

    with pytest.raises(RuntimeError, match="a bug in the worker"):
        run_worker(queue.server.address, {"work": handler}, policy=Broken(), state_dir=tmp_path)
    host, port = parse_server(queue.server.address)
    [record] = (tmp_path / "running" / f"{host}_{port}").iterdir()
    assert read_record(record) == job_id
    wait_for(lambda: queue.state(job_id) == "ready", 10, "the job back to ready")
