"""One worker process serving two servers: a frozen server, and idling across servers."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from beanfleet.work.pool import ServersWorker
from beanstalkd_server import Beanstalkd
from multi_support import put_direct, tube_count, wait_for

Pair = tuple[Beanstalkd, Beanstalkd]


@contextmanager
def serving(pair: Pair, seen: list[Any]) -> Iterator[ServersWorker]:
    """A ServersWorker on both servers, in a thread, recording ``(data, str(job.id))``."""

    def handler(data: Any, job: Any) -> None:
        seen.append((data, str(job.id)))

    a, b = pair
    worker = ServersWorker([a.address, b.address], {"w": handler}, state_dir=None)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.request_stop()
        for server in pair:  # a stopped server would hold the worker's stop up
            if server.proc is not None and server.proc.poll() is None:
                server.proc.send_signal(signal.SIGCONT)
        thread.join(timeout=15)
    assert not thread.is_alive()


def test_a_frozen_server_does_not_stop_the_other_servers_jobs(pair: Pair) -> None:
    # SIGSTOP: the host hangs (a stopped container). Its listen backlog still completes new
    # TCP connects, so only a bounded handshake and reply wait keep the worker going.
    a, b = pair
    assert a.proc is not None
    a.proc.send_signal(signal.SIGSTOP)
    seen: list[Any] = []
    with serving(pair, seen):
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


def test_a_process_idling_on_one_server_picks_up_a_job_put_on_the_other(pair: Pair) -> None:
    # README: an idle process waits `reserve-with-timeout 1` on each server in turn, so it
    # sees a job on any server within about a second. Asserted as "done", with a deadline
    # far above the bound (no timing assertion): a process that never leaves a's wait fails.
    a, b = pair
    seen: list[Any] = []
    with serving(pair, seen) as worker:
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
