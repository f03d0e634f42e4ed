"""The Prometheus host: role monitoring's validate task (the action plugin
beanfleet.fleet.describe, part monitor) scrapes every queue host's exporter and every worker
host's metrics endpoint of the inventory, or fails with one line when monitoring is off.

Runs on localhost in an inventory whose other hosts are never contacted (their addresses
come from beanfleet_host_address)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from deploy_helpers import EXAMPLE_FLEET, run_in_inventory

PLAYBOOK = """
- name: Describe the Prometheus host
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Describe the Prometheus host
      ansible.builtin.include_role:
        name: monitoring
        tasks_from: validate.yml
    - name: Write the plan
      ansible.builtin.copy:
        content: "{{ __monitoring_model | to_json }}"
        dest: "{{ out_file }}"
        mode: "0644"
"""
INVENTORY = (
    "[queue]\n"
    "q1 beanfleet_host_address=10.0.0.5\n"
    "q2 beanfleet_host_address=10.0.0.6\n"
    "[workers]\n"
    "w1 beanfleet_host_address=10.0.0.7\n"
    "w2 beanfleet_host_address=10.0.0.8\n"
    "[monitor]\n"
    "localhost ansible_connection=local beanfleet_host_address=10.0.0.9\n"
)


def describe(tmp_path: Path, **settings: object) -> tuple[int, str, dict[str, object]]:
    # The example fleet's pools and thresholds; addresses from the inventory.
    example = yaml.safe_load(EXAMPLE_FLEET.read_text())
    for key in ("beanfleet_server", "monitoring_scrape_allow", "monitoring_worker_hosts"):
        example.pop(key)
    example.update(settings)
    result, out = run_in_inventory(tmp_path, PLAYBOOK, INVENTORY, example)
    plan = json.loads(out.read_text()) if out.exists() else {}
    return result.returncode, result.stdout + result.stderr, plan


def test_prometheus_scrapes_every_queue_and_worker_host(tmp_path: Path) -> None:
    code, output, plan = describe(tmp_path)
    assert code == 0, output[-3000:]
    assert plan["exporter_targets"] == ["10.0.0.5:9650", "10.0.0.6:9650"]
    assert plan["worker_targets"] == ["10.0.0.7:9651", "10.0.0.8:9651"]
    assert [f["path"] for f in plan["files"]] == [
        "/etc/prometheus/beanfleet.rules.yml",
        "/etc/prometheus/prometheus.yml",
    ]
    assert all(f["validate"].startswith("/usr/bin/promtool check ") for f in plan["files"])


def test_a_monitor_host_without_monitoring_is_one_line_error(tmp_path: Path) -> None:
    code, output, plan = describe(tmp_path, monitoring_enabled=False)
    assert code != 0 and not plan
    assert "monitoring_enabled is false: the fleet has no metrics to scrape" in output
