"""The fleet description: one YAML mapping shared by Ansible and ``beanfleet render``.

The variable names are the Ansible inventory's (``group_vars``): ``beanfleet_*`` for the
worker pools, ``beanstalkd_*`` for the queue host.  This module is the ONE place that says
what those variables are, what their defaults are and which values are valid:

* :data:`POOL_DEFAULTS` and :data:`FLEET_DEFAULTS` are the defaults (the roles'
  ``defaults/main.yml`` and ``meta/argument_specs.yml`` must say the same; a test checks);
* :func:`validate` checks a description and raises :class:`~beanfleet.errors.ConfigError`
  with a one-line message naming the variable (and pool) at fault.  The Ansible roles check
  the same rules (``meta/argument_specs.yml`` for types and choices, ``tasks/validate.yml``
  for ranges and patterns, with the patterns below); a test feeds the same bad descriptions
  to both and compares the messages.

The values handed to the templates are the description's own (after defaults are filled in),
not converted copies, so ``beanfleet render`` and Ansible's ``template`` module see exactly
the same data and produce the same bytes.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from beanfleet.address import parse_server
from beanfleet.errors import ConfigError
from beanfleet.handlers import HandlerSpec
from beanfleet.retry import DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_CAP, DEFAULT_MAX_RETRIES

MANAGERS = ("systemd", "supervisor")
POOL_STATES = ("present", "absent")
LOG_FORMATS = ("text", "json")

# Where things live on the hosts (not settings: the roles and the templates use them as is).
VENV = "/opt/beanfleet/venv"
STATE_DIR = "/var/lib/beanfleet"
USER = "beanfleet"

# Patterns, written so that Python's ``re`` and Ansible's ``match`` test read them alike.
# Pool names become unit instance names (``beanfleet-worker@NAME-1``), supervisor program
# names and file names.
POOL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
# MODULE:FUNCTION, each a dotted Python name (beanfleet.handlers.HandlerSpec says the same).
HANDLER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"  # noqa: E501
# beanstalkd's rule (beanfleet.address.check_tube says the same).
TUBE_PATTERN = r"^[A-Za-z0-9+/;.$_()][A-Za-z0-9+/;.$_()-]{0,199}$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# Environment names the templates set themselves.
RESERVED_ENV = ("BEANFLEET_SERVER",)
MAX_JOB_SIZE_LIMIT = 1073741824  # beanstalkd -z: "max allowed is 1073741824 bytes"

POOL_DEFAULTS: dict[str, Any] = {
    "processes": 1,
    "max_retries": DEFAULT_MAX_RETRIES,
    "backoff_base": DEFAULT_BACKOFF_BASE,
    "backoff_cap": DEFAULT_BACKOFF_CAP,
    "timeout": 60,
    "max_jobs": 1000,
    "max_time": 3600,
    "max_memory": 256,
    "prefetch": False,
    "env": {},
    "state": "present",
}
POOL_KEYS = ("name", "tubes", *POOL_DEFAULTS)
# The type of each setting, named as in Ansible's argument specs (which must agree).
POOL_TYPES: dict[str, str] = {
    "name": "str",
    "tubes": "dict",
    "processes": "int",
    "max_retries": "int",
    "backoff_base": "float",
    "backoff_cap": "float",
    "timeout": "float",
    "max_jobs": "int",
    "max_time": "float",
    "max_memory": "float",
    "prefetch": "bool",
    "env": "dict",
    "state": "str",
}

# Defaults Ansible computes from the inventory (the roles' defaults are Jinja expressions);
# offline rendering has no inventory, so these must then be given.
INVENTORY_DEFAULTS = {
    "beanfleet_server": "the first host of group 'queue' and its beanstalkd_port",
    "beanstalkd_firewall_allow": "the address of every inventory host",
}

FLEET_DEFAULTS: dict[str, Any] = {
    # role beanfleet
    "beanfleet_server": "",
    "beanfleet_manager": "systemd",
    "beanfleet_packages": [],
    "beanfleet_wheelhouse": "",
    "beanfleet_log_format": "text",
    "beanfleet_stop_grace": 30,
    "beanfleet_pool_defaults": {},
    "beanfleet_pools": [],
    # role beanstalkd
    "beanstalkd_listen_address": "0.0.0.0",  # noqa: S104 - the firewall limits who connects
    "beanstalkd_port": 11300,
    "beanstalkd_binlog_dir": "/var/lib/beanstalkd",
    "beanstalkd_fsync_ms": 50,
    "beanstalkd_binlog_size": 10485760,
    "beanstalkd_max_job_size": 65535,
    "beanstalkd_firewall": True,
    "beanstalkd_firewall_allow": [],
}
FLEET_TYPES: dict[str, str] = {
    "beanfleet_server": "str",
    "beanfleet_manager": "str",
    "beanfleet_packages": "list",
    "beanfleet_wheelhouse": "str",
    "beanfleet_log_format": "str",
    "beanfleet_stop_grace": "int",
    "beanfleet_pool_defaults": "dict",
    "beanfleet_pools": "list",
    "beanstalkd_listen_address": "str",
    "beanstalkd_port": "int",
    "beanstalkd_binlog_dir": "str",
    "beanstalkd_fsync_ms": "int",
    "beanstalkd_binlog_size": "int",
    "beanstalkd_max_job_size": "int",
    "beanstalkd_firewall": "bool",
    "beanstalkd_firewall_allow": "list",
}
CHOICES: dict[str, tuple[str, ...]] = {
    "beanfleet_manager": MANAGERS,
    "beanfleet_log_format": LOG_FORMATS,
    "state": POOL_STATES,
}
# Defaults the roles compute with Jinja (from the inventory or the playbook's location).
ANSIBLE_COMPUTED = ("beanfleet_wheelhouse", "beanstalkd_firewall_allow")

# Variables other parts of the project set for the same hosts (not ours to check).
FOREIGN_KEYS = ("beanfleet_host_address", "beanfleet_release")


@dataclass(frozen=True)
class Fleet:
    """A validated description: the variables (defaults filled in) and the derived pools."""

    vars: dict[str, Any]

    @property
    def manager(self) -> str:
        return str(self.vars["beanfleet_manager"])

    @property
    def pools(self) -> list[dict[str, Any]]:
        """Every pool with the pool defaults filled in (``state: absent`` ones included)."""
        return self.vars["beanfleet_pools_full"]  # type: ignore[no-any-return]

    @property
    def present_pools(self) -> list[dict[str, Any]]:
        return [p for p in self.pools if p["state"] == "present"]

    def template_vars(self) -> dict[str, Any]:
        """What the templates see (Ansible sees the same names)."""
        return dict(self.vars)


def _where(pool: Mapping[str, Any], index: int) -> str:
    name = pool.get("name")
    label = f" ({name})" if isinstance(name, str) and name else ""
    return f"beanfleet_pools[{index}]{label}"


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()) is not None


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def _int(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    if not _is_int(value):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    number = int(value)
    if number < minimum or (maximum is not None and number > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ConfigError(f"{name} must be an integer {bound}, got {number}")
    return number


def _number(name: str, value: Any, minimum: float, *, exclusive: bool = False) -> float:
    if not _is_number(value):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if number < minimum or (exclusive and number == minimum):
        bound = f"> {minimum:g}" if exclusive else f">= {minimum:g}"
        raise ConfigError(f"{name} must be a number {bound}, got {number:g}")
    return number


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def _str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {value!r}")
    return value


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{name} must be one of: {', '.join(choices)}, got {value!r}")
    return str(value)


def _check_tubes(where: str, tubes: Any) -> None:
    if not isinstance(tubes, Mapping) or not tubes:
        raise ConfigError(f"{where}: tubes must be a non-empty mapping of tube to MODULE:FUNCTION")
    for tube, target in tubes.items():
        if not isinstance(tube, str) or not re.match(TUBE_PATTERN, tube):
            raise ConfigError(
                f"{where}: invalid tube name {tube!r}: 1-200 characters of letters, digits "
                "and -+/;.$_(), not starting with '-'"
            )
        if not isinstance(target, str) or not re.match(HANDLER_PATTERN, target):
            raise ConfigError(
                f"{where}: handler of tube {tube!r} must be MODULE:FUNCTION, got {target!r}"
            )
        # The worker's own parser must agree (it is what runs on the hosts).
        try:
            HandlerSpec.parse(f"{tube}={target}")
        except ConfigError as exc:  # pragma: no cover - the patterns above are stricter
            raise ConfigError(f"{where}: {exc}") from None


def _check_env(where: str, env: Any) -> None:
    if not isinstance(env, Mapping):
        raise ConfigError(f"{where}: env must be a mapping of variable name to value")
    for key, value in env.items():
        if not isinstance(key, str) or not re.match(ENV_NAME_PATTERN, key):
            raise ConfigError(f"{where}: env: invalid variable name {key!r}")
        if key in RESERVED_ENV:
            raise ConfigError(f"{where}: env: {key} is set by beanfleet (use beanfleet_server)")
        # Never echo the value: env holds secrets.
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ConfigError(f"{where}: env: {key} must be a string or a number")
        if any(c in str(value) for c in "\n\r\0"):
            raise ConfigError(f"{where}: env: {key} must be one line")
        if any(c in str(value) for c in "'\""):
            # supervisor's environment= cannot carry quotes (it strips them)
            raise ConfigError(f"{where}: env: {key} must not contain quotes")
        if re.search(r"\s[;#]", str(value)):
            # supervisor's config parser reads a comment from there on
            raise ConfigError(f"{where}: env: {key} must not contain ' ;' or ' #'")


def _check_pool(pool: Any, index: int, defaults: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(pool, Mapping):
        raise ConfigError(f"beanfleet_pools[{index}] must be a mapping, got {pool!r}")
    where = _where(pool, index)
    unknown = sorted(str(k) for k in pool if k not in POOL_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting {unknown[0]!r} (known: {', '.join(POOL_KEYS)})"
        )
    if "name" not in pool:
        raise ConfigError(f"{where}: name is required")
    name = pool["name"]
    if not isinstance(name, str) or not re.match(POOL_NAME_PATTERN, name):
        raise ConfigError(
            f"{where}: invalid pool name {name!r}: 1-64 letters, digits, '_' and '-', "
            "starting with a letter or digit"
        )
    if "tubes" not in pool:
        raise ConfigError(f"{where}: tubes is required")
    full: dict[str, Any] = {**defaults, **pool}
    _check_tubes(where, full["tubes"])
    _int(f"{where}: processes", full["processes"], 1)
    _int(f"{where}: max_retries", full["max_retries"], 0)
    base = _number(f"{where}: backoff_base", full["backoff_base"], 0)
    cap = _number(f"{where}: backoff_cap", full["backoff_cap"], 0)
    if cap < base:
        raise ConfigError(f"{where}: backoff_cap ({cap:g}) must be >= backoff_base ({base:g})")
    _number(f"{where}: timeout", full["timeout"], 0, exclusive=True)
    _int(f"{where}: max_jobs", full["max_jobs"], 0)
    _number(f"{where}: max_time", full["max_time"], 0)
    _number(f"{where}: max_memory", full["max_memory"], 0)
    _bool(f"{where}: prefetch", full["prefetch"])
    _check_env(where, full["env"])
    _choice(f"{where}: state", full["state"], POOL_STATES)
    return full


def _check_address_list(name: str, value: Any) -> None:
    if not isinstance(value, list):
        raise ConfigError(f"{name} must be a list of IP addresses or networks, got {value!r}")
    for item in value:
        try:
            ipaddress.ip_network(str(item), strict=False)
        except ValueError:
            raise ConfigError(f"{name}: {item!r} is not an IP address or network") from None


def validate(description: Mapping[str, Any], *, offline: bool = False) -> Fleet:
    """Check a fleet description (inventory variable names) and fill in the defaults.

    ``offline``: for ``beanfleet render``, which has no inventory, so the variables whose
    Ansible default comes from the inventory (:data:`INVENTORY_DEFAULTS`) must be set.
    Raises :class:`ConfigError` with a one-line message at the first problem.
    """
    if not isinstance(description, Mapping):
        raise ConfigError("a fleet description must be a mapping of variable names to values")
    known = (*FLEET_DEFAULTS, *FOREIGN_KEYS)
    for key in description:
        if (
            isinstance(key, str)
            and key.startswith(("beanfleet_", "beanstalkd_"))
            and key not in known
        ):
            raise ConfigError(f"unknown setting {key!r}")
    merged: dict[str, Any] = copy.deepcopy(FLEET_DEFAULTS)
    merged.update(copy.deepcopy(dict(description)))
    _check_workers(merged, description, offline)
    _check_queue(merged, description, offline)
    return Fleet(merged)


def _check_workers(v: dict[str, Any], description: Mapping[str, Any], offline: bool) -> None:
    """Role beanfleet's variables; adds ``beanfleet_pools_full`` (defaults filled in)."""
    server = _str("beanfleet_server", v["beanfleet_server"])
    if server:
        try:
            parse_server(server)
        except ConfigError as exc:
            raise ConfigError(f"beanfleet_server: {exc}") from None
    elif offline and "beanfleet_server" not in description:
        raise ConfigError(
            "beanfleet_server must be set for offline rendering (Ansible defaults it to "
            f"{INVENTORY_DEFAULTS['beanfleet_server']})"
        )
    _choice("beanfleet_manager", v["beanfleet_manager"], MANAGERS)
    packages = v["beanfleet_packages"]
    if not isinstance(packages, list) or not all(
        isinstance(p, str) and p.strip() and not any(c.isspace() for c in p) for p in packages
    ):
        raise ConfigError(
            f"beanfleet_packages must be a list of pip requirements, got {packages!r}"
        )
    _str("beanfleet_wheelhouse", v["beanfleet_wheelhouse"])
    _choice("beanfleet_log_format", v["beanfleet_log_format"], LOG_FORMATS)
    _int("beanfleet_stop_grace", v["beanfleet_stop_grace"], 1)
    pool_defaults = v["beanfleet_pool_defaults"]
    if not isinstance(pool_defaults, Mapping):
        raise ConfigError("beanfleet_pool_defaults must be a mapping")
    unknown = sorted(str(k) for k in pool_defaults if k not in POOL_DEFAULTS)
    if unknown:
        raise ConfigError(f"beanfleet_pool_defaults: unknown setting {unknown[0]!r}")
    pool_defaults = {**POOL_DEFAULTS, **pool_defaults}
    pools = v["beanfleet_pools"]
    if not isinstance(pools, list):
        raise ConfigError(f"beanfleet_pools must be a list of pools, got {pools!r}")
    full_pools = [_check_pool(p, i, pool_defaults) for i, p in enumerate(pools)]
    seen: set[str] = set()
    for i, pool in enumerate(full_pools):
        if pool["name"] in seen:
            raise ConfigError(f"{_where(pool, i)}: duplicate pool name {pool['name']!r}")
        seen.add(pool["name"])
    v["beanfleet_pools_full"] = full_pools


def _check_queue(v: dict[str, Any], description: Mapping[str, Any], offline: bool) -> None:
    """Role beanstalkd's variables."""
    address = _str("beanstalkd_listen_address", v["beanstalkd_listen_address"])
    if not address or any(c.isspace() for c in address):
        raise ConfigError(f"beanstalkd_listen_address must be an address, got {address!r}")
    _int("beanstalkd_port", v["beanstalkd_port"], 1, 65535)
    binlog = _str("beanstalkd_binlog_dir", v["beanstalkd_binlog_dir"])
    if binlog and (not binlog.startswith("/") or any(c.isspace() for c in binlog)):
        raise ConfigError(
            f"beanstalkd_binlog_dir must be an absolute path without spaces "
            f"(or empty for no binlog), got {binlog!r}"
        )
    _int("beanstalkd_fsync_ms", v["beanstalkd_fsync_ms"], 0)
    _int("beanstalkd_binlog_size", v["beanstalkd_binlog_size"], 1)
    _int("beanstalkd_max_job_size", v["beanstalkd_max_job_size"], 1, MAX_JOB_SIZE_LIMIT)
    _bool("beanstalkd_firewall", v["beanstalkd_firewall"])
    if offline and v["beanstalkd_firewall"] and "beanstalkd_firewall_allow" not in description:
        raise ConfigError(
            "beanstalkd_firewall_allow must be set for offline rendering (Ansible defaults "
            f"it to {INVENTORY_DEFAULTS['beanstalkd_firewall_allow']})"
        )
    _check_address_list("beanstalkd_firewall_allow", v["beanstalkd_firewall_allow"])


def instances(pool: Mapping[str, Any]) -> list[str]:
    """systemd instance names of a pool: ``NAME-1`` .. ``NAME-N``."""
    return [f"{pool['name']}-{n}" for n in range(1, int(pool["processes"]) + 1)]
