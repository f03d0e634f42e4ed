"""What each host of a checked fleet gets: typed plans, handed to Ansible and ``render``.

Owns the plan types (:class:`WorkerPlan`, :class:`QueuePlan`, :class:`MonitorPlan` and their
parts :class:`MetricsEndpoint`, :class:`ExporterService`, :class:`PoolPlan`,
:class:`FilePlan`, :class:`LinkPlan`, :class:`Directory`).  A plan becomes plain data only
at the two boundaries, the action plugin and ``render``: :meth:`Plan.as_vars` gives the
variables the roles' tasks and templates read (the systemd sandbox is their include,
templates/common/hardening.conf.j2, not a plan value).  Built by :mod:`.plan_workers` and
:mod:`.plan_hosts`.

May import: the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

# A field left out of the variables when it is None (a file's role-specific keys).
_OPTIONAL = {"optional": True}
# A field whose mapping is the plan's own keys (a pool's settings).
_FLAT = {"flatten": True}


def _vars(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in fields(value):
            item = getattr(value, f.name)
            if f.metadata.get("optional") and item is None:
                continue
            if f.metadata.get("flatten"):
                out.update(_vars(item))
            else:
                out[f.name] = _vars(item)
        return out
    if isinstance(value, Mapping):
        return {k: _vars(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_vars(v) for v in value]
    return value


class Plan:
    """A plan's variables: plain data (dicts, lists, strings, numbers) for Ansible."""

    def as_vars(self) -> dict[str, Any]:
        result: dict[str, Any] = _vars(self)
        return result


@dataclass(frozen=True)
class Directory(Plan):
    path: str
    mode: str = "0755"


@dataclass(frozen=True)
class FilePlan(Plan):
    """One file of a host: rendered from ``template`` (of the role) to ``path``."""

    path: str
    template: str
    mode: str
    owner: str = "root"
    group: str = "root"
    pool: str = ""
    secret: bool = False
    restarts: list[str] = field(default_factory=list)
    # workers: a change restarts the metrics endpoint
    endpoint: bool | None = field(default=None, metadata=_OPTIONAL)
    # queue host: a change restarts beanstalkd; what the role's handlers call it
    restart: bool | None = field(default=None, metadata=_OPTIONAL)
    validate: str | None = field(default=None, metadata=_OPTIONAL)
    kind: str | None = field(default=None, metadata=_OPTIONAL)


@dataclass(frozen=True)
class LinkPlan(Plan):
    path: str
    src: str
    pool: str


@dataclass(frozen=True)
class PoolPlan(Plan):
    """A present pool: its settings (defaults filled in) and what follows from them."""

    settings: dict[str, Any] = field(metadata=_FLAT)
    instances: list[str]
    command: str
    stop_timeout: int


@dataclass(frozen=True)
class ScrapeAccess(Plan):
    """Who may scrape a metrics port (the exporter's, the workers' endpoint): the inventory
    group of the Prometheus hosts and the addresses allowed, also split by family for the
    nftables rules.  Flattened into its plan's variables."""

    scrape_group: str
    scrape_allow: list[str]
    allow_v4: list[str]
    allow_v6: list[str]

    @classmethod
    def of(cls, monitoring: Mapping[str, Any]) -> ScrapeAccess:
        allow = monitoring["scrape_allow"]
        return cls(
            scrape_group=monitoring["scrape_group"],
            scrape_allow=allow,
            allow_v4=[a for a in allow if ":" not in a],
            allow_v6=[a for a in allow if ":" in a],
        )


@dataclass(frozen=True)
class MetricsEndpoint(Plan):
    """The worker hosts' metrics endpoint (``beanfleet metrics-endpoint``)."""

    enabled: bool
    dir: str
    port: int
    unit: str
    program: str
    command: str
    supervisor_command: str
    scrape: ScrapeAccess = field(metadata=_FLAT)
    nft: str
    nft_file: str
    nft_table: str


@dataclass(frozen=True)
class ExporterService(Plan):
    """The queue host's ``beanfleet exporter`` (in a venv of its own)."""

    enabled: bool
    port: int
    unit: str
    unit_path: str
    command: str
    scrape: ScrapeAccess = field(metadata=_FLAT)
    home: str
    venv: str
    wheelhouse_dest: str
    packages: list[str]


@dataclass(frozen=True)
class WorkerPlan(Plan):
    manager: str
    server: str
    user: str
    home: str
    venv: str
    wheelhouse_dest: str
    state_dir: str
    pool_dir: str
    unit_dir: str
    supervisor_dir: str
    log_format: str
    stop_grace: Any
    packages: list[str]
    metrics: MetricsEndpoint
    pools: dict[str, PoolPlan]
    pool_names: list[str]
    instances: list[str]
    directories: list[Directory]
    files: list[FilePlan]
    links: list[LinkPlan]


@dataclass(frozen=True)
class QueuePlan(Plan):
    listen_address: str
    port: Any
    wait_host: str
    binlog_dir: Any
    command: str
    firewall: bool
    allow_v4: list[str]
    allow_v6: list[str]
    nft: str
    nft_file: str
    nft_table: str
    exporter: ExporterService
    directories: list[Directory]
    files: list[FilePlan]


@dataclass(frozen=True)
class MonitorPool(Plan):
    name: str
    processes: int
    failure_rate: float


@dataclass(frozen=True)
class MonitorPlan(Plan):
    scrape_interval: str
    exporter_targets: list[str]
    worker_targets: list[str]
    rules_file: str
    alert_for: dict[str, str]
    oldest_ready_age: int
    tube_oldest_ready_age: list[dict[str, Any]]
    oldest_ready_default_selector: str
    tubes: list[str]
    pools: list[MonitorPool]
    binlog_free_ratio: float
    package: str
    service: str
    port: int
    directories: list[Directory]
    files: list[FilePlan]
