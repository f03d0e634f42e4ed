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
from beanfleet.handlers import JobInfo
from beanfleet.retry import RetryPolicy
from beanfleet.worker import Worker
from beanstalkd_server import Beanstalkd
from worker_support import Queue, envelope, read_records, retried_as, run_worker

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


def test_failure_is_retried_as_a_fresh_delayed_job(queue: Queue, server_address: str) -> None:
    job_id = queue.put("work", {"k": "v"}, priority=77, ttr=33)
    _, lines = run_worker(
        server_address,
        {"work": h.fail},
        max_jobs=1,
        policy=RetryPolicy(max_retries=3, backoff_base=2, backoff_cap=60),
    )
    assert queue.state(job_id) is None  # the old job is gone once the copy exists
    copy = retried_as(lines, job_id)
    assert copy != job_id
    stats = queue.stats(copy)
    assert stats is not None
    assert (stats["state"], stats["tube"], stats["releases"]) == ("delayed", "work", 0)
    assert (stats["pri"], stats["ttr"]) == (77, 33)  # priority and TTR kept
    assert 1 <= stats["delay"] <= 2  # base 2, jittered into [1, 2]
    assert queue.body(copy) == envelope({"k": "v"}, 1, job_id)
    assert queue.client.peek(copy).body == (
        b'{"__beanfleet_retry__":{"attempt":1,"origin":%d},"data":{"k":"v"}}' % job_id
    )  # compact
    [line] = [line for line in lines if f"job={job_id} " in line]
    assert "outcome=released" in line and "attempt=1" in line and "delay=" in line
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
    assert [r["attempt"] for r in records] == [1, 2, 3]
    ids = [r["id"] for r in records]
    assert ids[0] == job_id and len(set(ids)) == 3  # every retry is a fresh job
    assert [queue.state(i) for i in ids] == [None, None, "buried"]
    stats = queue.stats(ids[2])
    assert stats is not None
    assert (stats["releases"], stats["buries"]) == (0, 1)
    assert queue.body(ids[2]) == envelope({"out": str(out)}, 2, job_id)
    outcomes = [line for line in lines if "outcome=" in line]
    assert [f"job={i} " in x for i, x in zip(ids, outcomes, strict=True)] == [True] * 3
    assert ["outcome=released" in x for x in outcomes] == [True, True, False]
    assert f"retried as job {ids[1]} (origin {job_id})" in outcomes[0]
    assert f"retried as job {ids[2]} (origin {job_id})" in outcomes[1]
    assert "outcome=buried" in outcomes[2] and "retries exhausted after 3 attempts" in outcomes[2]


def test_attempt_grows_across_re_puts_and_survives_worker_restarts(
    queue: Queue, server_address: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job_id = queue.put("work", {"out": str(out)})
    policy = RetryPolicy(max_retries=5, backoff_base=0)
    run_worker(server_address, {"work": h.fail}, max_jobs=1, policy=policy)  # first worker
    run_worker(server_address, {"work": h.fail}, max_jobs=1, policy=policy)  # a fresh one
    run_worker(server_address, {"work": h.record}, max_jobs=1, policy=policy)
    records = read_records(out)
    assert [(r["event"], r["attempt"]) for r in records] == [
        ("failed", 1),
        ("failed", 2),
        ("done", 3),
    ]
    assert records[0]["id"] == job_id
    assert all(queue.state(r["id"]) is None for r in records)
    counts = queue.tube_stats("work")
    assert counts["current-jobs-ready"] == counts["current-jobs-delayed"] == 0


def test_releases_still_count_on_top_of_the_envelope(queue: Queue, server_address: str) -> None:
    # A copy re-put after 2 attempts, then released once (e.g. a second signal): attempt 4.
    job_id = queue.put("work", envelope({"x": 1}, 2, 5))
    queue.client.watch("work")
    job = queue.client.reserve(timeout=5)
    assert job.id == job_id
    queue.client.release(job, delay=0)
    seen: list[tuple[Any, int]] = []

    def handler(data: Any, job: JobInfo) -> None:
        seen.append((data, job.attempt))

    run_worker(server_address, {"work": handler}, max_jobs=1)
    assert seen == [({"x": 1}, 4)]


def test_handler_receives_the_unwrapped_data(queue: Queue, server_address: str) -> None:
    data = {"nested": [1, 2.5, None, "é\u2603"], "__beanfleet_retry__": "not an envelope"}
    job_id = queue.put("work", data)
    policy = RetryPolicy(max_retries=3, backoff_base=0)
    seen: list[tuple[Any, int, int]] = []

    def fail_once(data: Any, job: JobInfo) -> None:
        seen.append((data, job.id, job.attempt))
        if job.attempt == 1:
            raise ValueError("first time")

    run_worker(server_address, {"work": fail_once}, max_jobs=2, policy=policy)
    assert [(d, a) for d, _, a in seen] == [(data, 1), (data, 2)]
    assert seen[0][1] == job_id and seen[1][1] != job_id
    assert queue.state(seen[1][1]) is None


def test_not_quite_an_envelope_is_plain_data(queue: Queue, server_address: str) -> None:
    bodies = [
        {"__beanfleet_retry__": {"attempt": 1, "origin": 1}, "data": 1, "extra": 2},
        {"__beanfleet_retry__": {"attempt": "1", "origin": 1}, "data": 1},
        {"__beanfleet_retry__": [], "data": 1},
    ]
    for body in bodies:
        queue.put("work", body)
    seen: list[tuple[Any, int]] = []

    def handler(data: Any, job: JobInfo) -> None:
        seen.append((data, job.attempt))

    run_worker(server_address, {"work": handler}, max_jobs=3)
    assert seen == [(body, 1) for body in bodies]


def test_refused_re_put_falls_back_to_a_delay_0_release(tmp_path: Path) -> None:
    # max-job-size 200: the job fits, its retry envelope (origin id and all) does not.
    server = Beanstalkd(binlog_dir=tmp_path / "binlog", max_job_size=200)
    server.start()
    queue = Queue(server)
    try:
        out = tmp_path / "out"
        data = {"out": str(out), "pad": ""}
        data["pad"] = "x" * (200 - len(json.dumps(data).encode()))
        job_id = queue.put("work", data, priority=9)  # exactly 200 bytes
        policy = RetryPolicy(max_retries=3, backoff_base=60)
        _, lines = run_worker(server.address, {"work": h.fail}, max_jobs=1, policy=policy)
        stats = queue.stats(job_id)
        assert stats is not None  # nothing lost: the same job, released, ready at once
        assert (stats["state"], stats["releases"], stats["pri"]) == ("ready", 1, 9)
        assert queue.tube_stats("work")["total-jobs"] == 1  # no copy was made
        [event] = [line for line in lines if "event=retry-fallback" in line]
        assert "JOB_TOO_BIG" in event and "max-job-size" in event
        [line] = [line for line in lines if f"job={job_id} " in line and "outcome=" in line]
        assert "outcome=released" in line and "delay=0s" in line and "JOB_TOO_BIG" in line

        # The release counts: the next worker runs it as attempt 2.
        run_worker(server.address, {"work": h.record}, max_jobs=1, policy=policy)
        assert [(r["id"], r["attempt"]) for r in read_records(out)] == [
            (job_id, 1),
            (job_id, 2),
        ]
        assert queue.state(job_id) is None
    finally:
        queue.close()
        server.kill()


def test_refused_bury_is_not_reported_as_a_ttr_timeout() -> None:
    reason = "retries exhausted"
    for status in (b"OUT_OF_MEMORY", b"INTERNAL_ERROR"):
        outcome, _, why = Worker._outcome_of(status, "bury", reason)
        assert outcome == "lost"
        assert f"refused bury with {status.decode()}" in why and "binlog disk full" in why
        assert "TTR" not in why and why.endswith(reason)
    _, _, why = Worker._outcome_of(b"NOT_FOUND", "release", reason)
    assert "TTR ran out" in why


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
    _, lines = run_worker(server_address, {"work": h.retry_later}, max_jobs=1, policy=policy)
    copy = retried_as(lines, job_id)
    stats = queue.stats(copy)
    assert stats is not None
    assert (stats["state"], stats["delay"]) == ("delayed", 7)

    queue.client.kick_job(copy)  # make it ready now instead of waiting 7 s
    run_worker(server_address, {"work": h.retry_later}, max_jobs=1, policy=policy)
    assert queue.state(copy) == "buried"  # RetryLater still counts as an attempt


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


def test_single_tube_needs_no_stats_job_per_job(queue: Queue, server_address: str) -> None:
    # The hot path: one round trip per job, the attempt only fetched when asked for.
    for _ in range(20):
        queue.put("work", {})
    before = queue.server_stats()["cmd-stats-job"]
    _, lines = run_worker(server_address, {"work": h.noop}, max_jobs=20)
    assert queue.server_stats()["cmd-stats-job"] == before
    assert queue.tube_stats("work")["cmd-delete"] == 20
    assert sum("outcome=deleted" in line for line in lines) == 20


def test_deadline_soon_is_retried_not_a_crash(
    queue: Queue, server_address: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job_id = queue.put("work", {"out": str(out)}, ttr=1)

    def hold_a_job_on_the_workers_connection(worker: Worker) -> None:
        # Reserve the job on the worker's own connection and forget it: with TTR 1 it is
        # inside beanstalkd's 1 s safety margin, so the worker's reserve gets DEADLINE_SOON.
        assert worker._connect()
        conn = worker._conn
        assert conn is not None
        conn.send([b"reserve-with-timeout 0"])
        _, values = conn.expect(b"RESERVED")
        conn.read_chunk(int(values[1]))

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
