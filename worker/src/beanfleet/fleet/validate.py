"""Checking a fleet description: every problem, one line each, before any host changes.

Owns :func:`check`, :func:`validate`, :class:`FleetError` and the rules the table cannot say
(pools and their tubes and env, the server list, paths, address lists).  A setting's type,
range, choices and pattern come from its row (:mod:`.table`) and are checked by the one set
of setting checks in :mod:`beanfleet.bounds`; the monitoring settings' own rules are in
:mod:`.monitoring`.

May import: the standard library, :mod:`beanfleet.errors`, :mod:`beanfleet.bounds`,
:mod:`beanfleet.names` and the fleet's :mod:`.schema`, :mod:`.table`, :mod:`.inventory`,
:mod:`.monitoring`.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from beanfleet import bounds
from beanfleet.errors import ConfigError
from beanfleet.fleet import monitoring
from beanfleet.fleet.inventory import Fleet, Inventory, default_server
from beanfleet.fleet.schema import (
    ENV_NAME_PATTERN,
    HANDLER_PATTERN,
    RESERVED_ENV,
    TUBE_PATTERN,
    Setting,
)
from beanfleet.fleet.table import (
    FLEET_DEFAULTS,
    FOREIGN_KEYS,
    INVENTORY_DEFAULTS,
    POOL_BY_NAME,
    POOL_DEFAULTS,
    POOL_KEYS,
    POOL_SETTINGS,
    PREFIXES,
    SHARED_PREFIX,
    role_settings,
)
from beanfleet.names import parse_servers


class FleetError(ConfigError):
    """An invalid description: ``problems`` holds one line per problem (``str()`` joins them)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


_T = TypeVar("_T")


@dataclass
class _Problems:
    lines: list[str] = field(default_factory=list)

    def check(self, func: Callable[..., _T], *args: Any, **kwargs: Any) -> _T | None:
        """Run one check; a ConfigError becomes a problem line and None."""
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            self.lines.append(str(exc))
            return None

    def add(self, line: str) -> None:
        self.lines.append(line)


def _where(pool: Mapping[str, Any], index: int) -> str:
    name = pool.get("name")
    label = f" ({name})" if isinstance(name, str) and name else ""
    return f"beanfleet_pools[{index}]{label}"


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


def _check_env(where: str, env: Any) -> None:
    if not isinstance(env, Mapping):
        raise ConfigError(f"{where}: env must be a mapping of variable name to value")
    for key, value in env.items():
        if not isinstance(key, str) or not re.match(ENV_NAME_PATTERN, key):
            raise ConfigError(f"{where}: env: invalid variable name {key!r}")
        if key in RESERVED_ENV:
            raise ConfigError(f"{where}: env: {key} is set by beanfleet (use beanfleet_server)")
        # Never echo the value: env holds secrets.
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(f"{where}: env: {key} must be a string or a number")
        if any(c in str(value) for c in "\n\r\0"):
            raise ConfigError(f"{where}: env: {key} must be one line")
        if any(c in str(value) for c in "'\""):
            # supervisor's environment= cannot carry quotes (it strips them)
            raise ConfigError(f"{where}: env: {key} must not contain quotes")
        if re.search(r"\s[;#]", str(value)):
            # supervisor's config parser reads a comment from there on
            raise ConfigError(f"{where}: env: {key} must not contain ' ;' or ' #'")


def _check_pool(
    pool: Any, index: int, defaults: Mapping[str, Any], problems: _Problems
) -> dict[str, Any] | None:
    """One pool's problems; returns it with the defaults filled in (None when unusable)."""
    if not isinstance(pool, Mapping):
        problems.add(f"beanfleet_pools[{index}] must be a mapping, got {pool!r}")
        return None
    where = _where(pool, index)
    unknown = sorted(str(k) for k in pool if k not in POOL_KEYS)
    if unknown:
        problems.add(f"{where}: unknown setting {unknown[0]!r} (known: {', '.join(POOL_KEYS)})")
        return None
    usable = True
    name_rule = POOL_BY_NAME["name"].pattern or ""
    if "name" not in pool:
        problems.add(f"{where}: name is required")
        usable = False
    elif not isinstance(pool["name"], str) or not re.match(name_rule, pool["name"]):
        problems.add(
            f"{where}: invalid pool name {pool['name']!r}: 1-64 letters, digits, '_' and '-', "
            "starting with a letter or digit"
        )
        usable = False
    full: dict[str, Any] = {**defaults, **pool}
    if "tubes" not in pool:
        problems.add(f"{where}: tubes is required")
        usable = False
    else:
        before = len(problems.lines)
        problems.check(_check_tubes, where, full["tubes"])
        usable = usable and len(problems.lines) == before
    for setting in POOL_SETTINGS:
        if setting.check == "env":
            problems.check(_check_env, where, full["env"])
        else:
            problems.check(setting.check_value, f"{where}: {setting.name}", full[setting.name])
    base, cap = full["backoff_base"], full["backoff_cap"]
    if bounds.is_real(base) and bounds.is_real(cap) and float(cap) < float(base):
        problems.add(
            f"{where}: backoff_cap ({float(cap):g}) must be >= backoff_base ({float(base):g})"
        )
    return full if usable else None


def _check_address_list(name: str, value: Any, problems: _Problems) -> None:
    if not isinstance(value, list):
        problems.add(f"{name} must be a list of IP addresses or networks, got {value!r}")
        return
    for item in value:
        try:
            ipaddress.ip_network(str(item), strict=False)
        except ValueError:
            problems.add(f"{name}: {item!r} is not an IP address or network")


@dataclass
class _Checking:
    """One check's input: the merged variables, the description as given, and where to
    take the inventory defaults from; problems collect in ``problems``, results in the rest."""

    merged: dict[str, Any]
    description: Mapping[str, Any]
    offline: bool
    inventory: Inventory | None
    problems: _Problems
    server: str = ""
    pools: list[dict[str, Any]] = field(default_factory=list)
    allow: list[str] = field(default_factory=list)


def check(
    description: Mapping[str, Any],
    *,
    offline: bool = False,
    inventory: Inventory | None = None,
    part: str | None = None,
) -> tuple[Fleet | None, list[str]]:
    """Check a fleet description (inventory variable names) and fill in the defaults.

    Returns the fleet (None when there are problems) and every problem, one line each.
    ``offline``: for ``beanfleet render``, which has no inventory, so the variables whose
    default comes from the inventory (:data:`INVENTORY_DEFAULTS`) must be set.
    ``inventory``: where those defaults come from (Ansible).  ``part``: ``workers`` or
    ``queue`` checks that role's variables only.
    """
    problems = _Problems()
    if not isinstance(description, Mapping):
        problems.add("a fleet description must be a mapping of variable names to values")
        return None, problems.lines
    known = (*FLEET_DEFAULTS, *FOREIGN_KEYS)
    prefixes = (
        (*PREFIXES.values(), SHARED_PREFIX) if part is None else (PREFIXES[part], SHARED_PREFIX)
    )
    for key in description:
        if isinstance(key, str) and key.startswith(prefixes) and key not in known:
            problems.add(f"unknown setting {key!r}")
    merged: dict[str, Any] = copy.deepcopy(FLEET_DEFAULTS)
    merged.update({k: copy.deepcopy(v) for k, v in description.items() if v is not None})
    c = _Checking(merged, description, offline, inventory, problems)
    if part in (None, "workers"):
        _check_role("beanfleet", c)
    if part in (None, "queue"):
        _check_role("beanstalkd", c)
    # The pools are known where the workers' settings are checked (not on the queue host).
    resolved = monitoring.check(
        merged,
        None if part == "queue" else [str(p["name"]) for p in c.pools],
        offline=offline,
        groups=None if inventory is None else inventory.groups,
        add=problems.add,
    )
    if problems.lines:
        return None, problems.lines
    return Fleet(merged, c.pools, c.server, c.allow, resolved), []


def validate(
    description: Mapping[str, Any],
    *,
    offline: bool = False,
    inventory: Inventory | None = None,
    part: str | None = None,
) -> Fleet:
    """:func:`check`, raising :class:`FleetError` (one line per problem) if any."""
    fleet, problems = check(description, offline=offline, inventory=inventory, part=part)
    if fleet is None:
        raise FleetError(problems)
    return fleet


def _check_role(role: str, c: _Checking) -> None:
    """Every setting of ``role`` in the table's order: its row, or its rule below."""
    for setting in role_settings(role):
        if setting.check is None:
            c.problems.check(setting.check_value, setting.name, c.merged[setting.name])
        else:
            _RULES[setting.check](c, setting)


def _server(c: _Checking, s: Setting) -> None:
    """The server list (``HOST:PORT[,HOST:PORT...]``: the pools and tools take it as is)."""
    server = c.problems.check(bounds.setting_str, s.name, c.merged[s.name]) or ""
    if server:
        try:
            server = ",".join(parse_servers(server))
        except ConfigError as exc:
            c.problems.add(f"beanfleet_server: {exc}")
    elif c.offline and not c.description.get(s.name):
        c.problems.add(
            "beanfleet_server must be set for offline rendering (Ansible defaults it to "
            f"{INVENTORY_DEFAULTS[s.name]})"
        )
    elif c.inventory is not None:
        if not c.inventory.queues:
            c.problems.add(
                "beanfleet_server is empty and the inventory has no group 'queue' to take it from"
            )
        else:
            servers = [
                default_server(str(q.get("inventory_hostname", "")), q) for q in c.inventory.queues
            ]
            try:
                server = ",".join(parse_servers(",".join(servers)))
            except ConfigError as exc:
                c.problems.add(f"group 'queue': {exc}")
    c.server = server


def _packages(c: _Checking, s: Setting) -> None:
    packages = c.merged[s.name]
    if not isinstance(packages, list) or not all(
        isinstance(p, str) and p.strip() and not any(ch.isspace() for ch in p) for p in packages
    ):
        c.problems.add(f"beanfleet_packages must be a list of pip requirements, got {packages!r}")


def _pool_defaults(c: _Checking, s: Setting) -> None:
    pool_defaults = c.merged[s.name]
    if not isinstance(pool_defaults, Mapping):
        c.problems.add("beanfleet_pool_defaults must be a mapping")
        pool_defaults = {}
    unknown = sorted(str(k) for k in pool_defaults if k not in POOL_DEFAULTS)
    if unknown:
        c.problems.add(f"beanfleet_pool_defaults: unknown setting {unknown[0]!r}")
    c.merged[s.name] = pool_defaults


def _pools(c: _Checking, s: Setting) -> None:
    defaults = {**POOL_DEFAULTS, **c.merged["beanfleet_pool_defaults"]}
    pools = c.merged[s.name]
    if not isinstance(pools, list):
        c.problems.add(f"beanfleet_pools must be a list of pools, got {pools!r}")
        return
    seen: set[str] = set()
    for i, pool in enumerate(pools):
        full = _check_pool(pool, i, defaults, c.problems)
        if full is None:
            continue
        if full["name"] in seen:
            c.problems.add(f"{_where(full, i)}: duplicate pool name {full['name']!r}")
        seen.add(full["name"])
        c.pools.append(full)


def _listen_address(c: _Checking, s: Setting) -> None:
    address = c.problems.check(bounds.setting_str, s.name, c.merged[s.name])
    if address is not None and (not address or any(ch.isspace() for ch in address)):
        c.problems.add(f"beanstalkd_listen_address must be an address, got {address!r}")


def _binlog_dir(c: _Checking, s: Setting) -> None:
    binlog = c.problems.check(bounds.setting_str, s.name, c.merged[s.name])
    if binlog and (not binlog.startswith("/") or any(ch.isspace() for ch in binlog)):
        c.problems.add(
            f"beanstalkd_binlog_dir must be an absolute path without spaces "
            f"(or empty for no binlog), got {binlog!r}"
        )


def _firewall_allow(c: _Checking, s: Setting) -> None:
    """The firewall's allow list: given, else every inventory host's address."""
    allow = c.merged[s.name]
    if allow is None:
        if c.inventory is not None:
            allow = list(dict.fromkeys(c.inventory.addresses))
        elif c.offline and c.merged["beanstalkd_firewall"] is True:
            c.problems.add(
                "beanstalkd_firewall_allow must be set for offline rendering (Ansible defaults "
                f"it to {INVENTORY_DEFAULTS[s.name]})"
            )
            return
        else:
            allow = []
    _check_address_list(s.name, allow, c.problems)
    c.allow = [str(a) for a in allow] if isinstance(allow, list) else []


_RULES: dict[str, Callable[[_Checking, Setting], None]] = {
    "server": _server,
    "packages": _packages,
    "pool_defaults": _pool_defaults,
    "pools": _pools,
    "listen_address": _listen_address,
    "binlog_dir": _binlog_dir,
    "firewall_allow": _firewall_allow,
}
