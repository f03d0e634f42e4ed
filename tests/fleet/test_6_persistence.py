"""Priority 6: queued jobs survive beanstalkd restarts, kill -9 and a restart of the hosts.

The jobs go to a tube no worker watches (ready) and to the same tube delayed, so they stay
queued; beanstalkd's binlog (-b, -f 50) must bring them back. The host restart is a real
reboot on VMs (`vagrant reload`): everything must come back from the boot alone.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fleetlib import Fleet, _seq_base, port_open, wait_for

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
    host, port = fleet.server.rsplit(":", 1)
    return port_open(host, int(port))


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


@pytest.mark.vm
def test_survives_systemctl_restart(fleet: Fleet, queued: tuple[int, int]) -> None:
    pid = fleet.main_pid("queue", "beanstalkd")
    fleet.check("queue", "systemctl restart beanstalkd")
    _back(fleet, pid)
    assert counts(fleet) == queued


@pytest.mark.vm
def test_survives_kill_9(fleet: Fleet, queued: tuple[int, int]) -> None:
    # beanstalkd write()s each put to the binlog before replying: kill -9 loses nothing.
    pid = fleet.main_pid("queue", "beanstalkd")
    fleet.check("queue", f"kill -9 {pid}")
    _back(fleet, pid)  # Restart=on-failure
    assert counts(fleet) == queued


def _pools_running(fleet: Fleet, worker: str, manager: str) -> bool:
    if manager == "systemd":
        res = fleet.run(worker, "systemctl is-active beanfleet.target")
        return res.stdout.strip() == "active"
    out = fleet.run(worker, "supervisorctl status 'beanfleet:*'").stdout
    return bool(out.strip()) and all(" RUNNING " in line for line in out.splitlines())


@pytest.mark.vm
def test_everything_comes_back_after_host_restart(fleet: Fleet, queued: tuple[int, int]) -> None:
    """Restart the queue host and the first worker host; nobody runs a command after it."""
    worker, manager = next(iter(fleet.workers.items()))
    hosts = ["queue", worker]
    addresses = {h: fleet.address(h) for h in hosts}
    pid = fleet.main_pid("queue", "beanstalkd")
    fleet.restart_hosts(hosts)
    if fleet.provider == "docker":
        for h in hosts:
            now = fleet.check(h, "hostname -I").split()
            assert addresses[h] in now, f"{h} came back at {now}, not {addresses[h]}"
    _back(fleet, pid)
    assert counts(fleet) == queued
    wait_for(f"{worker}'s pools started at boot", lambda: _pools_running(fleet, worker, manager))
    # The restarted worker host takes jobs again: all of them, with the others stopped.
    others = [w for w in fleet.workers if w != worker]
    for other in others:
        fleet.check(other, _stop_pools(fleet.workers[other]))
    try:
        seq = _seq_base()
        with fleet.producer() as producer:
            producer.put_many("record", [{"seq": seq + i} for i in range(10)])
        counts_by_seq = fleet.wait_recorded({seq + i for i in range(10)})
        assert set(counts_by_seq.values()) == {1}, counts_by_seq
        ran_on = {w for w, _, s in fleet.record_lines() if seq <= s < seq + 10}
        assert ran_on == {worker}, ran_on
    finally:
        for other in others:
            fleet.check(other, _start_pools(fleet.workers[other]))


def _stop_pools(manager: str) -> str:
    if manager == "systemd":
        return "systemctl stop beanfleet.target"
    return "supervisorctl stop 'beanfleet:*'"


def _start_pools(manager: str) -> str:
    if manager == "systemd":
        return "systemctl start beanfleet.target"
    return "supervisorctl start 'beanfleet:*'"
