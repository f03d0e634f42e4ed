"""`beanfleet render` and the Ansible roles write byte-identical files (and modes, links).

The roles' own tasks (tasks/validate.yml, which asks beanfleet.fleet for the plan, then
tasks/files.yml, which writes the plan's files) run on localhost with connection local,
writing under a scratch root instead of /.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from beanfleet import fleet
from beanfleet.fleet.render import MANIFEST, render
from deploy_helpers import EXAMPLE_FLEET, run_playbook, tree

PLAYBOOK = Path(__file__).with_name("render_playbook.yml")

# A second description exercising the corners: no binlog, fsync every write, IPv6 in the
# allow list, quotes-free secrets with shell/systemd metacharacters, a tube name with
# `$` and `;`, pool defaults overridden, limits switched off, prefetch on, an absent pool.
CORNERS: dict[str, Any] = {
    "beanfleet_server": "[fd00::10]:11301",
    "beanfleet_manager": "systemd",
    "beanfleet_packages": ["beanfleet-example", "other==1.0"],
    "beanfleet_wheelhouse": "/nonexistent/wheelhouse",
    "beanfleet_log_format": "json",
    "beanfleet_stop_grace": 5,
    "beanfleet_pool_defaults": {"processes": 3, "timeout": 2.5, "max_retries": 7},
    "beanfleet_pools": [
        {
            "name": "odd-pool_1",
            "tubes": {"a$b;c": "pkg.mod:Cls.run", "(x)": "m:f"},
            "processes": 2,
            "max_retries": 0,
            "backoff_base": 0.5,
            "backoff_cap": 9,
            "timeout": 7,
            "max_jobs": 0,
            "max_time": 0,
            "max_memory": 0,
            "prefetch": True,
            "env": {"SECRET": "p$a\\s`s %d", "NUM": 5},
            "state": "present",
        },
        {"name": "plain", "tubes": {"p": "m:f"}, "max_time": 12.5, "max_memory": 64.5},
        {"name": "gone", "state": "absent", "tubes": {"g": "m:f"}},
    ],
    "beanstalkd_listen_address": "10.1.2.3",
    "beanstalkd_port": 11301,
    "beanstalkd_binlog_dir": "",
    "beanstalkd_fsync_ms": 0,
    "beanstalkd_binlog_size": 4096,
    "beanstalkd_max_job_size": 1048576,
    "beanstalkd_firewall": True,
    "beanstalkd_firewall_allow": ["10.1.2.0/24", "fd00::/64", "127.0.0.1"],
    "beanstalkd_exporter_wheelhouse": "/nonexistent/wheelhouse",
    "monitoring_enabled": True,
    "monitoring_scrape_group": "prom_hosts",
    "monitoring_scrape_allow": ["10.1.2.50", "fd00::50"],
    "monitoring_worker_hosts": ["10.1.2.4", "fd00::4", "w5.example"],
    "monitoring_exporter_port": 19650,
    "monitoring_worker_port": 19651,
    "monitoring_scrape_interval": "30s",
    "monitoring_oldest_ready_age": 60,
    "monitoring_tube_oldest_ready_age": {"a$b;c": 5, "(x)": 7200},
    "monitoring_failure_rate": 1,
    "monitoring_pool_failure_rate": {"plain": 0.05},
    "monitoring_binlog_free_ratio": 0.2,
    "monitoring_alert_for": {"BeanstalkdDown": "30s", "BeanstalkdJobsBuried": "1h30m"},
}


def test_the_corners_fleet_uses_every_setting() -> None:
    assert sorted(CORNERS) == sorted(fleet.FLEET_DEFAULTS)
    assert sorted(CORNERS["beanfleet_pools"][0]) == sorted(fleet.POOL_KEYS)
    fleet.validate(CORNERS, offline=True)


def description(fleet: str, tmp_path: Path) -> Path:
    """The FLEET.yml of ``fleet``: the example fleet's, or the corners' written out."""
    if fleet == "example":
        return EXAMPLE_FLEET
    config = tmp_path / "corners.yml"
    config.write_text(yaml.safe_dump(CORNERS), encoding="utf-8")
    return config


def ansible_render(config: Path, manager: str, root: Path) -> None:
    result = run_playbook(
        PLAYBOOK,
        "-e", f"@{config}",
        "-e", f"beanfleet_manager={manager}",
        "-e", f"__beanfleet_root={root}",
        "-e", f"__beanstalkd_root={root}",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


@pytest.mark.parametrize("manager", ["systemd", "supervisor"])
@pytest.mark.parametrize("fleet", ["example", "corners"])
def test_ansible_and_render_write_the_same_bytes(tmp_path: Path, manager: str, fleet: str) -> None:
    config = description(fleet, tmp_path)
    by_render = tmp_path / "render"
    by_ansible = tmp_path / "ansible"
    by_ansible.mkdir()
    render(config, by_render, manager)
    ansible_render(config, manager, by_ansible)

    expected = tree(by_render)
    expected.pop(MANIFEST)
    got = tree(by_ansible)
    assert sorted(got) == sorted(expected)
    for path, (kind, mode, content) in expected.items():
        assert got[path][0] == kind, path
        assert got[path][1] == mode, f"{path}: mode {got[path][1]:o} != {mode:o}"
        assert got[path][2] == content, f"{path} differs:\n{got[path][2]!r}\n{content!r}"


@pytest.mark.parametrize("fleet", ["example", "corners"])
def test_monitoring_role_and_render_write_the_same_prometheus_files(
    tmp_path: Path, fleet: str
) -> None:
    config = description(fleet, tmp_path)
    by_render = tmp_path / "render"
    by_ansible = tmp_path / "ansible"
    by_ansible.mkdir()
    render(config, by_render, prometheus=True)
    result = run_playbook(
        PLAYBOOK,
        "-e", f"@{config}",
        "-e", f"__beanfleet_root={tmp_path / 'workers'}",
        "-e", f"__beanstalkd_root={tmp_path / 'queue'}",
        "-e", f"__monitoring_root={by_ansible}",
        "-e", "beanfleet_render_prometheus=true",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    expected = tree(by_render)
    expected.pop(MANIFEST)
    got = tree(by_ansible)
    assert (
        sorted(got)
        == sorted(expected)
        == [
            "etc/prometheus/beanfleet.rules.yml",
            "etc/prometheus/prometheus.yml",
        ]
    )
    for path, (kind, mode, content) in expected.items():
        assert got[path] == (kind, mode, content), path
