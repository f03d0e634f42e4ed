"""Issue 18, metrics edges: the exporter with a frozen beanstalkd and under a burst of
scrapers, the worker metrics endpoint with unreadable files in its directory."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from beanfleet.metrics.worker import WorkerMetrics
from beanstalkd_server import Beanstalkd
from scraping import Samples, Served, parse
from small_tmpfs import fill, mounted
from waiting import wait_for

BEANFLEET = str(Path(sys.executable).with_name("beanfleet"))
BOUND = 20.0  # a scrape of a frozen server must answer well within this (and the freeze)


def scrape_within(port: int) -> Samples:
    """One scrape that must answer (200) within BOUND seconds."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=BOUND) as response:
        assert response.status == 200
        return parse(response.read().decode())


def test_a_frozen_server_is_up_0_and_the_scrape_answers(beanstalkd: Beanstalkd) -> None:
    """Issue 18 item 8: a frozen beanstalkd (SIGSTOP) makes the exporter's scrape answer
    ``beanfleet_up 0`` within its timeout instead of hanging; it is up again once thawed."""
    exporter = Served([BEANFLEET, "exporter", "-s", beanstalkd.address, "--timeout", "1"])
    try:
        assert scrape_within(exporter.port)[("beanfleet_up", ())] == 1
        with beanstalkd.frozen():  # connected already: the next stats waits for a reply
            for _ in range(2):  # the question of the first scrape is still unanswered
                s = scrape_within(exporter.port)
                assert s[("beanfleet_up", ())] == 0
                assert sorted(name for name, _ in s) == [
                    "beanfleet_scrape_duration_seconds",
                    "beanfleet_up",
                ]
        wait_for(lambda: scrape_within(exporter.port)[("beanfleet_up", ())] == 1, 15, "up 1")
    finally:
        exporter.stop()


def test_a_frozen_server_is_up_0_and_the_others_are_reported(servers: list[Beanstalkd]) -> None:
    """Issue 18 item 8: a frozen server (stopped before the exporter's first connection) is
    ``beanfleet_up 0`` (``{server}`` with several) within the timeout, and the others are
    still reported; with one server the same, without the label."""
    *live, frozen = servers
    every = ",".join(server.address for server in servers)

    def labels(server: Beanstalkd) -> tuple[tuple[str, str], ...]:
        return (("server", server.address),) if live else ()

    exporter = Served([BEANFLEET, "exporter", "-s", every, "--timeout", "1"])
    try:
        with frozen.frozen():
            s = scrape_within(exporter.port)
            for server in live:
                assert s[("beanfleet_up", labels(server))] == 1
                assert ("beanfleet_uptime_seconds", labels(server)) in s
            assert s[("beanfleet_up", labels(frozen))] == 0
            # The frozen server's series (with one server: every series) are only these two.
            assert not [k for k in s if k[0] != "beanfleet_up"
                        and set(labels(frozen)) <= set(k[1])
                        and k[0] != "beanfleet_scrape_duration_seconds"]  # fmt: skip
        wait_for(
            lambda: scrape_within(exporter.port)[("beanfleet_up", labels(frozen))],
            15,
            "the thawed server up",
        )
    finally:
        exporter.stop()


def _established(sockets: list[socket.socket]) -> bool:
    """True once every non-blocking connect has completed (the kernel queued it)."""
    _, writable, _ = select.select([], sockets, [], 0.2)
    return len(writable) == len(sockets) and all(
        s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 for s in sockets
    )


def test_a_burst_of_50_scrapers_is_queued_and_answered(beanstalkd: Beanstalkd) -> None:
    """Issue 18 item 12: 50 scrapers connecting while the exporter cannot accept (stopped,
    as a busy process would be) are all queued by the kernel and all answered (a listen
    backlog of 5 dropped all but 6 connections)."""
    exporter = Served([BEANFLEET, "exporter", "-s", beanstalkd.address])
    sockets: list[socket.socket] = []
    try:
        scrape_within(exporter.port)
        exporter.proc.send_signal(signal.SIGSTOP)
        try:
            for _ in range(50):
                s = socket.socket()
                s.setblocking(False)
                sockets.append(s)
                s.connect_ex(("127.0.0.1", exporter.port))
            wait_for(lambda: _established(sockets), 10, "50 connections in the listen queue")
        finally:
            exporter.proc.send_signal(signal.SIGCONT)
        for s in sockets:
            s.setblocking(True)
            s.settimeout(BOUND)
            s.sendall(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        for s in sockets:
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
            assert reply.startswith(b"HTTP/1.0 200"), reply[:100]
            assert b"\nbeanfleet_up 1.0\n" in reply
    finally:
        for s in sockets:
            s.close()
        exporter.stop()


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_unreadable_db_files_are_skipped_with_one_warning_each(tmp_path: Path) -> None:
    """Issue 18 item 12: a 0-byte or truncated ``*.db`` file in the metrics directory (a
    live process's, or a dead one's that tidying folds) no longer makes every scrape of
    the endpoint fail with 500: it is skipped with one warning, the rest is served."""
    directory = tmp_path / "metrics"
    metrics = WorkerMetrics(directory, "p")  # this test's process: a live worker
    try:
        metrics.finished.append(("t", "deleted", 0.01))
        metrics.flush()
        valid = (directory / f"counter_{os.getpid()}.db").read_bytes()
        endpoint = Served([BEANFLEET, "metrics-endpoint", "--dir", str(directory)])
        try:
            (directory / "histogram_1.db").write_bytes(b"")  # pid 1 lives: merged, not folded
            (directory / "counter_1.db").write_bytes(valid[:100])  # says it holds more
            (directory / f"counter_{_dead_pid()}.db").write_bytes(b"\0\0")  # folded by tidying
            for _ in range(3):
                s = scrape_within(endpoint.port)
                key = (
                    "beanfleet_worker_jobs_total",
                    (("outcome", "deleted"), ("pool", "p"), ("tube", "t")),
                )
                assert s[key] == 1
                assert s[("beanfleet_worker_processes", (("pool", "p"),))] == 1
        finally:
            endpoint.proc.kill()
            assert endpoint.proc.stderr is not None
            warnings = endpoint.proc.stderr.read().splitlines()
            endpoint.stop()
    finally:
        metrics.close()
    assert len(warnings) == 3, warnings
    for line in warnings:
        assert line.startswith("beanfleet: warning: skipping unreadable metrics file "), line
    assert "Traceback" not in "\n".join(warnings)


def test_a_full_file_system_does_not_stop_the_endpoint(tmp_path: Path) -> None:
    """Issue 18 item 11: with the metrics directory's file system full, the endpoint starts
    and serves (a dead worker's files, which it cannot fold into the archive, are summed as
    they are), says so once, and folds them once there is space again."""
    source = tmp_path / "source"
    metrics = WorkerMetrics(source, "p")
    metrics.finished.append(("t", "deleted", 0.01))
    metrics.flush()
    valid = (source / f"counter_{os.getpid()}.db").read_bytes()
    metrics.close()
    key = ("beanfleet_worker_jobs_total", (("outcome", "deleted"), ("pool", "p"), ("tube", "t")))
    with mounted(tmp_path / "small") as directory:
        dead = directory / f"counter_{_dead_pid()}.db"
        dead.write_bytes(valid)
        filler = fill(directory)
        endpoint = Served([BEANFLEET, "metrics-endpoint", "--dir", str(directory)])
        try:
            for _ in range(2):
                assert scrape_within(endpoint.port)[key] == 1
            assert dead.exists()
            filler.unlink()
            assert scrape_within(endpoint.port)[key] == 1
            assert not dead.exists()  # folded into the archive
            assert (directory / "counter_archive.db").exists()
        finally:
            endpoint.proc.kill()
            assert endpoint.proc.stderr is not None
            warnings = [*endpoint.before, *endpoint.proc.stderr.read().splitlines()]
            endpoint.stop()
    [line] = warnings
    assert line == (
        f"beanfleet: warning: cannot tidy metrics directory {directory}: "
        "no space left on device; serving its files as they are"
    )
