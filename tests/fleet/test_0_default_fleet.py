"""Priority 0: after `make up`, plain Vagrant commands work from the repository root.

`make up` builds the default fleet (docker provider, bookworm, systemd) with its Vagrant
state in ./.vagrant, so a user's first habits work with no environment set: `vagrant
status`, `vagrant ssh worker1`, `vagrant provision` (Vagrant's own Ansible provisioner and
inventory: it must find nothing to change after `make up`), `vagrant halt` / `vagrant up`.
Runs with the docker fleet tests only (the VM route is `make test-vm`).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator

import pytest
from fleetlib import FLEET_TIMES, PROVIDER, REPO, _provider_problem
from test_3_idempotence import recap

pytestmark = pytest.mark.skipif(PROVIDER != "docker", reason="the default fleet is docker's")
MACHINES = ["queue", "worker1", "worker2", "monitor", "outsider"]


def plain_env() -> dict[str, str]:
    """The environment of a user who just cloned the repository: no fleet settings."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BEANFLEET_", "VAGRANT_")) or k == "BEANFLEET_REQUIRE_FLEET"
    }


def run(*argv: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    t0 = time.monotonic()
    res = subprocess.run(
        list(argv),
        cwd=REPO,
        env=dict(plain_env(), **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    FLEET_TIMES["default"].append((" ".join(argv), time.monotonic() - t0))
    return res


@pytest.fixture(scope="module")
def default_fleet() -> Iterator[None]:
    problem = _provider_problem()
    if problem:
        if os.environ.get("BEANFLEET_REQUIRE_FLEET"):
            pytest.fail(f"fleet unavailable ({problem}) and BEANFLEET_REQUIRE_FLEET is set")
        pytest.skip(f"fleet unavailable ({problem})")
    res = run("make", "up", timeout=2400)
    (REPO / "build").mkdir(exist_ok=True)
    (REPO / "build" / "make-up.log").write_text(res.stdout + res.stderr)
    try:
        assert res.returncode == 0, "make up failed:\n" + (res.stdout + res.stderr)[-4000:]
        yield
    finally:
        run("make", "down", timeout=600)


def changed_tasks(output: str) -> list[str]:
    """'TASK NAME: changed: [host]' for each change in an ansible-playbook output."""
    task, found = "", []
    for line in output.splitlines():
        if line.startswith("TASK ["):
            task = line.strip("* ")
        elif line.startswith("changed:"):
            found.append(f"{task}: {line}")
    return found


def machine_states() -> dict[str, str]:
    res = run("vagrant", "status", "--machine-readable", timeout=120)
    assert res.returncode == 0, res.stderr
    return dict(re.findall(r"^\d*,([\w-]+),state,([\w-]+)$", res.stdout, re.M))


def test_vagrant_status_lists_the_fleet_running(default_fleet: None) -> None:
    assert machine_states() == {m: "running" for m in MACHINES}
    assert (REPO / ".vagrant" / "machines" / "worker1" / "docker" / "id").is_file()


def test_vagrant_ssh_answers(default_fleet: None) -> None:
    res = run("vagrant", "ssh", "worker1", "-c", "systemctl is-active beanfleet.target")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip() == "active"
    res = run("vagrant", "ssh", "queue", "-c", "systemctl is-active beanstalkd")
    assert res.stdout.strip() == "active", res.stdout + res.stderr


def test_vagrant_provision_changes_nothing(default_fleet: None) -> None:
    res = run("vagrant", "provision", timeout=1200, ANSIBLE_DIFF_ALWAYS="1")
    (REPO / "build" / "vagrant-provision.log").write_text(res.stdout + res.stderr)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    hosts = recap(res.stdout)
    assert set(hosts) == {"queue", "worker1", "worker2", "monitor"}, res.stdout[-2000:]
    changed = {h: r["changed"] for h, r in hosts.items() if r["changed"] or r["failed"]}
    assert not changed, f"changed on `vagrant provision`: {changed_tasks(res.stdout)}"


def test_vagrant_halt_and_up_again(default_fleet: None) -> None:
    res = run("vagrant", "halt", "worker2")
    assert res.returncode == 0, res.stderr
    assert machine_states()["worker2"] != "running"
    res = run("vagrant", "up", "worker2")
    assert res.returncode == 0, res.stdout + res.stderr
    assert machine_states()["worker2"] == "running"
    res = run("vagrant", "ssh", "worker2", "-c", "systemctl is-active beanfleet.target")
    assert res.stdout.strip() == "active", res.stdout + res.stderr
