"""The fleet description's monitoring settings (``monitoring_*``) and what follows from them:
metrics endpoints, Prometheus scrape targets, alert thresholds and ``for:`` durations.

Part of the fleet model (:mod:`beanfleet.fleet` merges these defaults and types into its own
and calls :func:`check`); standard library only, like it.  Everything is off until
``monitoring_enabled: true``, so fleet descriptions written before it render the same files.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any

from beanfleet.errors import ConfigError

PREFIX = "monitoring_"

# Inventory group names (Ansible's rule: letters, digits, underscores).
GROUP_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# A Prometheus duration: 30s, 5m, 1h30m, 0s.
DURATION_PATTERN = r"^(0|([0-9]+(ms|s|m|h|d|w|y))+)$"
# beanstalkd's tube rule (beanfleet.fleet.TUBE_PATTERN says the same).
TUBE_PATTERN = r"^[A-Za-z0-9+/;.$_()][A-Za-z0-9+/;.$_()-]{0,199}$"

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

DEFAULTS: dict[str, Any] = {
    "monitoring_enabled": False,
    "monitoring_scrape_group": "monitor",
    "monitoring_scrape_allow": None,
    "monitoring_worker_hosts": None,
    "monitoring_exporter_port": 9650,
    "monitoring_worker_port": 9651,
    "monitoring_scrape_interval": "15s",
    "monitoring_oldest_ready_age": 300,
    "monitoring_tube_oldest_ready_age": {},
    "monitoring_failure_rate": 0.1,
    "monitoring_pool_failure_rate": {},
    "monitoring_binlog_free_ratio": 0.1,
    "monitoring_alert_for": {},
}
TYPES: dict[str, str] = {
    "monitoring_enabled": "bool",
    "monitoring_scrape_group": "str",
    "monitoring_scrape_allow": "list",
    "monitoring_worker_hosts": "list",
    "monitoring_exporter_port": "int",
    "monitoring_worker_port": "int",
    "monitoring_scrape_interval": "str",
    "monitoring_oldest_ready_age": "int",
    "monitoring_tube_oldest_ready_age": "dict",
    "monitoring_failure_rate": "float",
    "monitoring_pool_failure_rate": "dict",
    "monitoring_binlog_free_ratio": "float",
    "monitoring_alert_for": "dict",
}
# Defaults the inventory gives (offline rendering with monitoring on must spell them out).
INVENTORY_DEFAULTS = {
    "monitoring_scrape_allow": "the addresses of the hosts of group monitoring_scrape_group",
    "monitoring_worker_hosts": "the addresses of the hosts of group 'workers'",
}
WORKER_GROUP = "workers"


def _port(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ConfigError(f"{name} must be an integer between 1 and 65535, got {value!r}")
    return value


def _seconds(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a whole number of seconds >= 1, got {value!r}")
    return value


def _ratio(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ConfigError(f"{name} must be a ratio > 0 and <= 1, got {value!r}")
    return float(value)


def _duration(name: str, value: Any) -> str:
    if not isinstance(value, str) or not re.match(DURATION_PATTERN, value):
        raise ConfigError(f"{name} must be a Prometheus duration like 30s, 5m or 1h, got {value!r}")
    return value


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

    enabled = merged["monitoring_enabled"]
    if not isinstance(enabled, bool):
        add(f"monitoring_enabled must be true or false, got {enabled!r}")
    out["enabled"] = enabled is True
    group = merged["monitoring_scrape_group"]
    if not isinstance(group, str) or not re.match(GROUP_PATTERN, group):
        add(f"monitoring_scrape_group must be an inventory group name, got {group!r}")
    out["scrape_group"] = group
    out["exporter_port"] = attempt("monitoring_exporter_port", _port)
    out["worker_port"] = attempt("monitoring_worker_port", _port)
    out["scrape_interval"] = attempt("monitoring_scrape_interval", _duration)
    out["oldest_ready_age"] = attempt("monitoring_oldest_ready_age", _seconds)
    out["tube_oldest_ready_age"] = (
        attempt(
            "monitoring_tube_oldest_ready_age",
            _mapping,
            lambda k: isinstance(k, str) and re.match(TUBE_PATTERN, k) is not None,
            "a tube name",
            _seconds,
        )
        or {}
    )
    out["failure_rate"] = attempt("monitoring_failure_rate", _ratio)
    out["pool_failure_rate"] = (
        attempt(
            "monitoring_pool_failure_rate",
            _mapping,
            lambda k: pools is None or k in pools,
            f"a pool of the fleet ({', '.join(pools or []) or 'none'})",
            _ratio,
        )
        or {}
    )
    out["binlog_free_ratio"] = attempt("monitoring_binlog_free_ratio", _ratio)
    alert_for = attempt(
        "monitoring_alert_for",
        _mapping,
        lambda k: k in ALERT_FOR,
        f"an alert ({', '.join(ALERT_FOR)})",
        _duration,
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
