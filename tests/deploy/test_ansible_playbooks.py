"""ansible-playbook: syntax, and bad fleet settings stopping the run before any change.

The bad-value runs use the real site.yml against localhost (connection local, in groups
queue and workers): its first play validates, so a failure there means nothing changed.
They run in --check mode as a safety net: should validation ever let a bad value through,
the later plays must not install or stop anything on the machine running the tests.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from beanfleet import fleet
from beanfleet.errors import ConfigError
from deploy_helpers import ANSIBLE_DIR, run_playbook

SITE = ANSIBLE_DIR / "site.yml"
INVENTORY = (
    "[queue]\nlocalhost ansible_connection=local\n[workers]\nlocalhost ansible_connection=local\n"
)


@pytest.mark.parametrize("inventory", ["example", "vagrant"])
def test_syntax(inventory: str) -> None:
    result = run_playbook(
        SITE, "--syntax-check", inventory=str(ANSIBLE_DIR / "inventories" / inventory)
    )
    assert result.returncode == 0, result.stdout + result.stderr


def run_site(tmp_path: Path, description: dict[str, Any], **env: str) -> str:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(INVENTORY)
    extra = tmp_path / "fleet.json"
    extra.write_text(json.dumps(description))
    result = run_playbook(SITE, "--check", "-e", f"@{extra}", inventory=str(inventory), env=env)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    recap = re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+)", output)
    assert recap and recap.group(1) == "0", output[-3000:]
    # Stopped in the validation play: the queue and worker plays never started.
    assert "PLAY [Queue host]" not in output and "PLAY [Worker hosts]" not in output
    return output


def with_pool(example: dict[str, Any], **settings: Any) -> dict[str, Any]:
    description = copy.deepcopy(example)
    description["beanfleet_pools"][0].update(settings)
    return description


ARGUMENT_SPEC_CASES = [
    # (overrides of the first example pool or of the fleet, text the argument spec prints)
    ({"fleet": {"beanfleet_manager": "upstart"}},
     "value of beanfleet_manager must be one of: systemd, supervisor, got: upstart"),
    ({"pool": {"processes": "many"}}, "processes"),
    ({"pool": {"workers": 3}}, "workers"),
    ({"fleet": {"beanstalkd_firewall": "maybe"}}, "beanstalkd_firewall"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "text"), ARGUMENT_SPEC_CASES, ids=[t for _, t in ARGUMENT_SPEC_CASES]
)
def test_argument_specs_reject_before_any_change(
    tmp_path: Path, example_fleet: dict[str, Any], case: dict[str, Any], text: str
) -> None:
    description = with_pool(example_fleet, **case.get("pool", {}))
    description.update(case.get("fleet", {}))
    output = run_site(tmp_path, description)
    assert "Validating arguments against arg spec" in output
    assert text in output


# Rules the argument specs cannot express: the roles ask beanfleet.fleet
# (tasks/validate.yml, action beanfleet.fleet.describe), so Ansible prints the model's own
# message and `beanfleet render` and Ansible reject alike.
PARITY_CASES = {
    # Once accepted by the roles' Jinja rules and rejected by `beanfleet render`:
    "server port out of range": {"fleet": {"beanfleet_server": "queue:99999"}},
    "allow list: a word": {"fleet": {"beanstalkd_firewall_allow": ["cafe"]}},
    "allow list: no IPv4": {"fleet": {"beanstalkd_firewall_allow": ["999.1.1.1"]}},
    "negative process count": {"pool": {"processes": -1}},
    "handler without module:function": {"pool": {"tubes": {"emails": "send_email"}}},
    "invalid tube name": {"pool": {"tubes": {"-emails": "a.b:c"}}},
    "long tube name": {"pool": {"tubes": {"t" * 201: "a.b:c"}}},
    "bad pool name": {"pool": {"name": "bad name"}},
    "duplicate pool names": {"pool": {"name": "thumbnails"}},
    "zero timeout": {"pool": {"timeout": 0}},
    "cap below base": {"pool": {"backoff_base": 5, "backoff_cap": 1}},
    "negative max_memory": {"pool": {"max_memory": -1}},
    "env name": {"pool": {"env": {"1BAD": "x"}}},
    "env quotes": {"pool": {"env": {"TOKEN": "a'b"}}},
    "env comment": {"pool": {"env": {"TOKEN": "a ;b"}}},
    "bad server": {"fleet": {"beanfleet_server": "queue"}},
    "port out of range": {"fleet": {"beanstalkd_port": 0}},
    "negative fsync": {"fleet": {"beanstalkd_fsync_ms": -1}},
    "relative binlog dir": {"fleet": {"beanstalkd_binlog_dir": "binlog"}},
    "huge max job size": {"fleet": {"beanstalkd_max_job_size": 2000000000}},
    "allow list": {"fleet": {"beanstalkd_firewall_allow": ["10.0.0.1", "example.net"]}},
}


@pytest.mark.parametrize("name", sorted(PARITY_CASES))
def test_validation_messages_match_the_fleet_model(
    tmp_path: Path, example_fleet: dict[str, Any], name: str
) -> None:
    case = PARITY_CASES[name]
    description = with_pool(example_fleet, **case.get("pool", {}))
    description.update(case.get("fleet", {}))
    with pytest.raises(ConfigError) as info:
        fleet.validate(description, offline=True)
    message = str(info.value)
    output = run_site(tmp_path, description)
    assert f"msg: {message}" in output.replace("''", "'") or message in output, (
        f"Ansible did not say: {message}\n{output[-3000:]}"
    )


def test_every_problem_is_one_line_before_any_change(
    tmp_path: Path, example_fleet: dict[str, Any]
) -> None:
    description = with_pool(example_fleet, processes=0, timeout=-1)
    description["beanfleet_stop_grace"] = 0
    _, problems = fleet.check(description, offline=True)
    assert len(problems) == 3
    output = run_site(tmp_path, description)
    for line in problems:
        assert line in output.replace("''", "'"), f"Ansible did not say: {line}\n{output[-3000:]}"


def test_missing_beanfleet_package_is_one_line_before_any_change(
    tmp_path: Path, example_fleet: dict[str, Any]
) -> None:
    shadow = tmp_path / "shadow" / "beanfleet"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ImportError("No module named beanfleet")\n')
    output = run_site(tmp_path, example_fleet, PYTHONPATH=str(shadow.parent))
    assert "cannot import beanfleet" in output
    assert "pip install beanfleet next to ansible-core" in output
