"""One worker over a set of servers (one server is a set of one): jobs from every server,
ids as users see them, a frozen server, and an idle worker waiting on every server at once.

Moved here from tests/multi/test_multi_worker.py (issue 19), parametrized with one server and
two where the behaviour is defined for both.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import greenstalk
import pytest
from beanfleet.work.loop import Worker
from beanstalkd_server import Beanstalkd
from waiting import wait_for
from worker_support import put_direct, tube_count

pytestmark = pytest.mark.timeout(90)


@contextmanager
def serving(servers: Sequence[Beanstalkd], seen: list[Any]) -> Iterator[Worker]:
    """A Worker on ``servers``, in a thread, recording ``(data, str(job.id))``."""

    def handler(data: Any, job: Any) -> None:
        seen.append((data, str(job.id)))

    worker = Worker([s.address for s in servers], {"w": handler}, state_dir=None)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.request_stop()
        for server in servers:  # a stopped server would hold the worker's stop up
            if server.proc is not None and server.proc.poll() is None:
                server.proc.send_signal(signal.SIGCONT)
        thread.join(timeout=15)
    assert not thread.is_alive()


def test_jobs_from_every_server_run_with_the_ids_users_see(servers: list[Beanstalkd]) -> None:
    # One server: ids are bare numbers.  Several: SERVER/ID (job 1 exists on each).
    seen: list[Any] = []
    for n, server in enumerate(servers):
        put_direct(server, "w", b"%d" % n)
    with serving(servers, seen):
        wait_for(lambda: len(seen) == len(servers), 20, "every server's job")
    if len(servers) == 1:
        assert seen == [(0, "1")]
    else:
        assert sorted(seen) == [(n, f"{s.address}/1") for n, s in enumerate(servers)]
    assert all(tube_count(server, "w") == 0 for server in servers)


def test_a_frozen_server_does_not_stop_the_other_servers_jobs(
    beanstalkd: Beanstalkd, second: Beanstalkd
) -> None:
    # SIGSTOP: the host hangs (a stopped container). Its listen backlog still completes new
    # TCP connects, so only a bounded handshake and reply wait keep the worker going.
    a, b = beanstalkd, second
    assert a.proc is not None
    a.proc.send_signal(signal.SIGSTOP)
    seen: list[Any] = []
    with serving([a, b], seen):
        put_direct(b, "w", b"1")
        wait_for(lambda: (1, f"{b.address}/1") in seen, 30, "b's first job with a frozen")
        # Still served after the worker has come back to a frozen server again and again.
        for n in range(2, 5):
            put_direct(b, "w", b"%d" % n)
        wait_for(lambda: len(seen) == 4, 30, "b's jobs while a stays frozen")
        put_direct(b, "w", b"5")  # a's queue: answered once it thaws (its backlog is read)
        a.proc.send_signal(signal.SIGCONT)
        put_direct(a, "w", b"6")
        wait_for(lambda: any(d == 6 for d, _ in seen), 30, "a's job after it thaws")
        wait_for(lambda: len(seen) == 6, 30, "every job")
    assert sorted(d for d, _ in seen) == [1, 2, 3, 4, 5, 6]
    assert tube_count(a, "w") == tube_count(b, "w") == 0


def test_a_process_idling_on_one_server_picks_up_a_job_put_on_the_other(
    beanstalkd: Beanstalkd, second: Beanstalkd
) -> None:
    # An idle worker waits on every server at once, so it sees a job on any server at once.
    # Asserted as "done", with a deadline far above the bound (no timing assertion).
    a, b = beanstalkd, second
    seen: list[Any] = []
    with serving([a, b], seen) as worker:
        put_direct(a, "w", b"0")  # proves the worker is up and has gone idle after it
        wait_for(lambda: len(seen) == 1, 20, "the first job")
        wait_for(lambda: tube_count(a, "w", "reserved") == 0, 20, "a's job deleted")
        for round_ in range(3):
            for server, number in ((b, 10 + round_), (a, 20 + round_)):
                put_direct(server, "w", b"%d" % number)
                wait_for(
                    lambda: any(d == number for d, _ in seen),  # noqa: B023 - called at once
                    15,
                    f"job {number} on {server.address} picked up by the idle worker",
                )
        assert worker.recycler.jobs == 7
    assert [d for d, _ in seen] == [0, 10, 20, 11, 21, 12, 22]


def test_an_idle_worker_with_three_servers_picks_up_a_job_put_on_the_last(
    beanstalkd: Beanstalkd, second: Beanstalkd, tmp_path: Path
) -> None:
    # Waiting on every server at once: the last server's job is not behind the others'
    # reserve waits.  The bound is generous (a test asserts no speed; the bench measures).
    third = Beanstalkd(binlog_dir=tmp_path / "binlog-third")
    third.start()
    try:
        servers = [beanstalkd, second, third]
        seen: list[Any] = []
        with serving(servers, seen):
            wait_for(
                lambda: all(tube_count(s, "w", "waiting") == 1 for s in servers),
                20,
                "a reserve waiting on every server",
            )
            put_direct(third, "w", b"3")
            wait_for(lambda: seen == [(3, f"{third.address}/1")], 10, "the last server's job")
        assert tube_count(third, "w") == 0
    finally:
        third.kill()


def test_a_job_reserved_on_one_server_while_anothers_runs_long_is_handed_back_unstarted(
    beanstalkd: Beanstalkd, second: Beanstalkd
) -> None:
    # B's waiting reserve gets a job while A's job runs: it is held (not started), and once
    # A's job runs past the heartbeat it is given back (bury + kick-job) before its TTR runs
    # out, so when it runs later that is still its first attempt.
    a, b = beanstalkd, second
    ran: list[tuple[str, int]] = []
    a_started = threading.Event()

    def handler(data: Any, job: Any) -> None:
        if data == "long":
            a_started.set()
            time.sleep(3)
        ran.append((str(data), job.attempt))

    worker = Worker([a.address, b.address], {"w": handler}, state_dir=None)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: tube_count(b, "w", "waiting") == 1, 20, "a reserve waiting on b")
        put_direct(a, "w", b'"long"')
        assert a_started.wait(20)
        on_b = put_direct(b, "w", b'"short"')
        with greenstalk.Client(b.pair, encoding=None) as client:
            wait_for(lambda: client.stats_job(on_b)["buries"] == 1, 10, "b's job handed back")
        wait_for(lambda: len(ran) == 2, 20, "both jobs")
    finally:
        worker.request_stop()
        thread.join(timeout=15)
    assert ran == [("long", 1), ("short", 1)]
    with greenstalk.Client(b.pair, encoding=None) as client:
        assert int(client.stats()["job-timeouts"]) == 0
