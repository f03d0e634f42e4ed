"""The Prometheus exporter: scraped over HTTP with beanstalkd up, killed and back again; in
process over one server and two (the same collector; the ``server`` label only with two)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import greenstalk
import pytest
from beanfleet.metrics.exporter import BeanstalkdCollector, make_registry
from beanstalkd_server import Beanstalkd, free_port
from prometheus_client import generate_latest
from scraping import Served, parse, scrape

BEANFLEET = str(Path(sys.executable).with_name("beanfleet"))


def Exporter(server: str, *extra: str) -> Served:
    """``beanfleet exporter`` as a child process on a port of its own choosing."""
    return Served([BEANFLEET, "exporter", "--server", server, *extra])


@pytest.fixture
def exporter(beanstalkd: Beanstalkd) -> Iterator[Served]:
    running = Exporter(beanstalkd.address)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def filled(
    beanstalkd: Beanstalkd, request: pytest.FixtureRequest
) -> Iterator[greenstalk.Client[bytes]]:
    """Tube emails: 2 ready (one urgent, one old at low priority), 1 delayed, 1 buried and
    1 reserved by this client, which stays connected as a worker.  An indirect parameter
    is how long the old job waits before the rest arrive."""
    with greenstalk.Client(beanstalkd.pair, encoding=None, use="emails", watch="emails") as c:
        c.put(b"old", priority=5000)
        time.sleep(getattr(request, "param", 0))
        c.put(b"to bury", priority=10)
        c.bury(c.reserve(timeout=0))
        c.put(b"to reserve", priority=10)
        c.reserve(timeout=0)
        c.put(b"urgent", priority=10)
        c.put(b"later", delay=300)
        yield c


@pytest.mark.parametrize("filled", [1.1], indirect=True)  # old job visibly older
def test_scrape_reports_tubes_and_server(
    beanstalkd: Beanstalkd, filled: greenstalk.Client[bytes], exporter: Exporter
) -> None:
    s = scrape(exporter.port)
    assert s[("beanfleet_up", ())] == 1
    tube = (("tube", "emails"),)
    for state, count in {"ready": 2, "reserved": 1, "delayed": 1, "buried": 1}.items():
        assert s[("beanfleet_tube_jobs", (("state", state), ("tube", "emails")))] == count
        assert s[("beanfleet_jobs", (("state", state),))] == count
    assert s[("beanfleet_tube_urgent_jobs", tube)] == 1
    assert s[("beanfleet_tube_oldest_ready_age_seconds", tube)] >= 1
    assert s[("beanfleet_tube_next_ready_age_seconds", tube)] == 0
    assert s[("beanfleet_tube_oldest_ready_exact", tube)] == 1
    assert s[("beanfleet_tube_jobs_created_total", tube)] == 5
    assert s[("beanfleet_tube_watching_connections", tube)] == 1
    assert s[("beanfleet_tube_paused", tube)] == 0
    assert s[("beanfleet_jobs_created_total", ())] == 5
    assert s[("beanfleet_commands_total", (("command", "put"),))] == 5
    assert s[("beanfleet_commands_total", (("command", "bury"),))] == 1
    assert s[("beanfleet_workers", ())] == 1
    assert s[("beanfleet_connections", ())] >= 2  # the worker and the exporter
    assert ("beanfleet_uptime_seconds", ()) in s
    assert s[("beanfleet_max_job_size_bytes", ())] == 65535
    assert s[("beanfleet_binlog_records_written_total", ())] > 0
    assert ("beanfleet_binlog_current_index", ()) in s
    assert s[("beanfleet_draining", ())] == 0
    info = next(key for key in s if key[0] == "beanfleet_server_info")
    assert dict(info[1])["version"].startswith("1.")


def test_counters_grow_between_scrapes(
    beanstalkd: Beanstalkd, filled: greenstalk.Client[bytes], exporter: Exporter
) -> None:
    before = scrape(exporter.port)
    filled.put(b"one more")
    after = scrape(exporter.port)
    key = ("beanfleet_commands_total", (("command", "put"),))
    assert after[key] == before[key] + 1
    tube = (("tube", "emails"),)
    assert after[("beanfleet_tube_jobs_created_total", tube)] == 6


def test_beanstalkd_down_is_up_0_and_recovers(
    beanstalkd: Beanstalkd, filled: greenstalk.Client[bytes], exporter: Exporter
) -> None:
    assert scrape(exporter.port)[("beanfleet_up", ())] == 1
    beanstalkd.kill()
    down = scrape(exporter.port)
    assert down[("beanfleet_up", ())] == 0
    # Nothing stale: no per-tube series, and no server series from before it went down.
    assert sorted(name for name, _ in down) == ["beanfleet_scrape_duration_seconds", "beanfleet_up"]
    assert scrape(exporter.port)[("beanfleet_up", ())] == 0
    beanstalkd.start()
    back = scrape(exporter.port)
    assert back[("beanfleet_up", ())] == 1
    # The binlog brought the jobs back (the reserved one is ready again).
    assert back[("beanfleet_tube_jobs", (("state", "ready"), ("tube", "emails")))] == 3


def test_exporter_starts_while_beanstalkd_is_unreachable() -> None:
    port = free_port()
    running = Exporter(f"127.0.0.1:{port}")
    try:
        s = scrape(running.port)
        assert s[("beanfleet_up", ())] == 0
        assert ("beanfleet_scrape_duration_seconds", ()) in s
    finally:
        running.stop()


def test_listen_errors_are_one_line(exporter: Exporter, beanstalkd: Beanstalkd) -> None:
    taken = subprocess.run(
        [
            BEANFLEET,
            "exporter",
            "-s",
            beanstalkd.address,
            "--listen",
            f"127.0.0.1:{exporter.port}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert taken.returncode == 1
    assert taken.stderr.startswith(f"beanfleet: error: cannot listen on 127.0.0.1:{exporter.port}")
    assert taken.stderr.count("\n") == 1
    bad = subprocess.run(
        [BEANFLEET, "exporter", "-s", beanstalkd.address, "--listen", "nowhere"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert bad.returncode == 2  # a usage error, like every malformed option
    [line] = bad.stderr.splitlines()
    assert line.startswith("beanfleet: error: Invalid value for '--listen': ")
    assert "invalid listen address 'nowhere': expected HOST:PORT" in line


@pytest.mark.parametrize("server", ["garbage", "host:99999", "host:١١٣٠٠"])
def test_a_bad_server_address_refuses_to_start(server: str) -> None:
    # It used to start and serve beanfleet_up 0 forever.
    result = subprocess.run(
        [BEANFLEET, "exporter", "-s", server, "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("beanfleet: error: Invalid value for '--server': invalid server")


def test_collector_in_process(beanstalkd: Beanstalkd, filled: greenstalk.Client[bytes]) -> None:
    collector = BeanstalkdCollector([beanstalkd.address], label_servers=False)
    registry = make_registry(collector)
    try:
        s = parse(generate_latest(registry).decode())
        assert s[("beanfleet_up", ())] == 1
        assert s[("beanfleet_tube_jobs", (("state", "buried"), ("tube", "emails")))] == 1
        beanstalkd.kill()
        assert parse(generate_latest(registry).decode())[("beanfleet_up", ())] == 0
    finally:
        collector.close()


def test_binlog_disk_space_is_served_while_beanstalkd_is_down(
    beanstalkd: Beanstalkd, tmp_path: Path
) -> None:
    running = Exporter(beanstalkd.address, "--binlog-dir", str(tmp_path))
    try:
        up = scrape(running.port)
        size = up[("beanfleet_binlog_filesystem_size_bytes", ())]
        avail = up[("beanfleet_binlog_filesystem_avail_bytes", ())]
        assert 0 < avail <= size
        beanstalkd.kill()
        down = scrape(running.port)
        assert down[("beanfleet_up", ())] == 0
        # A full disk is a reason for beanstalkd to be down: still served.
        assert down[("beanfleet_binlog_filesystem_size_bytes", ())] == size
    finally:
        running.stop()
    missing = Exporter(beanstalkd.address, "--binlog-dir", str(tmp_path / "nope"))
    try:
        assert ("beanfleet_binlog_filesystem_size_bytes", ()) not in scrape(missing.port)
    finally:
        missing.stop()


def test_every_server_is_asked_and_a_dead_ones_series_dropped(servers: list[Beanstalkd]) -> None:
    """One collector for one server and for two: with two every sample has a ``server``
    label (none with one, as before); a dead server is ``beanfleet_up 0`` with no stale
    per-tube series; each family appears once.  (From tests/multi/test_multi_admin.py.)"""
    for n, server in enumerate(servers):
        with greenstalk.Client(server.pair, encoding=None, use=f"t{n}") as client:
            client.put(b"{}")
    labelled = len(servers) > 1

    def key(server: Beanstalkd) -> str | None:
        return server.address if labelled else None

    collector = BeanstalkdCollector([s.address for s in servers], label_servers=labelled)
    try:
        samples = [s for f in collector.collect() for s in f.samples]
        assert all(("server" in s.labels) == labelled for s in samples)
        ups = {s.labels.get("server"): s.value for s in samples if s.name == "beanfleet_up"}
        assert ups == {key(s): 1 for s in servers}
        dead = servers[0]
        dead.kill()
        samples = [s for f in collector.collect() for s in f.samples]
        ups = {s.labels.get("server"): s.value for s in samples if s.name == "beanfleet_up"}
        assert ups == {key(s): 0 if s is dead else 1 for s in servers}
        tubes = {s.labels.get("tube") for s in samples if s.labels.get("server") == key(dead)}
        assert tubes == {None}  # no stale per-tube series for the dead server
        names = [f.name for f in collector.collect()]
        assert len(names) == len(set(names))  # each family once
    finally:
        collector.close()
