"""Action beanfleet.fleet.describe: ask beanfleet.fleet about the fleet, on the controller.

Reads the role's settings from the task's variables (role defaults included), the queue
host's and every host's addresses from the inventory, and returns beanfleet.fleet's plan
for this host (worker_plan, queue_plan or monitor_plan, as plain variables: ``as_vars()``),
or fails with every problem, one line each.
It touches no host, so a role's first task can run it before anything changes.
"""

from __future__ import annotations

import sys
from typing import Any

from ansible.plugins.action import ActionBase

# What the inventory defaults (server, firewall allow list) read from a host.
_HOST_VARS = (
    "beanfleet_host_address",
    "ansible_default_ipv4",
    "ansible_host",
    "beanstalkd_listen_address",
    "beanstalkd_port",
)
_PARTS = ("workers", "queue", "monitor")


class ActionModule(ActionBase):
    """See the module's documentation (plugins/modules/describe.py)."""

    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        part = self._task.args.get("part")
        if part not in _PARTS:
            return {**result, "failed": True, "msg": f"part must be one of: {', '.join(_PARTS)}"}
        try:
            from beanfleet import fleet  # noqa: PLC0415 - the one clear line below if missing
        except ImportError as exc:
            return {
                **result,
                "failed": True,
                "msg": (
                    f"the Python of this Ansible ({sys.executable}) cannot import beanfleet "
                    f"({exc}): pip install beanfleet next to ansible-core"
                ),
            }
        # The Prometheus host reads the whole description (pools and tubes for its rules).
        checked = None if part == "monitor" else part
        description = self._templar.template(
            {k: task_vars[k] for k in fleet.settings(checked) if k in task_vars}
        )
        model, problems = fleet.check(
            description, inventory=self._inventory(task_vars, fleet), part=checked
        )
        if model is None:
            return {**result, "failed": True, "msg": "\n".join(problems)}
        if part == "workers":
            plan = fleet.worker_plan(model).as_vars()
            self._venv(fleet, plan, description.get("beanfleet_wheelhouse"))
        elif part == "queue":
            plan = fleet.queue_plan(model).as_vars()
            self._venv(fleet, plan["exporter"], description.get("beanstalkd_exporter_wheelhouse"))
        else:
            try:
                plan = fleet.monitor_plan(model).as_vars()
            except fleet.ConfigError as exc:
                return {**result, "failed": True, "msg": str(exc)}
        # The plan holds the pools' env (secrets): never print it.
        return {**result, **plan, "changed": False, "_ansible_no_log": True}

    @staticmethod
    def _venv(fleet: Any, plan: dict[str, Any], wheelhouse: Any) -> None:
        """Where a venv's wheels come from, and their digest (tasks/venv.yml of role
        beanfleet installs nothing while the venv's recorded digest matches)."""
        plan["wheelhouse"] = str(wheelhouse or "")
        plan["wheelhouse_digest"] = fleet.wheelhouse_digest(plan["wheelhouse"], plan["packages"])

    def _inventory(self, task_vars: dict[str, Any], fleet: Any) -> Any:
        groups = task_vars.get("groups", {})
        hostvars = task_vars.get("hostvars", {})

        def host(name: str) -> dict[str, Any]:
            found = hostvars[name]
            values = {k: found[k] for k in _HOST_VARS if k in found}
            return {"inventory_hostname": name, **self._templar.template(values)}

        queues = tuple(host(n) for n in groups.get("queue", []))
        address = {n: fleet.host_address(n, host(n)) for n in groups.get("all", [])}
        # Each group's addresses: the monitoring defaults (who may scrape, what to scrape).
        by_group = {
            g: tuple(address[n] for n in members if n in address)
            for g, members in groups.items()
            if g not in ("all", "ungrouped")
        }
        return fleet.Inventory(queues=queues, addresses=tuple(address.values()), groups=by_group)
