"""Priority 1: beanstalkd and every pool's processes run as configured."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fleetlib import Fleet


@pytest.mark.vm
def test_beanstalkd_active_with_binlog(fleet: Fleet) -> None:
    assert fleet.check("queue", "systemctl is-active beanstalkd").strip() == "active"
    pid = fleet.main_pid("queue", "beanstalkd")
    cmdline = fleet.check("queue", f"tr '\\0' ' ' < /proc/{pid}/cmdline")
    assert re.search(r"-b /var/lib/beanstalkd(\s|$)", cmdline), cmdline
    assert re.search(r"-f 50(\s|$)", cmdline), cmdline
    assert re.search(r"-l 0\.0\.0\.0(\s|$)", cmdline), cmdline
    assert fleet.check("queue", f"ps -o user= -p {pid}").strip() == "beanstalkd"


@pytest.mark.vm
def test_beanstalkd_listens(fleet: Fleet) -> None:
    out = fleet.check("queue", "ss -H -ltnp 'sport = :11300'")
    assert re.search(r"0\.0\.0\.0:11300\s.*beanstalkd", out), out


@pytest.mark.vm
def test_beanstalkd_socket_masked(fleet: Fleet) -> None:
    res = fleet.run("queue", "systemctl is-enabled beanstalkd.socket")
    assert res.stdout.strip() == "masked", res.stdout + res.stderr


@pytest.mark.vm
def test_systemd_pools_on_worker1(fleet: Fleet, pools: list[dict[str, Any]]) -> None:
    for pool in pools:
        for n in range(1, pool["processes"] + 1):
            unit = f"beanfleet-worker@{pool['name']}-{n}.service"
            assert fleet.check("worker1", f"systemctl is-active {unit}").strip() == "active", unit
            pid = fleet.main_pid("worker1", unit)
            assert pid > 0, unit
            assert fleet.check("worker1", f"ps -o user= -p {pid}").strip() == "beanfleet", unit
            args = fleet.check("worker1", f"tr '\\0' ' ' < /proc/{pid}/cmdline").split()
            assert ("--prefetch" in args) == bool(pool.get("prefetch")), (unit, args)
        extra = fleet.run(
            "worker1",
            f"systemctl is-active beanfleet-worker@{pool['name']}-{pool['processes'] + 1}",
        )
        assert extra.stdout.strip() != "active", f"too many {pool['name']} processes"
    assert fleet.check("worker1", "systemctl is-active beanfleet.target").strip() == "active"
    # worker1 is not managed by supervisor
    assert fleet.run("worker1", "test -e /etc/supervisor/conf.d/beanfleet.conf").returncode != 0


def test_supervisor_pools_on_worker2(fleet: Fleet, pools: list[dict[str, Any]]) -> None:
    out = fleet.check("worker2", "supervisorctl status 'beanfleet:*'")
    status = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip()}
    expected = {
        f"beanfleet:beanfleet-{pool['name']}_{n:02d}"
        for pool in pools
        for n in range(1, pool["processes"] + 1)
    }
    assert set(status) == expected, out
    assert all(state == "RUNNING" for state in status.values()), out
    pids = re.findall(r"pid (\d+)", out)
    assert len(pids) == len(expected)
    users = fleet.check("worker2", f"ps -o user= -p {','.join(pids)}").split()
    assert users == ["beanfleet"] * len(expected), users
    for pool in pools:
        line = next(
            x for x in out.splitlines() if x.startswith(f"beanfleet:beanfleet-{pool['name']}_")
        )
        pid = re.search(r"pid (\d+)", line)
        assert pid is not None, line
        args = fleet.check("worker2", f"tr '\\0' ' ' < /proc/{pid.group(1)}/cmdline").split()
        assert ("--prefetch" in args) == bool(pool.get("prefetch")), (pool["name"], args)
    # no systemd worker units on the supervisor host
    units = fleet.run("worker2", "systemctl list-units --no-legend 'beanfleet-worker@*'")
    assert units.stdout.strip() == "", units.stdout
