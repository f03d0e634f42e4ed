"""Issue 18 item 9: a worker process serving servers A and B while B is frozen (SIGSTOP, a
paused VM) with one of B's jobs in flight: A is still served, a stop is not held up, and
B's finished job is not run again.

Every test here keeps B frozen for longer than the bound it asserts and thaws it on its way
out (``Beanstalkd.frozen``, or a ``finally``; the server fixtures thaw it too).
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import greenstalk
import pytest
from beanstalkd_server import Beanstalkd
from waiting import wait_for
from worker_support import WorkerProcess, put_direct, read_records, tube_count

pytestmark = pytest.mark.timeout(90)

Pair = tuple[Beanstalkd, Beanstalkd]
SLOW = "work=handlers_for_tests:slow"
BOUND = 20.0  # "does not hang": far above the worker's 3 s reply limit, below the freeze


@pytest.fixture
def pair(beanstalkd: Beanstalkd, second: Beanstalkd) -> Pair:
    """Servers A and B (each thawed and killed after the test by its fixture)."""
    return beanstalkd, second


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    try:
        yield started
    finally:
        for process in started:
            process.stop()


def _worker(started: list[WorkerProcess], tmp_path: Path, pair: Pair, *extra: str) -> WorkerProcess:
    a, b = pair
    process = WorkerProcess(
        ["--server", f"{a.address},{b.address}", "--tube", SLOW, *extra],
        tmp_path / f"worker-{len(started)}.log",
    )
    started.append(process)
    return process


def _events(out: Path, job_id: int) -> list[str]:
    # One out file per server: job ids are per server.
    return [r["event"] for r in read_records(out) if r["id"] == job_id]


def _job_stats(server: Beanstalkd, job_id: int) -> dict[str, object] | None:
    with greenstalk.Client(server.pair, encoding=None) as client:
        try:
            return dict(client.stats_job(job_id))
        except greenstalk.NotFoundError:
            return None


def test_a_delete_written_to_a_frozen_server_applies_after_the_connection_closed(
    pair: Pair,
) -> None:
    """Issue 18 item 9: what the worker relies on: bytes written to a frozen beanstalkd's
    socket are held by its kernel and read when it resumes, so a ``delete`` written before
    the connection is closed still deletes the job (it does not go back to ready)."""
    _, b = pair
    job_id = put_direct(b, "t", b"{}")
    sock = socket.create_connection(b.pair, timeout=5)
    try:
        sock.sendall(b"watch t\r\nreserve-with-timeout 0\r\n")
        reply = b""
        while not reply.endswith(b"{}\r\n"):
            reply += sock.recv(4096)
        assert b"RESERVED %d" % job_id in reply
        b.freeze()
        sock.sendall(b"delete %d\r\n" % job_id)
    finally:
        sock.close()
        b.thaw()
    wait_for(lambda: _job_stats(b, job_id) is None, 10, "the job deleted after the thaw")
    assert tube_count(b, "t") == 0


def _touches(server: Beanstalkd) -> int:
    with greenstalk.Client(server.pair, encoding=None) as client:
        return int(client.stats()["cmd-touch"])


@pytest.mark.parametrize(
    ("lost_by", "prefetch"), [("touch", False), ("delete", False), ("delete", True)]
)
def test_a_frozen_server_with_a_job_in_flight_does_not_stall_the_other_server(
    pair: Pair, spawn: list[WorkerProcess], tmp_path: Path, lost_by: str, prefetch: bool
) -> None:
    """Issue 18 item 9: B freezes while its job runs, so a heartbeat touch (``touch``) or
    the finished job's delete (``delete``) gets no reply: A's jobs are still served, the
    first SIGTERM stops the worker (exit 0) while B stays frozen, and B's finished job is
    deleted once B resumes (its delete was written before the connection was dropped), so
    it does not run again.  With ``--prefetch`` too (its replies are read later)."""
    a, b = pair
    out, out_a, go = tmp_path / "out", tmp_path / "out-a", tmp_path / "go"
    # TTR 6: touched 0.5 s after its start and every 2 s, into the freeze.  TTR 60: touched
    # 0.5 s after its start, before the freeze, then not for 20 s.
    ttr = 6 if lost_by == "touch" else 60
    with greenstalk.Client(b.pair, encoding=None, use="work") as client:
        body = b'{"out": "%s", "go": "%s"}' % (str(out).encode(), str(go).encode())
        on_b = client.put(body, ttr=ttr)
    worker = _worker(spawn, tmp_path, pair, *(["--prefetch"] if prefetch else []))
    wait_for(lambda: _events(out, on_b) == ["started"], 15, "b's job to start")
    if lost_by == "delete":
        wait_for(lambda: _touches(b) >= 1, 15, "the first touch of b's job")
    with b.frozen():
        on_a = put_direct(a, "work", b'{"out": "%s", "seconds": 0}' % str(out_a).encode())
        if lost_by == "touch":
            # A touch of b's job met the freeze and gave up, instead of holding the worker.
            worker.wait_log(f"while job {b.address}/{on_b} runs", BOUND)
        go.touch()
        wait_for(lambda: _events(out_a, on_a) == ["started", "done"], BOUND, "a's job, b frozen")
        another = put_direct(a, "work", b'{"out": "%s", "seconds": 0}' % str(out_a).encode())
        wait_for(lambda: _events(out_a, another) == ["started", "done"], BOUND, "a's next job")

        worker.signal(signal.SIGTERM)
        assert worker.wait_exit(BOUND) == 0
        assert b.proc is not None and b.proc.poll() is None  # still frozen all along
    wait_for(lambda: _job_stats(b, on_b) is None, 10, "b's finished job deleted after the thaw")
    assert tube_count(a, "work") == tube_count(a, "work", "reserved") == 0
    assert _events(out, on_b) == ["started", "done"]  # ran once
    assert not any("Traceback" in line for line in worker.lines())


@pytest.mark.parametrize("signals", [1, 2])
def test_a_stop_while_a_frozen_servers_job_runs_exits_and_its_delete_still_applies(
    pair: Pair, spawn: list[WorkerProcess], tmp_path: Path, signals: int
) -> None:
    """Issue 18 item 9: SIGTERM while B's job runs and B is frozen: the job finishes, its
    delete is sent, its reply waited for only up to a bound, and the worker exits 0 while B
    stays frozen; once B resumes the job is gone (it does not run again).  A second SIGTERM
    once the job is done (the worker waiting for B's reply) leaves it deleted too."""
    _, b = pair
    out, go = tmp_path / "out", tmp_path / "go"
    body = b'{"out": "%s", "go": "%s"}' % (str(out).encode(), str(go).encode())
    on_b = put_direct(b, "work", body)  # TTR 60: no touch during the test but the first
    worker = _worker(spawn, tmp_path, pair)
    wait_for(lambda: _events(out, on_b) == ["started"], 15, "b's job to start")
    with b.frozen():
        worker.signal(signal.SIGTERM)
        worker.wait_log("event=stopping", BOUND)
        go.touch()
        if signals == 2:
            wait_for(lambda: _events(out, on_b) == ["started", "done"], BOUND, "b's job done")
            worker.signal(signal.SIGTERM)
        assert worker.wait_exit(BOUND) == 0
        assert b.proc is not None and b.proc.poll() is None  # still frozen all along
        assert _events(out, on_b) == ["started", "done"]
    wait_for(lambda: _job_stats(b, on_b) is None, 10, "b's finished job deleted after the thaw")
    assert tube_count(b, "work") == 0
    assert not any("Traceback" in line for line in worker.lines())
