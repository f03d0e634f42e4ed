"""Several queue hosts: the roles give every pool the whole server list, in inventory order.

Runs the beanfleet role's own validate task (the action plugin beanfleet.fleet.describe,
with the inventory's hostvars) on localhost, in an inventory whose group `queue` has two
hosts that are never contacted (their addresses come from beanfleet_host_address).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from deploy_helpers import EXAMPLE_FLEET, run_in_inventory

PLAYBOOK = """
- name: Describe the pools
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Describe the worker pools
      ansible.builtin.include_role:
        name: beanfleet
        tasks_from: validate.yml
    - name: Write the commands
      ansible.builtin.copy:
        content: >-
          {{ {"commands": __beanfleet_model.pools.values() | map(attribute='command') | list,
              "scrape_allow": __beanfleet_model.metrics.scrape_allow} | to_json }}
        dest: "{{ out_file }}"
        mode: "0644"
"""


def describe(tmp_path: Path, inventory: str, **settings: object) -> dict[str, list[str]]:
    # The example fleet's pools only: the server list and each queue host's port come
    # from the inventory (extra vars would override its host vars).
    example = yaml.safe_load(EXAMPLE_FLEET.read_text())
    description = {k: v for k, v in example.items() if k.startswith("beanfleet_")}
    description.pop("beanfleet_server", None)
    description.update(settings)
    result, out = run_in_inventory(tmp_path, PLAYBOOK, inventory, description)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    described: dict[str, list[str]] = json.loads(out.read_text())
    return described


def test_every_pool_gets_every_queue_host(tmp_path: Path) -> None:
    commands = describe(
        tmp_path,
        "[queue]\n"
        "q1 beanfleet_host_address=10.0.0.5\n"
        "q2 beanfleet_host_address=10.0.0.6 beanstalkd_port=11400\n"
        "[workers]\nlocalhost ansible_connection=local\n",
    )["commands"]
    assert commands
    assert all(" --server 10.0.0.5:11300,10.0.0.6:11400 " in c for c in commands), commands


def test_one_queue_host_is_one_server(tmp_path: Path) -> None:
    commands = describe(
        tmp_path,
        "[queue]\nq1 beanfleet_host_address=10.0.0.5\n"
        "[workers]\nlocalhost ansible_connection=local\n",
    )["commands"]
    assert commands
    assert all(" --server 10.0.0.5:11300 " in c for c in commands), commands


def test_the_monitor_group_may_scrape(tmp_path: Path) -> None:
    described = describe(
        tmp_path,
        "[queue]\nq1 beanfleet_host_address=10.0.0.5\n"
        "[monitor]\nmon beanfleet_host_address=10.0.0.9\n"
        "[workers]\nlocalhost ansible_connection=local beanfleet_host_address=10.0.0.6\n",
        monitoring_enabled=True,
    )
    assert described["scrape_allow"] == ["10.0.0.9"]
    assert all(" --metrics-dir " in c for c in described["commands"]), described
