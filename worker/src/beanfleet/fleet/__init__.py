"""The fleet description: the one place that knows it, for Ansible and ``beanfleet render``.

The variable names are the Ansible inventory's (``group_vars``): ``beanfleet_*`` for the
worker pools, ``beanstalkd_*`` for the queue host, ``monitoring_*`` for both and the
Prometheus host.  One table of settings (:mod:`.table`, what a row is: :mod:`.schema`)
says what those variables are (type, default, range, choices, doc); the roles'
``defaults/main.yml`` and ``meta/argument_specs.yml`` are written from it (:mod:`.roles`,
``make render``).  :func:`check` returns every problem of a description, one line each
(:mod:`.validate`, :mod:`.monitoring`); :func:`validate` raises :class:`FleetError` with
them.  What follows for each host is a typed plan (:mod:`.plans`): the files, units and
commands the roles write, handed to Ansible as plain variables (``as_vars()``) by the action
plugin ``beanfleet.fleet.describe`` (``ansible/collections``) and rendered with the same
templates by ``beanfleet render`` (:mod:`.render`), so both write the same bytes.

The package owns: paths (on-host paths), schema, table (+ rows_workers, rows_hosts),
validate, monitoring, inventory, plans (+ plan_workers, plan_hosts), wheels, roles, render.
It may import the standard library and beanfleet's base modules only (errors, bounds,
address), never a client (greenstalk), the CLI (click) or the exporter (prometheus_client):
the controller's Ansible imports it.  :mod:`.render` alone imports jinja2 and yaml, and this
``__init__`` does not import it.
"""

from __future__ import annotations

from beanfleet.errors import ConfigError
from beanfleet.fleet import monitoring
from beanfleet.fleet.inventory import Fleet, Inventory, default_server, host_address, settings
from beanfleet.fleet.paths import (
    BEANSTALKD_DROPIN,
    EXPORTER_VENV,
    HOME,
    METRICS_DIR,
    METRICS_NFT_FILE,
    METRICS_NFT_TABLE,
    NFT,
    NFT_FILE,
    NFT_TABLE,
    POOL_DIR,
    PROMETHEUS_DIR,
    PROMETHEUS_PORT,
    PROMTOOL,
    SETPRIV,
    STATE_DIR,
    SUPERVISOR_DIR,
    UNIT_DIR,
    USER,
    VENV,
    WHEELHOUSE_DEST,
)
from beanfleet.fleet.plan_hosts import exporter_service, monitor_plan, queue_plan
from beanfleet.fleet.plan_workers import (
    instances,
    metrics_endpoint,
    stop_timeout,
    worker_command,
    worker_plan,
)
from beanfleet.fleet.plans import (
    ExporterService,
    FilePlan,
    MetricsEndpoint,
    MonitorPlan,
    Plan,
    PoolPlan,
    QueuePlan,
    WorkerPlan,
)
from beanfleet.fleet.schema import (
    ENV_NAME_PATTERN,
    HANDLER_PATTERN,
    LOG_FORMATS,
    MANAGERS,
    MAX_JOB_SIZE_LIMIT,
    PARTS,
    POOL_NAME_PATTERN,
    POOL_STATES,
    RESERVED_ENV,
    TUBE_PATTERN,
    Setting,
)
from beanfleet.fleet.table import (
    ANSIBLE_COMPUTED,
    CHOICES,
    FLEET_DEFAULTS,
    FLEET_TYPES,
    FOREIGN_KEYS,
    INVENTORY_DEFAULTS,
    POOL_DEFAULTS,
    POOL_KEYS,
    POOL_TYPES,
    PREFIXES,
    SETTINGS,
    SHARED_PREFIX,
)
from beanfleet.fleet.validate import FleetError, check, validate
from beanfleet.fleet.wheels import wheelhouse_digest

__all__ = [
    "ANSIBLE_COMPUTED",
    "BEANSTALKD_DROPIN",
    "CHOICES",
    "ENV_NAME_PATTERN",
    "EXPORTER_VENV",
    "FLEET_DEFAULTS",
    "FLEET_TYPES",
    "FOREIGN_KEYS",
    "HANDLER_PATTERN",
    "HOME",
    "INVENTORY_DEFAULTS",
    "LOG_FORMATS",
    "MANAGERS",
    "MAX_JOB_SIZE_LIMIT",
    "METRICS_DIR",
    "METRICS_NFT_FILE",
    "METRICS_NFT_TABLE",
    "NFT",
    "NFT_FILE",
    "NFT_TABLE",
    "PARTS",
    "POOL_DEFAULTS",
    "POOL_DIR",
    "POOL_KEYS",
    "POOL_NAME_PATTERN",
    "POOL_STATES",
    "POOL_TYPES",
    "PREFIXES",
    "PROMETHEUS_DIR",
    "PROMETHEUS_PORT",
    "PROMTOOL",
    "RESERVED_ENV",
    "SETPRIV",
    "SETTINGS",
    "SHARED_PREFIX",
    "STATE_DIR",
    "SUPERVISOR_DIR",
    "TUBE_PATTERN",
    "UNIT_DIR",
    "USER",
    "VENV",
    "WHEELHOUSE_DEST",
    "ConfigError",
    "ExporterService",
    "FilePlan",
    "Fleet",
    "FleetError",
    "Inventory",
    "MetricsEndpoint",
    "MonitorPlan",
    "Plan",
    "PoolPlan",
    "QueuePlan",
    "Setting",
    "WorkerPlan",
    "check",
    "default_server",
    "exporter_service",
    "host_address",
    "instances",
    "metrics_endpoint",
    "monitor_plan",
    "monitoring",
    "queue_plan",
    "settings",
    "stop_timeout",
    "validate",
    "wheelhouse_digest",
    "worker_command",
    "worker_plan",
]
