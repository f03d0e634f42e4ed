"""The fleet description's monitoring settings (``monitoring_*``) and what follows from them:
metrics endpoints, Prometheus scrape targets, alert thresholds and ``for:`` durations.

Owns the alerts (:data:`ALERT_FOR`) and :func:`check`, which the fleet's
:func:`~beanfleet.fleet.validate.check` calls: each setting's row (:mod:`.table`) gives its
type and range, checked by :mod:`beanfleet.bounds`; the rules here are the monitoring's
own (per-tube and per-pool mappings, the inventory's defaults).  Everything is off until
``monitoring_enabled: true``, so fleet descriptions written before it render the same files.

May import: the standard library, :mod:`beanfleet.errors`, :mod:`beanfleet.bounds` and the
fleet's :mod:`.schema`, :mod:`.table`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any

from beanfleet import bounds
from beanfleet.errors import ConfigError
from beanfleet.fleet.schema import TUBE_PATTERN
from beanfleet.fleet.table import BY_NAME, FLEET_DEFAULTS, FLEET_TYPES, SHARED_PREFIX

PREFIX = SHARED_PREFIX

# Every alert the rules file has, and how long its condition must hold before it fires.
ALERT_FOR: dict[str, str] = {
    "BeanstalkdDown": "1m",
    "BeanstalkdJobsBuried": "0s",
    "BeanstalkdOldestReadyJobTooOld": "1m",
    "BeanstalkdTubeWithoutWorkers": "5m",
    "BeanstalkdBinlogDiskFilling": "10m",
    "BeanfleetPoolFailureRate": "10m",
    "BeanfleetWorkerProcessesMissing": "5m",
}

# The monitoring rows' views (the fleet's own include them).
DEFAULTS: dict[str, Any] = {k: v for k, v in FLEET_DEFAULTS.items() if k.startswith(PREFIX)}
TYPES: dict[str, str] = {k: v for k, v in FLEET_TYPES.items() if k.startswith(PREFIX)}
INVENTORY_DEFAULTS = {
    k: str(BY_NAME[k].inventory_default) for k in DEFAULTS if BY_NAME[k].inventory_default
}
WORKER_GROUP = "workers"


def _mapping(
    name: str,
    value: Any,
    key_ok: Callable[[Any], bool],
    key_rule: str,
    check: Callable[[str, Any], Any],
) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be a mapping of {key_rule} to values")
    out = {}
    for key, item in value.items():
        if not key_ok(key):
            raise ConfigError(f"{name}: {key!r} is not {key_rule}")
        out[str(key)] = check(f"{name}[{key}]", item)
    return out


def _addresses(name: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ConfigError(f"{name} must be a list of IP addresses or networks, got {value!r}")
    for item in value:
        try:
            ipaddress.ip_network(str(item), strict=False)
        except ValueError:
            raise ConfigError(f"{name}: {item!r} is not an IP address or network") from None
    return [str(a) for a in value]


def _hosts(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(
        isinstance(h, str) and h and not any(c.isspace() or c in "/[]" for c in h) for h in value
    ):
        raise ConfigError(f"{name} must be a list of host names or addresses, got {value!r}")
    return list(value)


def check(
    merged: Mapping[str, Any],
    pools: list[str] | None,
    *,
    offline: bool,
    groups: Mapping[str, tuple[str, ...]] | None,
    add: Callable[[str], None],
) -> dict[str, Any]:
    """The monitoring settings checked (problems go to ``add``, one line each) and resolved:
    the inventory's defaults filled in, per-alert ``for:`` durations merged.  ``pools``: the
    fleet's pool names (None: not known here, their thresholds' names are not checked)."""
    out: dict[str, Any] = {}

    def attempt(name: str, func: Callable[..., Any], *args: Any) -> Any:
        try:
            return func(name, merged[name], *args)
        except ConfigError as exc:
            add(str(exc))
            return None

    def row(name: str) -> Any:
        return attempt(name, BY_NAME[name].check_value)

    enabled = merged["monitoring_enabled"]
    attempt("monitoring_enabled", bounds.setting_bool)
    out["enabled"] = enabled is True
    row("monitoring_scrape_group")
    group = merged["monitoring_scrape_group"]
    out["scrape_group"] = group
    out["exporter_port"] = row("monitoring_exporter_port")
    out["worker_port"] = row("monitoring_worker_port")
    out["scrape_interval"] = row("monitoring_scrape_interval")
    out["oldest_ready_age"] = row("monitoring_oldest_ready_age")
    out["tube_oldest_ready_age"] = (
        attempt(
            "monitoring_tube_oldest_ready_age",
            _mapping,
            lambda k: isinstance(k, str) and re.match(TUBE_PATTERN, k) is not None,
            "a tube name",
            BY_NAME["monitoring_tube_oldest_ready_age"].check_item,
        )
        or {}
    )
    out["failure_rate"] = row("monitoring_failure_rate")
    out["pool_failure_rate"] = (
        attempt(
            "monitoring_pool_failure_rate",
            _mapping,
            lambda k: pools is None or k in pools,
            f"a pool of the fleet ({', '.join(pools or []) or 'none'})",
            BY_NAME["monitoring_pool_failure_rate"].check_item,
        )
        or {}
    )
    out["binlog_free_ratio"] = row("monitoring_binlog_free_ratio")
    alert_for = attempt(
        "monitoring_alert_for",
        _mapping,
        lambda k: k in ALERT_FOR,
        f"an alert ({', '.join(ALERT_FOR)})",
        BY_NAME["monitoring_alert_for"].check_item,
    )
    out["alert_for"] = {**ALERT_FOR, **(alert_for or {})}
    for name, check_list, group_name in (
        ("monitoring_scrape_allow", _addresses, group),
        ("monitoring_worker_hosts", _hosts, WORKER_GROUP),
    ):
        value = merged[name]
        key = name.removeprefix(PREFIX)
        if value is None:
            if groups is not None:
                value = list(dict.fromkeys(groups.get(str(group_name), ())))
            elif offline and out["enabled"]:
                add(
                    f"{name} must be set for offline rendering with monitoring_enabled "
                    f"(Ansible defaults it to {INVENTORY_DEFAULTS[name]})"
                )
                value = []
            else:
                value = []
        try:
            out[key] = check_list(name, value)
        except ConfigError as exc:
            add(str(exc))
            out[key] = []
    return out
