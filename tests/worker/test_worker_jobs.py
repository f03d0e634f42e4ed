"""Job outcomes against a real beanstalkd, with the Worker running in the test's main thread:
delete on success, release with backoff, bury when retries run out, PermanentFailure,
RetryLater, poison bodies, unknown tubes, several tubes, DEADLINE_SOON, the log lines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import handlers_for_tests as h
import pytest
from beanfleet.names import parse_server
from beanfleet.wire.connection import Connection
from beanfleet.work.handlers import JobInfo
from beanfleet.work.loop import Worker
from beanfleet.work.outcome import RetryPolicy, bury, schedule_retry
from worker_support import Queue, read_records, run_worker

pytestmark = pytest.mark.timeout(60)


def test_success_deletes_and_handler_gets_data_and_job(
    queue: Queue, server_address: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job_id = queue.put("emails", {"out": str(out), "to": "a@example.com"})
    seen: list[tuple[Any, int, str, int]] = []

    def handler(data: Any, job: JobInfo) -> None:
        seen.append((data, job.id, job.tube, job.attempt))

    reason, lines = run_worker(server_address, {"emails": handler}, max_jobs=1)

    assert reason.startswith("max-jobs")
    assert seen == [({"out": str(out), "to": "a@example.com"}, job_id, "emails", 1)]
    assert queue.state(job_id) is None  # deleted
    [line] = [line for line in lines if f"job={job_id} " in line]
    assert "tube=emails attempt=1" in line and "outcome=deleted" in line and "duration=" in line


def test_default_tube_is_not_watched(queue: Queue, server_address: str) -> None:
    in_default = queue.put("default", {})
    wanted = queue.put("work", {})
    run_worker(server_address, {"work": h.noop}, max_jobs=1)
    assert queue.state(wanted) is None
    stats = queue.stats(in_default)
    assert stats is not None and stats["state"] == "ready" and stats["reserves"] == 0


def test_failure_releases_the_same_job_with_a_delay(queue: Queue, server_address: str) -> None:
    body = b'{"k": "v"}'
    job_id = queue.put("work", body, priority=77, ttr=33)
    _, lines = run_worker(
        server_address,
        {"work": h.fail},
        max_jobs=1,
        policy=RetryPolicy(max_retries=3, backoff_base=2, backoff_cap=60),
    )
    stats = queue.stats(job_id)
    assert stats is not None  # the producer's id still names the job
    assert (stats["state"], stats["pri"], stats["ttr"], stats["releases"]) == (
        "delayed",
        77,
        33,
        1,
    )
    assert stats["delay"] in (1, 2)  # base 2, jittered into its upper half, whole seconds
    assert queue.client.peek(job_id).body == body  # no envelope: the producer's bytes
    assert queue.tube_stats("work")["total-jobs"] == 1  # no copy was made
    [line] = [line for line in lines if f"job={job_id} " in line]
    assert "outcome=released" in line and f"delay={stats['delay']}s" in line
    assert "ValueError: boom" in line


def test_retries_exhausted_buries(queue: Queue, server_address: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    job_id = queue.put("work", {"out": str(out)})
    _, lines = run_worker(
        server_address,
        {"work": h.fail},
        max_jobs=3,
        policy=RetryPolicy(max_retries=2, backoff_base=0),
    )
    records = read_records(out)
    assert [(r["id"], r["attempt"]) for r in records] == [(job_id, 1), (job_id, 2), (job_id, 3)]
    stats = queue.stats(job_id)
    assert stats is not None
    assert (stats["state"], stats["reserves"], stats["releases"], stats["buries"]) == (
        "buried",
        3,
        2,
        1,
    )
    assert queue.body(job_id) == {"out": str(out)}
    outcomes = [line for line in lines if "outcome=" in line]
    assert all(f"job={job_id} " in x for x in outcomes)
    assert ["outcome=released" in x for x in outcomes] == [True, True, False]
    assert "outcome=buried" in outcomes[2] and "retries exhausted after 3 attempts" in outcomes[2]


def test_attempt_grows_and_survives_worker_restarts(
    queue: Queue, server_address: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job_id = queue.put("work", {"out": str(out)})
    policy = RetryPolicy(max_retries=5, backoff_base=0)
    run_worker(server_address, {"work": h.fail}, max_jobs=1, policy=policy)  # first worker
    run_worker(server_address, {"work": h.fail}, max_jobs=1, policy=policy)  # a fresh one
    run_worker(server_address, {"work": h.record}, max_jobs=1, policy=policy)
    records = read_records(out)
    assert [(r["event"], r["id"], r["attempt"]) for r in records] == [
        ("failed", job_id, 1),
        ("failed", job_id, 2),
        ("done", job_id, 3),
    ]
    assert queue.state(job_id) is None


def test_a_kick_gives_a_buried_job_one_more_attempt(queue: Queue, server_address: str) -> None:
    job_id = queue.put("work", {})
    policy = RetryPolicy(max_retries=1, backoff_base=0)
    run_worker(server_address, {"work": h.fail}, max_jobs=2, policy=policy)
    assert queue.state(job_id) == "buried"
    queue.client.kick_job(job_id)
    seen: list[int] = []

    def handler(data: Any, job: JobInfo) -> None:
        seen.append(job.attempt)
        raise ValueError("still broken")

    _, lines = run_worker(server_address, {"work": handler}, max_jobs=1, policy=policy)
    assert seen == [2] and queue.state(job_id) == "buried"
    assert any("retries exhausted after 2 attempts" in line for line in lines)


def test_a_body_shaped_like_the_old_retry_envelope_is_plain_data(
    queue: Queue, server_address: str
) -> None:
    body = {"__beanfleet_retry__": {"attempt": 99, "origin": 1}, "data": {"x": 1}}
    job_id = queue.put("work", body)
    seen: list[tuple[Any, int]] = []

    def handler(data: Any, job: JobInfo) -> None:
        seen.append((data, job.attempt))

    run_worker(server_address, {"work": handler}, max_jobs=1)
    assert seen == [(body, 1)] and queue.state(job_id) is None


def test_retry_and_bury_of_a_job_not_reserved_here_say_so(
    queue: Queue, server_address: str
) -> None:
    job_id = queue.put("work", {}, priority=3)
    conn = Connection(parse_server(server_address))  # it never reserved the job
    try:
        released = schedule_retry(conn, job_id, 3, 10)
        buried = bury(conn, job_id, 3)
    finally:
        conn.close()
    assert released.outcome == buried.outcome == "lost"
    assert released.note is not None and "release replied NOT_FOUND" in released.note
    assert buried.note is not None and "bury replied NOT_FOUND" in buried.note
    assert queue.state(job_id) == "ready"  # untouched


def test_permanent_failure_buries_at_once(queue: Queue, server_address: str) -> None:
    job_id = queue.put("work", {}, priority=5)
    _, lines = run_worker(server_address, {"work": h.permanent}, max_jobs=1)
    stats = queue.stats(job_id)
    assert stats is not None
    assert (stats["state"], stats["releases"], stats["pri"]) == ("buried", 0, 5)
    [line] = [line for line in lines if f"job={job_id} " in line]
    assert "outcome=buried" in line and "permanent failure" in line and "cannot ever work" in line


def test_retry_later_uses_its_delay_then_buries_when_exhausted(
    queue: Queue, server_address: str
) -> None:
    job_id = queue.put("work", {"delay": 7})
    policy = RetryPolicy(max_retries=1, backoff_base=100)
    run_worker(server_address, {"work": h.retry_later}, max_jobs=1, policy=policy)
    stats = queue.stats(job_id)
    assert stats is not None
    assert (stats["state"], stats["delay"]) == ("delayed", 7)

    queue.client.kick_job(job_id)  # make it ready now instead of waiting 7 s
    # A kick of a delayed job gives no attempt back (retry.attempt_of): the second run is
    # attempt 2 of 2, and exhausted, it is buried.
    _, lines = run_worker(server_address, {"work": h.retry_later}, max_jobs=1, policy=policy)
    assert queue.state(job_id) == "buried"
    [line] = [line for line in lines if f"job={job_id} " in line]
    assert "attempt=2" in line and "retries exhausted after 2 attempts" in line


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe{}", "body is not valid UTF-8"),
        (b"{not json", "body is not valid JSON"),
        (b"", "body is not valid JSON"),
        (b"[" * 60000, "body is not valid JSON: nested too deeply"),  # RecursionError
        (b'{"a":' * 12000, "body is not valid JSON: nested too deeply"),
    ],
)
def test_poison_body_is_buried_and_worker_carries_on(
    queue: Queue, server_address: str, tmp_path: Path, body: bytes, reason: str
) -> None:
    out = tmp_path / "out"
    poison = queue.put("work", body)
    good = queue.put("work", {"out": str(out)})
    _, lines = run_worker(server_address, {"work": h.record}, max_jobs=2)
    assert queue.state(poison) == "buried"
    assert queue.state(good) is None
    assert [r["id"] for r in read_records(out)] == [good]
    [line] = [line for line in lines if f"job={poison} " in line]
    assert "tube=work" in line and "outcome=buried" in line and reason in line


class _WatchesAnExtraTube(Worker):
    """A misconfigured worker: it watches a tube it has no handler for."""

    def tubes_to_watch(self) -> list[str]:
        return [*self.handlers, "orphans"]


def test_job_from_a_tube_without_handler_is_buried(
    queue: Queue, server_address: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    orphan = queue.put("orphans", {"out": str(out)})
    good = queue.put("work", {"out": str(out)})
    _, lines = run_worker(
        server_address, {"work": h.record}, max_jobs=2, worker_class=_WatchesAnExtraTube
    )
    assert queue.state(orphan) == "buried"
    assert queue.state(good) is None
    [line] = [line for line in lines if f"job={orphan} " in line]
    assert "tube=orphans" in line and "no handler for tube 'orphans'" in line


def test_several_tubes_each_with_its_handler(
    queue: Queue, server_address: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    a = queue.put("007", {"out": str(out)})  # a tube name that looks like a number
    b = queue.put("tube-b", {"out": str(out)})
    ran: list[tuple[str, int, str]] = []

    def handler_a(data: Any, job: JobInfo) -> None:
        ran.append(("a", job.id, job.tube))

    def handler_b(data: Any, job: JobInfo) -> None:
        ran.append(("b", job.id, job.tube))

    run_worker(server_address, {"007": handler_a, "tube-b": handler_b}, max_jobs=2)
    assert sorted(ran) == [("a", a, "007"), ("b", b, "tube-b")]
    assert queue.state(a) is None and queue.state(b) is None


def test_one_stats_job_per_job_and_deletes_ride_with_it(queue: Queue, server_address: str) -> None:
    # The counters a start needs (retry.attempt_of) cost one stats-job per job, no more.
    for _ in range(20):
        queue.put("work", {})
    before = queue.server_stats()["cmd-stats-job"]
    _, lines = run_worker(server_address, {"work": h.noop}, max_jobs=20)
    assert queue.server_stats()["cmd-stats-job"] == before + 20
    assert queue.tube_stats("work")["cmd-delete"] == 20
    assert sum("outcome=deleted" in line for line in lines) == 20


def test_deadline_soon_is_retried_not_a_crash(
    queue: Queue, server_address: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job_id = queue.put("work", {"out": str(out)}, ttr=1)

    def hold_a_job_on_the_workers_connection(worker: Worker) -> None:
        # Hand the worker a connection that already holds the job reserved (and forgotten):
        # with TTR 1 it is inside beanstalkd's 1 s safety margin, so the worker's reserve
        # gets DEADLINE_SOON.
        conn = Connection(parse_server(server_address))
        conn.send([b"watch work", b"ignore default", b"reserve-with-timeout 0"])
        conn.expect(b"WATCHING")
        conn.expect(b"WATCHING")
        _, values = conn.expect(b"RESERVED")
        conn.read_chunk(int(values[1]))
        worker.sessions[0].adopt(conn)

    _, lines = run_worker(
        server_address,
        {"work": h.record},
        max_jobs=1,
        before_run=hold_a_job_on_the_workers_connection,
    )
    assert any("event=deadline-soon" in line for line in lines)
    # Once beanstalkd took the job back (TTR), the worker reserved it and ran it.
    assert [r["id"] for r in read_records(out)] == [job_id]
    assert queue.state(job_id) is None


def test_json_log_lines_parse(queue: Queue, server_address: str) -> None:
    ok = queue.put("work", {})
    bad = queue.put("work", b"\xff")
    _, lines = run_worker(server_address, {"work": h.noop}, max_jobs=2, fmt="json")
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    jobs = {r["job"]: r for r in records if r["event"] == "job"}
    assert jobs[ok]["outcome"] == "deleted" and jobs[ok]["tube"] == "work"
    assert isinstance(jobs[ok]["duration"], float)
    assert jobs[bad]["outcome"] == "buried" and "UTF-8" in jobs[bad]["reason"]
    assert jobs[bad]["attempt"] == 1
    assert {"started", "connected", "stopped"} <= {r["event"] for r in records}
    assert all({"ts", "level", "event"} <= r.keys() for r in records)


def test_handler_may_stop_the_worker(queue: Queue, server_address: str) -> None:
    first = queue.put("work", {})
    second = queue.put("work", {})
    worker_ref: list[Worker] = []

    def stop_after_this(data: Any, job: JobInfo) -> None:
        worker_ref[0].request_stop()

    _, _ = run_worker(server_address, {"work": stop_after_this}, before_run=worker_ref.append)
    assert queue.state(first) is None  # finished and deleted on the way out
    assert queue.state(second) == "ready"
