"""Priority 6: queued jobs survive beanstalkd restarts, kill -9 and a queue host restart.

The jobs go to a tube no worker watches (ready) and to the same tube delayed, so they stay
queued; beanstalkd's binlog (-b, -f 50) must bring them back.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator

import pytest
from fleetlib import Fleet, wait_for

TUBE = "fleet-test-persist"


def counts(fleet: Fleet) -> tuple[int, int] | None:
    try:
        with fleet.admin() as admin:
            if TUBE not in admin.tube_names():
                return (0, 0)
            (stats,) = admin.tube_stats([TUBE])
            return (stats.ready, stats.delayed)
    except Exception:
        return None


def reachable(fleet: Fleet) -> bool:
    try:
        with socket.create_connection((fleet.address("queue"), 11300), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def queued(fleet: Fleet) -> Iterator[tuple[int, int]]:
    with fleet.producer() as producer:
        ids = producer.put_many(TUBE, [{"n": i} for i in range(10)])
        ids += producer.put_many(TUBE, [{"n": i} for i in range(5)], delay=3600)
    got = counts(fleet)
    assert got == (10, 5), got
    yield (10, 5)
    with fleet.admin() as admin:
        for job_id in ids:
            admin.delete(job_id)


def _back(fleet: Fleet, old_pid: int) -> None:
    def up() -> bool:
        res = fleet.run("queue", "systemctl is-active beanstalkd")
        if res.stdout.strip() != "active":
            return False
        pid = fleet.main_pid("queue", "beanstalkd")
        return pid not in (0, old_pid) and reachable(fleet)

    wait_for("beanstalkd back", up, 90, 0.5)


def test_survives_systemctl_restart(fleet: Fleet, queued: tuple[int, int]) -> None:
    pid = fleet.main_pid("queue", "beanstalkd")
    fleet.check("queue", "systemctl restart beanstalkd")
    _back(fleet, pid)
    assert counts(fleet) == queued


def test_survives_kill_9(fleet: Fleet, queued: tuple[int, int]) -> None:
    # beanstalkd write()s each put to the binlog before replying: kill -9 loses nothing.
    pid = fleet.main_pid("queue", "beanstalkd")
    fleet.check("queue", f"kill -9 {pid}")
    _back(fleet, pid)  # Restart=on-failure
    assert counts(fleet) == queued


def test_survives_queue_host_restart(fleet: Fleet, queued: tuple[int, int]) -> None:
    address = fleet.address("queue")
    pid = fleet.main_pid("queue", "beanstalkd")
    subprocess.run(["docker", "restart", fleet.container("queue")], check=True, timeout=120)
    new_address = subprocess.run(
        ["docker", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", fleet.container("queue")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert new_address == address, "queue host came back at another address"
    _back(fleet, pid)
    assert counts(fleet) == queued
