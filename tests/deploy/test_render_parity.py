"""`beanfleet render` and the Ansible roles write byte-identical files (and modes, links).

The roles' own file tasks (tasks/files.yml of roles beanstalkd and beanfleet) run on
localhost with connection local, writing under a scratch root instead of /.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from beanfleet.render import MANIFEST, render
from deploy_helpers import EXAMPLE_FLEET, run_playbook, tree

PLAYBOOK = Path(__file__).with_name("render_playbook.yml")

# A second description exercising the corners: no binlog, fsync every write, IPv6 in the
# allow list, quotes-free secrets with shell/systemd metacharacters, a tube name with
# `$` and `;`, pool defaults overridden, limits switched off, prefetch on, an absent pool.
CORNERS: dict[str, Any] = {
    "beanfleet_server": "[fd00::10]:11301",
    "beanfleet_log_format": "json",
    "beanfleet_stop_grace": 5,
    "beanfleet_pool_defaults": {"processes": 3, "timeout": 2.5},
    "beanfleet_pools": [
        {
            "name": "odd-pool_1",
            "tubes": {"a$b;c": "pkg.mod:Cls.run", "(x)": "m:f"},
            "max_jobs": 0,
            "max_time": 0,
            "max_memory": 0,
            "prefetch": True,
            "env": {"SECRET": "p$a\\s`s %d", "NUM": 5},
        },
        {"name": "gone", "state": "absent", "tubes": {"g": "m:f"}},
    ],
    "beanstalkd_listen_address": "10.1.2.3",
    "beanstalkd_port": 11301,
    "beanstalkd_binlog_dir": "",
    "beanstalkd_fsync_ms": 0,
    "beanstalkd_firewall_allow": ["10.1.2.0/24", "fd00::/64", "127.0.0.1"],
}


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
    if fleet == "example":
        config = EXAMPLE_FLEET
    else:
        config = tmp_path / "corners.yml"
        config.write_text(yaml.safe_dump(CORNERS), encoding="utf-8")
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
