"""Priority 8: two queue hosts (the trixie container fleet, fleetlib.TWO_QUEUE_RELEASES).

Each queue host runs its own beanstalkd, binlog and firewall; every pool serves both
(beanfleet_server defaults to every host of group `queue`). A stream of jobs spread over
both keeps flowing while one queue host is killed (kill -9 of beanstalkd) and then stopped
as a whole (the container); after it returns its jobs run. Lost: 0. Run twice: only jobs
that were reserved on the host when it went down (or a put whose reply was lost, which the
producer puts again because the stream asks for at-least-once).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import pytest
from beanfleet import Producer
from fleetlib import (
    BEANSTALKD_PORT,
    RECORD_LOG,
    Fleet,
    Stream,
    _seq_base,
    port_open,
    wait_for,
)

PROBE = (
    'python3 -c "import socket,sys; s=socket.socket(); s.settimeout(3); '
    "s.connect(('{addr}', 11300)); s.sendall(b'stats\\r\\n'); "
    'sys.stdout.write(s.recv(16).decode())"'
)


@pytest.fixture
def two(fleet: Fleet) -> Fleet:
    if len(fleet.queues) < 2:
        pytest.skip(f"fleet {fleet.name} has one queue host")
    return fleet


def test_each_queue_host_has_its_beanstalkd_binlog_and_firewall(two: Fleet) -> None:
    for q in two.queues:
        assert two.check(q, "systemctl is-active beanstalkd").strip() == "active", q
        two.check(q, "ls /var/lib/beanstalkd/binlog.*")
        two.check(q, "nft list table inet beanfleet_beanstalkd")
        assert two.check("worker1", PROBE.format(addr=two.address(q))).startswith("OK"), q
        res = two.run_outside(PROBE.format(addr=two.address(q)))
        assert res.returncode != 0, (q, res.stdout)


def test_every_pool_serves_every_queue_host(two: Fleet) -> None:
    base = _seq_base()
    by_server: dict[str, list[int]] = {}
    for i, server in enumerate(two.servers):
        seqs = [base + 1000 * i + n for n in range(10)]
        with Producer(server) as producer:  # this server only
            producer.put_many("record", [{"seq": s} for s in seqs])
        by_server[server] = seqs
    every = {s for seqs in by_server.values() for s in seqs}
    counts = two.wait_recorded(every)
    assert all(c == 1 for c in counts.values()), counts
    # The workers name each job SERVER/ID: both servers' jobs ran, on both worker hosts.
    lines = [(w, ref, s) for w, ref, s in two.record_lines() if s in every]
    for server, seqs in by_server.items():
        refs = {ref for _, ref, s in lines if s in set(seqs)}
        assert refs and all(ref.startswith(f"{server}/") for ref in refs), (server, refs)
    assert {w for w, _, _ in lines} == set(two.workers), lines


def _recorded(fleet: Fleet) -> int:
    total = 0
    for worker in fleet.workers:
        res = fleet.run(worker, f"wc -l < {RECORD_LOG} 2>/dev/null || echo 0")
        total += int(res.stdout.strip() or 0)
    return total


def _more(what: str, get: Callable[[], int], start: int, by: int, timeout: float = 60) -> int:
    """Wait until ``get()`` is at least ``start + by``; return it."""
    return int(wait_for(what, lambda: v if (v := get()) >= start + by else 0, timeout, 0.2))


def _record_processes(fleet: Fleet) -> int:
    """Worker processes watching `record` on every worker host."""
    n = 0
    for worker in fleet.workers:
        out = fleet.run(worker, "pgrep -fc 'beanfleet work.* --tube record=' || true")
        n += int(out.stdout.strip() or 0)
    return n


def test_stream_survives_a_queue_host_killed_and_stopped(two: Fleet) -> None:
    q2 = two.queues[1]
    container = two.container(q2)
    address = two.address(q2)
    # Jobs reserved on the host when it went down run again after it returns: at most one
    # running and one prefetched per process, at each of the two incidents; plus one
    # at-least-once put per incident whose reply was lost (put again on the other host).
    in_flight_bound = 2 * (2 * _record_processes(two) + 1)
    figures: dict[str, float] = {}
    with Stream(two, servers=two.servers) as stream:
        _more("the stream to start", stream.count, 0, 40)
        recorded = _recorded(two)
        _more("jobs to run", lambda: _recorded(two), recorded, 20)

        # kill -9: systemd restarts beanstalkd (Restart=on-failure); the binlog keeps its jobs.
        two.check(q2, "systemctl kill -s KILL beanstalkd")
        t0 = time.monotonic()
        put, recorded = stream.count(), _recorded(two)
        _more("puts after the kill", stream.count, put, 40)
        _more("jobs to run after the kill", lambda: _recorded(two), recorded, 20)
        wait_for(
            f"beanstalkd on {q2} back",
            lambda: two.run(q2, "systemctl is-active beanstalkd").stdout.strip() == "active",
            60,
            0.5,
        )
        figures["kill: 40 puts after"] = time.monotonic() - t0

        # The whole host stopped: producers keep putting to the other, workers keep working.
        subprocess.run(["docker", "stop", container], check=True, timeout=120)
        t0 = time.monotonic()
        put, recorded = stream.count(), _recorded(two)
        _more("puts while the host is down", stream.count, put, 100, timeout=120)
        _more("jobs to run while the host is down", lambda: _recorded(two), recorded, 100, 120)
        outage = time.monotonic() - t0
        figures["stopped: puts/s"] = (stream.count() - put) / outage

        subprocess.run(["docker", "start", container], check=True, timeout=120)
        wait_for(f"{q2} beanstalkd back", lambda: port_open(address, BEANSTALKD_PORT), 180, 0.5)
        back = subprocess.run(
            ["docker", "inspect", "--format", "{{.NetworkSettings.IPAddress}}", container],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.strip()  # fmt: skip
        assert back == address, f"{q2} came back at {back}, not {address}: the pools' list is stale"
        put = stream.count()
        _more("puts after the host returned", stream.count, put, 40)
    seqs = stream.seqs
    counts = two.wait_recorded(set(seqs), timeout=180)
    lost = set(seqs) - set(counts)
    assert not lost, f"{len(lost)} of {len(seqs)} jobs lost"
    doubled = {s: c for s, c in counts.items() if c > 1}
    assert len(doubled) <= in_flight_bound, (
        f"{len(doubled)} jobs ran twice (bound {in_flight_bound}: in flight at the two "
        f"incidents): {doubled}"
    )
    print(f"two queue hosts: {len(seqs)} jobs, {len(doubled)} twice, {figures}")
