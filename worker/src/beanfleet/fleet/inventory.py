"""What the fleet model takes from Ansible's inventory, and the checked fleet it returns.

Owns :class:`Inventory` (the queue hosts, every host's address, the groups),
:func:`host_address`, :func:`default_server`, :func:`settings` (the variable names of a
part) and :class:`Fleet` (a validated description).

May import: the standard library and :mod:`.table`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from beanfleet.fleet.table import FLEET_DEFAULTS, PREFIXES, SHARED_PREFIX


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


def listen(address: str, port: int) -> str:
    """HOST:PORT, ``[V6]:PORT`` for an IPv6 address."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def default_server(name: str, queue: Mapping[str, Any]) -> str:
    """HOST:PORT of the queue host: its listen address, or its own address when that is
    a wildcard, and its beanstalkd_port."""
    address = str(
        queue.get("beanstalkd_listen_address", FLEET_DEFAULTS["beanstalkd_listen_address"])
    )
    if address in ("0.0.0.0", "::", ""):  # noqa: S104 - wildcard addresses, compared
        address = host_address(name, queue)
    return listen(address, queue.get("beanstalkd_port", FLEET_DEFAULTS["beanstalkd_port"]))


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
    # beanfleet.fleet.monitoring.check's resolved settings
    monitoring: dict[str, Any] = field(default_factory=dict)

    @property
    def manager(self) -> str:
        return str(self.vars["beanfleet_manager"])

    @property
    def present_pools(self) -> list[dict[str, Any]]:
        return [p for p in self.pools if p["state"] == "present"]
