"""The fleet description: the one place that knows it, for Ansible and ``beanfleet render``.

The variable names are the Ansible inventory's (``group_vars``): ``beanfleet_*`` for the
worker pools, ``beanstalkd_*`` for the queue host.  This module says what those variables
are, their types, defaults, ranges and patterns (:data:`FLEET_DEFAULTS`, :data:`FLEET_TYPES`,
:data:`POOL_DEFAULTS`, :data:`POOL_TYPES`, :data:`CHOICES`), what follows from them (pools
merged with their defaults, worker instances, the server address, the firewall's allow list,
each pool's worker command line and stop timeout) and which files each host gets (path,
template, mode, owner, link): :func:`worker_plan` and :func:`queue_plan`.

* :func:`check` returns every problem of a description, one line each; :func:`validate`
  raises :class:`FleetError` (a :class:`~beanfleet.errors.ConfigError`) with them.
* The Ansible roles ask this module through the action plugin ``beanfleet.fleet.describe``
  (``ansible/collections``): it validates before any host changes and hands the plan to the
  roles' file tasks and templates.  ``beanfleet render`` renders the same plan with the same
  templates, so both write the same bytes.

It imports nothing beyond the standard library and beanfleet's own greenstalk-free modules:
the controller's Ansible imports it.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import math
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from beanfleet import fleet_monitoring
from beanfleet.address import parse_server, parse_servers
from beanfleet.errors import ConfigError
from beanfleet.handlers import HandlerSpec

MANAGERS = ("systemd", "supervisor")
POOL_STATES = ("present", "absent")
LOG_FORMATS = ("text", "json")
PARTS = ("workers", "queue")

# Where things live on the hosts (not settings).
HOME = "/opt/beanfleet"
VENV = f"{HOME}/venv"
EXPORTER_VENV = f"{HOME}/exporter-venv"
WHEELHOUSE_DEST = f"{HOME}/wheelhouse"
STATE_DIR = "/var/lib/beanfleet"
USER = "beanfleet"
POOL_DIR = "/etc/beanfleet/pools"
UNIT_DIR = "/etc/systemd/system"
SUPERVISOR_DIR = "/etc/supervisor/conf.d"
BEANSTALKD_DROPIN = "/etc/systemd/system/beanstalkd.service.d/beanfleet.conf"
NFT_FILE = "/etc/beanfleet/beanstalkd.nft"
NFT_TABLE = "inet beanfleet_beanstalkd"
NFT = "/usr/sbin/nft"
SETPRIV = "/usr/bin/setpriv"
METRICS_NFT_FILE = "/etc/beanfleet/metrics.nft"
METRICS_NFT_TABLE = "inet beanfleet_metrics"
# Worker metrics: every worker process of a host writes its files here (StateDirectory=).
METRICS_DIR = f"{STATE_DIR}/metrics"
PROMETHEUS_DIR = "/etc/prometheus"
PROMTOOL = "/usr/bin/promtool"
PROMETHEUS_PORT = 9090

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

# max_retries, backoff_base and backoff_cap equal beanfleet.retry's DEFAULT_* (a test checks;
# beanfleet.retry imports greenstalk, which the controller's Ansible does not need).
POOL_DEFAULTS: dict[str, Any] = {
    "processes": 1,
    "max_retries": 3,
    "backoff_base": 1.0,
    "backoff_cap": 300.0,
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

# Defaults that come from the inventory: empty/None here, and ``beanfleet render`` (which
# has no inventory) needs them spelled out.
INVENTORY_DEFAULTS = {
    "beanfleet_server": "every host of group 'queue' with its beanstalkd_port, comma-separated",
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
    "beanstalkd_firewall_allow": None,
    "beanstalkd_exporter_wheelhouse": "",
    # worker metrics, the exporter, Prometheus (beanfleet.fleet_monitoring)
    **fleet_monitoring.DEFAULTS,
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
    "beanstalkd_exporter_wheelhouse": "str",
    **fleet_monitoring.TYPES,
}
CHOICES: dict[str, tuple[str, ...]] = {
    "beanfleet_manager": MANAGERS,
    "beanfleet_log_format": LOG_FORMATS,
    "state": POOL_STATES,
}
# Defaults Ansible computes itself: controller paths next to the playbook.
ANSIBLE_COMPUTED = ("beanfleet_wheelhouse", "beanstalkd_exporter_wheelhouse")
PREFIXES = {"workers": "beanfleet_", "queue": "beanstalkd_"}
# Settings every part reads (the monitoring ports and who may scrape them).
SHARED_PREFIX = fleet_monitoring.PREFIX

# Variables other parts of the project set for the same hosts (not ours to check).
FOREIGN_KEYS = ("beanfleet_host_address", "beanfleet_release", "beanfleet_controller_address")

# The systemd sandbox of beanstalkd and of the workers; ``{deny}`` is what each also keeps
# from the system call filter.
_HARDENING = """\
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
PrivateTmp=yes
PrivateMounts=yes
PrivateDevices=yes
DevicePolicy=closed
ProtectSystem=strict
ProtectHome=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
KeyringMode=private
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~{deny}
SystemCallErrorNumber=EPERM"""


def hardening(deny: str) -> str:
    """The sandbox lines of a unit (no trailing newline)."""
    return _HARDENING.format(deny=deny)


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


@dataclass(frozen=True)
class Inventory:
    """What the defaults taken from the inventory need (Ansible's plugin fills it in).

    ``queues``: the variables of each host of group ``queue``, in inventory order (empty:
    no such group; one queue host is the usual fleet, several spread the jobs);
    ``addresses``: the address of every inventory host (see :func:`host_address`);
    ``groups``: the addresses of each group's hosts (None: not known, as before monitoring).
    """

    queues: tuple[Mapping[str, Any], ...] = ()
    addresses: tuple[str, ...] = ()
    groups: Mapping[str, tuple[str, ...]] | None = None


def host_address(name: str, hostvars: Mapping[str, Any]) -> str:
    """A host's address: ``beanfleet_host_address``, else the default IPv4 address of its
    facts, else ``ansible_host``, else its inventory name."""
    if hostvars.get("beanfleet_host_address"):
        return str(hostvars["beanfleet_host_address"])
    facts = hostvars.get("ansible_default_ipv4")
    if isinstance(facts, Mapping) and facts.get("address"):
        return str(facts["address"])
    if hostvars.get("ansible_host"):
        return str(hostvars["ansible_host"])
    return name


def default_server(name: str, queue: Mapping[str, Any]) -> str:
    """HOST:PORT of the queue host: its listen address, or its own address when that is
    a wildcard, and its beanstalkd_port."""
    address = str(
        queue.get("beanstalkd_listen_address", FLEET_DEFAULTS["beanstalkd_listen_address"])
    )
    if address in ("0.0.0.0", "::", ""):  # noqa: S104 - wildcard addresses, compared
        address = host_address(name, queue)
    port = queue.get("beanstalkd_port", FLEET_DEFAULTS["beanstalkd_port"])
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def settings(part: str | None = None) -> list[str]:
    """The variable names of ``part`` (workers: beanfleet_*, queue: beanstalkd_*, both with
    the shared monitoring_*), or all."""
    if part is None:
        return list(FLEET_DEFAULTS)
    return [k for k in FLEET_DEFAULTS if k.startswith((PREFIXES[part], SHARED_PREFIX))]


@dataclass(frozen=True)
class Fleet:
    """A validated description: the variables (defaults filled in) and what follows."""

    vars: dict[str, Any]
    pools: list[dict[str, Any]]
    server: str
    firewall_allow: list[str]
    # beanfleet.fleet_monitoring.check's resolved settings
    monitoring: dict[str, Any] = field(default_factory=dict)

    @property
    def manager(self) -> str:
        return str(self.vars["beanfleet_manager"])

    @property
    def present_pools(self) -> list[dict[str, Any]]:
        return [p for p in self.pools if p["state"] == "present"]


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
    if "name" not in pool:
        problems.add(f"{where}: name is required")
        usable = False
    elif not isinstance(pool["name"], str) or not re.match(POOL_NAME_PATTERN, pool["name"]):
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
    problems.check(_int, f"{where}: processes", full["processes"], 1)
    problems.check(_int, f"{where}: max_retries", full["max_retries"], 0)
    base = problems.check(_number, f"{where}: backoff_base", full["backoff_base"], 0)
    cap = problems.check(_number, f"{where}: backoff_cap", full["backoff_cap"], 0)
    if base is not None and cap is not None and cap < base:
        problems.add(f"{where}: backoff_cap ({cap:g}) must be >= backoff_base ({base:g})")
    problems.check(_number, f"{where}: timeout", full["timeout"], 0, exclusive=True)
    problems.check(_int, f"{where}: max_jobs", full["max_jobs"], 0)
    problems.check(_number, f"{where}: max_time", full["max_time"], 0)
    problems.check(_number, f"{where}: max_memory", full["max_memory"], 0)
    problems.check(_bool, f"{where}: prefetch", full["prefetch"])
    problems.check(_check_env, where, full["env"])
    problems.check(_choice, f"{where}: state", full["state"], POOL_STATES)
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


@dataclass(frozen=True)
class _Checking:
    """One check's input: the merged variables, the description as given, and where to
    take the inventory defaults from; problems collect in ``problems``."""

    merged: dict[str, Any]
    description: Mapping[str, Any]
    offline: bool
    inventory: Inventory | None
    problems: _Problems


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
    pools: list[dict[str, Any]] = []
    server = ""
    allow: list[str] = []
    checking = _Checking(merged, description, offline, inventory, problems)
    if part in (None, "workers"):
        pools, server = _check_workers(checking)
    if part in (None, "queue"):
        allow = _check_queue(checking)
    # The pools are known where the workers' settings are checked (not on the queue host).
    monitoring = fleet_monitoring.check(
        merged,
        None if part == "queue" else [str(p["name"]) for p in pools],
        offline=offline,
        groups=None if inventory is None else inventory.groups,
        add=problems.add,
    )
    if problems.lines:
        return None, problems.lines
    return Fleet(merged, pools, server, allow, monitoring), []


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


def _check_workers(c: _Checking) -> tuple[list[dict[str, Any]], str]:
    """Role beanfleet's variables: the pools (defaults filled in) and the server list
    (``HOST:PORT[,HOST:PORT...]``: the pools and tools take it as it is)."""
    server = c.problems.check(_str, "beanfleet_server", c.merged["beanfleet_server"]) or ""
    if server:
        try:
            server = ",".join(parse_servers(server))
        except ConfigError as exc:
            c.problems.add(f"beanfleet_server: {exc}")
    elif c.offline and not c.description.get("beanfleet_server"):
        c.problems.add(
            "beanfleet_server must be set for offline rendering (Ansible defaults it to "
            f"{INVENTORY_DEFAULTS['beanfleet_server']})"
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
    c.problems.check(_choice, "beanfleet_manager", c.merged["beanfleet_manager"], MANAGERS)
    packages = c.merged["beanfleet_packages"]
    if not isinstance(packages, list) or not all(
        isinstance(p, str) and p.strip() and not any(ch.isspace() for ch in p) for p in packages
    ):
        c.problems.add(f"beanfleet_packages must be a list of pip requirements, got {packages!r}")
    c.problems.check(_str, "beanfleet_wheelhouse", c.merged["beanfleet_wheelhouse"])
    c.problems.check(_choice, "beanfleet_log_format", c.merged["beanfleet_log_format"], LOG_FORMATS)
    c.problems.check(_int, "beanfleet_stop_grace", c.merged["beanfleet_stop_grace"], 1)
    pool_defaults = c.merged["beanfleet_pool_defaults"]
    if not isinstance(pool_defaults, Mapping):
        c.problems.add("beanfleet_pool_defaults must be a mapping")
        pool_defaults = {}
    unknown = sorted(str(k) for k in pool_defaults if k not in POOL_DEFAULTS)
    if unknown:
        c.problems.add(f"beanfleet_pool_defaults: unknown setting {unknown[0]!r}")
    pool_defaults = {**POOL_DEFAULTS, **pool_defaults}
    pools = c.merged["beanfleet_pools"]
    if not isinstance(pools, list):
        c.problems.add(f"beanfleet_pools must be a list of pools, got {pools!r}")
        return [], server
    full_pools = []
    seen: set[str] = set()
    for i, pool in enumerate(pools):
        full = _check_pool(pool, i, pool_defaults, c.problems)
        if full is None:
            continue
        if full["name"] in seen:
            c.problems.add(f"{_where(full, i)}: duplicate pool name {full['name']!r}")
        seen.add(full["name"])
        full_pools.append(full)
    return full_pools, server


def _check_queue(c: _Checking) -> list[str]:
    """Role beanstalkd's variables; returns the firewall's allow list."""
    address = c.problems.check(
        _str, "beanstalkd_listen_address", c.merged["beanstalkd_listen_address"]
    )
    if address is not None and (not address or any(ch.isspace() for ch in address)):
        c.problems.add(f"beanstalkd_listen_address must be an address, got {address!r}")
    c.problems.check(_int, "beanstalkd_port", c.merged["beanstalkd_port"], 1, 65535)
    binlog = c.problems.check(_str, "beanstalkd_binlog_dir", c.merged["beanstalkd_binlog_dir"])
    if binlog and (not binlog.startswith("/") or any(ch.isspace() for ch in binlog)):
        c.problems.add(
            f"beanstalkd_binlog_dir must be an absolute path without spaces "
            f"(or empty for no binlog), got {binlog!r}"
        )
    c.problems.check(_int, "beanstalkd_fsync_ms", c.merged["beanstalkd_fsync_ms"], 0)
    c.problems.check(_int, "beanstalkd_binlog_size", c.merged["beanstalkd_binlog_size"], 1)
    c.problems.check(
        _int, "beanstalkd_max_job_size", c.merged["beanstalkd_max_job_size"], 1, MAX_JOB_SIZE_LIMIT
    )
    c.problems.check(
        _str, "beanstalkd_exporter_wheelhouse", c.merged["beanstalkd_exporter_wheelhouse"]
    )
    firewall = c.problems.check(_bool, "beanstalkd_firewall", c.merged["beanstalkd_firewall"])
    allow = c.merged["beanstalkd_firewall_allow"]
    if allow is None:
        if c.inventory is not None:
            allow = list(dict.fromkeys(c.inventory.addresses))
        elif c.offline and firewall:
            c.problems.add(
                "beanstalkd_firewall_allow must be set for offline rendering (Ansible defaults "
                f"it to {INVENTORY_DEFAULTS['beanstalkd_firewall_allow']})"
            )
            return []
        else:
            allow = []
    _check_address_list("beanstalkd_firewall_allow", allow, c.problems)
    return [str(a) for a in allow] if isinstance(allow, list) else []


def instances(pool: Mapping[str, Any]) -> list[str]:
    """systemd instance names of a pool: ``NAME-1`` .. ``NAME-N``."""
    return [f"{pool['name']}-{n}" for n in range(1, int(pool["processes"]) + 1)]


def stop_timeout(pool: Mapping[str, Any], stop_grace: Any) -> int:
    """Seconds a stopping worker gets: the pool's longest job, rounded up, + the grace."""
    return math.ceil(float(pool["timeout"])) + int(stop_grace)


def worker_command(
    pool: Mapping[str, Any], server: str, log_format: str, manager: str, *, metrics: bool = False
) -> str:
    """The worker command line of a pool, quoted for ``manager``'s config files.

    systemd: a ``$`` is ``$$`` (ExecStart= expands ``$NAME``); supervisor: each tube is
    quoted (``command=`` is split like a shell line).
    """
    if manager == "systemd":
        tubes = "".join(f" --tube {t.replace('$', '$$')}={h}" for t, h in pool["tubes"].items())
    else:
        tubes = "".join(f" --tube '{t}={h}'" for t, h in pool["tubes"].items())
    line = f"{VENV}/bin/beanfleet work --server {server}{tubes}"
    line += (
        f" --max-retries {pool['max_retries']} --backoff-base {pool['backoff_base']}"
        f" --backoff-cap {pool['backoff_cap']} --timeout {pool['timeout']}"
    )
    if int(pool["max_jobs"]) > 0:
        line += f" --max-jobs {pool['max_jobs']}"
    if float(pool["max_time"]) > 0:
        line += f" --max-time {pool['max_time']}"
    if float(pool["max_memory"]) > 0:
        line += f" --max-memory {pool['max_memory']}"
    if pool["prefetch"]:
        line += " --prefetch"
    if metrics:
        line += f" --pool {pool['name']} --metrics-dir {METRICS_DIR}"
    return f"{line} --log-format {log_format}"


def _file(
    path: str,
    template: str,
    mode: str,
    *,
    pool: str = "",
    secret: bool = False,
    restarts: Iterable[str] = (),
) -> dict[str, Any]:
    return {
        "path": path,
        "template": template,
        "mode": mode,
        "owner": "root",
        "group": "root",
        "pool": pool,
        "secret": secret,
        "restarts": list(restarts),
    }


def worker_plan(fleet: Fleet, manager: str | None = None) -> dict[str, Any]:
    """What role beanfleet does on a worker host (plain data: Ansible registers it).

    ``pools`` (by name, with ``command`` and ``stop_timeout``), ``instances``, and the
    ``directories``, ``files`` (templates of the role) and ``links`` of ``manager``.
    """
    manager = manager or fleet.manager
    v = fleet.vars
    present = fleet.present_pools
    log_format = str(v["beanfleet_log_format"])
    metrics = metrics_endpoint(fleet)
    pools = {
        p["name"]: {
            **p,
            "instances": instances(p),
            "command": worker_command(
                p, fleet.server, log_format, manager, metrics=metrics["enabled"]
            ),
            "stop_timeout": stop_timeout(p, v["beanfleet_stop_grace"]),
        }
        for p in present
    }
    every = [i for p in present for i in instances(p)]
    directories: list[str] = []
    files: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    if manager == "systemd":
        directories = [UNIT_DIR, POOL_DIR]
        for unit in ("beanfleet-worker@.service", "beanfleet.target"):
            files.append(_file(f"{UNIT_DIR}/{unit}", f"systemd/{unit}.j2", "0644", restarts=every))
        for p in present:
            name = p["name"]
            conf = f"{POOL_DIR}/{name}.conf"
            mine = instances(p)
            files.append(_file(conf, "systemd/pool.conf.j2", "0644", pool=name, restarts=mine))
            files.append(
                _file(
                    f"{POOL_DIR}/{name}.env",
                    "systemd/pool.env.j2",
                    "0600",
                    pool=name,
                    secret=True,
                    restarts=mine,
                )
            )
            for instance in mine:
                dropin_dir = f"{UNIT_DIR}/beanfleet-worker@{instance}.service.d"
                directories.append(dropin_dir)
                links.append(
                    {
                        "path": f"{dropin_dir}/pool.conf",
                        "src": posixpath.relpath(conf, dropin_dir),
                        "pool": name,
                    }
                )
        if metrics["enabled"]:
            unit = "beanfleet-metrics.service"
            files.append(_file(f"{UNIT_DIR}/{unit}", f"systemd/{unit}.j2", "0644"))
            files.append(_file(METRICS_NFT_FILE, "metrics.nft.j2", "0644"))
            directories.append(posixpath.dirname(METRICS_NFT_FILE))
    elif manager == "supervisor":
        directories = [SUPERVISOR_DIR]
        if present:
            files.append(
                _file(f"{SUPERVISOR_DIR}/beanfleet.conf", "supervisor/beanfleet.conf.j2", "0644")
            )
        for p in present:
            files.append(
                _file(
                    f"{SUPERVISOR_DIR}/beanfleet-{p['name']}.conf",
                    "supervisor/pool.conf.j2",
                    "0600",
                    pool=p["name"],
                    secret=True,
                )
            )
        if metrics["enabled"]:
            files.append(
                _file(
                    f"{SUPERVISOR_DIR}/beanfleet-metrics.conf", "supervisor/metrics.conf.j2", "0644"
                )
            )
            # Loaded by the role (supervisor has no ExecStartPre=).
            files.append(_file(METRICS_NFT_FILE, "metrics.nft.j2", "0644"))
            directories.append(posixpath.dirname(METRICS_NFT_FILE))
    else:  # validate() rejects it first; kept for direct callers
        raise ConfigError(
            f"beanfleet_manager must be one of: {', '.join(MANAGERS)}, got {manager!r}"
        )
    # A change to these restarts the metrics endpoint (which loads its firewall table).
    endpoint_files = (
        f"{UNIT_DIR}/{metrics['unit']}",
        f"{SUPERVISOR_DIR}/{metrics['program']}.conf",
        METRICS_NFT_FILE,
    )
    for f in files:
        f["endpoint"] = f["path"] in endpoint_files
    return {
        "manager": manager,
        "server": fleet.server,
        "user": USER,
        "home": HOME,
        "venv": VENV,
        "wheelhouse_dest": WHEELHOUSE_DEST,
        "state_dir": STATE_DIR,
        "pool_dir": POOL_DIR,
        "unit_dir": UNIT_DIR,
        "supervisor_dir": SUPERVISOR_DIR,
        "log_format": log_format,
        "stop_grace": v["beanfleet_stop_grace"],
        "packages": ["beanfleet", *v["beanfleet_packages"]],
        "hardening": hardening("@privileged"),
        "metrics": metrics,
        "pools": pools,
        "pool_names": [p["name"] for p in present],
        "instances": every,
        "directories": [{"path": d, "mode": "0755"} for d in directories],
        "files": files,
        "links": links,
    }


def queue_plan(fleet: Fleet) -> dict[str, Any]:
    """What role beanstalkd does on the queue host (plain data: Ansible registers it)."""
    v = fleet.vars
    address = str(v["beanstalkd_listen_address"])
    port = v["beanstalkd_port"]
    command = f"/usr/bin/beanstalkd -l {address} -p {port}"
    if v["beanstalkd_binlog_dir"]:
        command += (
            f" -b {v['beanstalkd_binlog_dir']} -f {v['beanstalkd_fsync_ms']}"
            f" -s {v['beanstalkd_binlog_size']}"
        )
    command += f" -z {v['beanstalkd_max_job_size']}"
    firewall = bool(v["beanstalkd_firewall"])
    files = [_file(BEANSTALKD_DROPIN, "beanfleet.conf.j2", "0644")]
    files[0]["restart"] = True
    files[0]["validate"] = ""
    if firewall:
        files.append(_file(NFT_FILE, "beanstalkd.nft.j2", "0644"))
        files[1]["restart"] = False
        files[1]["validate"] = f"{NFT} -c -f %s"
    for f in files:
        f["kind"] = "beanstalkd" if f["restart"] else "firewall"
    exporter = exporter_service(fleet)
    if exporter["enabled"]:
        unit = _file(f"{UNIT_DIR}/{exporter['unit']}", f"{exporter['unit']}.j2", "0644")
        files.append({**unit, "restart": False, "validate": "", "kind": "exporter"})
    return {
        "listen_address": address,
        "port": port,
        "wait_host": "127.0.0.1" if address in ("0.0.0.0", "::") else address,  # noqa: S104
        "binlog_dir": v["beanstalkd_binlog_dir"],
        "command": command,
        "firewall": firewall,
        "allow_v4": [a for a in fleet.firewall_allow if ":" not in a],
        "allow_v6": [a for a in fleet.firewall_allow if ":" in a],
        "nft": NFT,
        "nft_file": NFT_FILE,
        "nft_table": NFT_TABLE,
        "hardening": hardening("@privileged @resources"),
        "exporter": exporter,
        "directories": [
            {"path": d, "mode": "0755"}
            for d in dict.fromkeys(posixpath.dirname(f["path"]) for f in files)
        ],
        "files": files,
    }


def _listen(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def metrics_endpoint(fleet: Fleet) -> dict[str, Any]:
    """The worker hosts' metrics endpoint (``beanfleet metrics-endpoint``): one per host,
    serving the sum of its worker processes' metrics."""
    m = fleet.monitoring
    port = int(m["worker_port"])
    command = (
        f"{VENV}/bin/beanfleet metrics-endpoint --dir {METRICS_DIR} "
        f"--listen {_listen('0.0.0.0', port)}"  # noqa: S104 - the firewall limits who connects
    )
    return {
        "enabled": bool(m["enabled"]),
        "dir": METRICS_DIR,
        "port": port,
        "unit": "beanfleet-metrics.service",
        "program": "beanfleet-metrics",
        "command": command,
        # supervisor has no ExecStartPre=: the program loads the table as root, then drops
        # to the workers' user (fails closed like the systemd unit: no table, no endpoint).
        "supervisor_command": f"/bin/sh -c '{NFT} -f {METRICS_NFT_FILE} && exec "
        f"{SETPRIV} --reuid={USER} --regid={USER} --init-groups {command}'",
        "scrape_group": m["scrape_group"],
        "scrape_allow": m["scrape_allow"],
        "allow_v4": [a for a in m["scrape_allow"] if ":" not in a],
        "allow_v6": [a for a in m["scrape_allow"] if ":" in a],
        "nft": NFT,
        "nft_file": METRICS_NFT_FILE,
        "nft_table": METRICS_NFT_TABLE,
        "hardening": hardening("@privileged @resources"),
    }


def exporter_service(fleet: Fleet) -> dict[str, Any]:
    """The queue host's ``beanfleet exporter``: on beanstalkd's listen address, asking it
    on the address the host itself reaches it at."""
    m = fleet.monitoring
    v = fleet.vars
    address = str(v["beanstalkd_listen_address"])
    local = "127.0.0.1" if address in ("0.0.0.0", "::") else address  # noqa: S104
    port = int(m["exporter_port"])
    server = _listen(local, int(v["beanstalkd_port"]))
    command = (
        f"{EXPORTER_VENV}/bin/beanfleet exporter --server {server} "
        f"--listen {_listen(address, port)}"
    )
    if v["beanstalkd_binlog_dir"]:
        command += f" --binlog-dir {v['beanstalkd_binlog_dir']}"
    return {
        "enabled": bool(m["enabled"]),
        "port": port,
        "unit": "beanfleet-exporter.service",
        "unit_path": f"{UNIT_DIR}/beanfleet-exporter.service",
        "command": command,
        "scrape_group": m["scrape_group"],
        "scrape_allow": m["scrape_allow"],
        # In beanstalkd's firewall table (beanstalkd_firewall), next to its port's rule.
        "allow_v4": [a for a in m["scrape_allow"] if ":" not in a],
        "allow_v6": [a for a in m["scrape_allow"] if ":" in a],
        "hardening": hardening("@privileged @resources"),
        # A venv of its own (beanfleet only, no handler packages): on a host that is also a
        # worker host, the workers' venv and its updates stay theirs.
        "home": HOME,
        "venv": EXPORTER_VENV,
        "wheelhouse_dest": WHEELHOUSE_DEST,
        "packages": ["beanfleet"],
    }


def monitor_plan(fleet: Fleet) -> dict[str, Any]:
    """What a Prometheus host gets: its scrape config and the alert rules, with the
    thresholds and ``for:`` durations of the description (plain data, like the others)."""
    m = fleet.monitoring
    if not m["enabled"]:
        raise ConfigError("monitoring_enabled is false: the fleet has no metrics to scrape")
    # Every queue host runs an exporter of its own beanstalkd (several: one target each).
    queue_hosts = [parse_server(s)[0] for s in parse_servers(fleet.server)] if fleet.server else []
    present = fleet.present_pools
    tubes = sorted({t for p in present for t in p["tubes"]})
    overrides = m["tube_oldest_ready_age"]
    # Rules first: Prometheus' config names the rules file. Both are checked by promtool
    # before they replace the old ones (a bad file never reaches a running Prometheus).
    files = [
        {
            **_file(f"{PROMETHEUS_DIR}/beanfleet.rules.yml", "beanfleet.rules.yml.j2", "0644"),
            "validate": f"{PROMTOOL} check rules %s",
        },
        {
            **_file(f"{PROMETHEUS_DIR}/prometheus.yml", "prometheus.yml.j2", "0644"),
            "validate": f"{PROMTOOL} check config --syntax-only %s",
        },
    ]
    return {
        "scrape_interval": m["scrape_interval"],
        "exporter_targets": [_listen(h, int(m["exporter_port"])) for h in queue_hosts],
        "worker_targets": [_listen(h, int(m["worker_port"])) for h in m["worker_hosts"]],
        # Absolute: promtool checks a config written to a temporary file (Ansible's validate).
        "rules_file": f"{PROMETHEUS_DIR}/beanfleet.rules.yml",
        "alert_for": m["alert_for"],
        "oldest_ready_age": m["oldest_ready_age"],
        # One rule per tube with its own threshold; the default rule covers every other.
        "tube_oldest_ready_age": [{"tube": t, "seconds": s} for t, s in sorted(overrides.items())],
        # Every tube without a threshold of its own.
        "oldest_ready_default_selector": "beanfleet_tube_oldest_ready_age_seconds"
        + ("{" + ",".join(f'tube!="{t}"' for t in sorted(overrides)) + "}" if overrides else ""),
        "tubes": tubes,
        "pools": [
            {
                "name": p["name"],
                "processes": int(p["processes"]),
                "failure_rate": m["pool_failure_rate"].get(p["name"], m["failure_rate"]),
            }
            for p in present
        ],
        "binlog_free_ratio": m["binlog_free_ratio"],
        # Debian's package (its unit reloads on SIGHUP; it listens on :9090).
        "package": "prometheus",
        "service": "prometheus.service",
        "port": PROMETHEUS_PORT,
        "directories": [{"path": PROMETHEUS_DIR, "mode": "0755"}],
        "files": files,
    }


def wheelhouse_digest(directory: str, packages: Iterable[str]) -> str:
    """A digest of the wheels in ``directory`` and the packages to install from them: when
    it is unchanged since the last install, the hosts' venvs need nothing ("" when the
    directory does not exist)."""
    root = Path(directory)
    if not directory or not root.is_dir():
        return ""
    digest = hashlib.sha256()
    for name in sorted(packages):
        digest.update(f"package {name}\n".encode())
    for wheel in sorted(root.iterdir()):
        if wheel.is_file():
            digest.update(
                f"file {wheel.name} {hashlib.sha256(wheel.read_bytes()).hexdigest()}\n".encode()
            )
    return digest.hexdigest()
