"""The table's rows for the worker hosts: role beanfleet's variables and a pool's settings.

Part of the one table of settings (:mod:`.table` assembles it and derives the views).
May import: the standard library and :mod:`.schema`.
"""

from __future__ import annotations

from beanfleet.fleet.schema import (
    LOG_FORMATS,
    MANAGERS,
    POOL_NAME_PATTERN,
    POOL_STATES,
    Setting,
)

# max_retries, backoff_base and backoff_cap equal beanfleet.retry's DEFAULT_* (a test checks;
# beanfleet.retry imports greenstalk, which the controller's Ansible does not need).
POOL_SETTINGS: tuple[Setting, ...] = (
    Setting("processes", "pool", "int", 1, "Worker processes, >= 1.", low=1),
    Setting(
        "max_retries",
        "pool",
        "int",
        3,
        "Retries of a failing job before it is buried, >= 0.",
        low=0,
    ),
    Setting(
        "backoff_base", "pool", "float", 1.0, "First retry delay (s), doubling per attempt.", low=0
    ),
    Setting(
        "backoff_cap", "pool", "float", 300.0, "Longest retry delay (s), >= backoff_base.", low=0
    ),
    Setting(
        "timeout", "pool", "float", 60, "Longest a job may run (s), > 0.", low=0, low_open=True
    ),
    Setting(
        "max_jobs",
        "pool",
        "int",
        1000,
        "Recycle a worker after this many jobs; 0 = no limit.",
        low=0,
    ),
    Setting(
        "max_time",
        "pool",
        "float",
        3600,
        "Recycle a worker after this many seconds; 0 = no limit.",
        low=0,
    ),
    Setting(
        "max_memory",
        "pool",
        "float",
        256,
        "Recycle a worker at this resident memory (MB); 0 = no limit.",
        low=0,
    ),
    Setting(
        "prefetch", "pool", "bool", False, "Reserve the next job while a handler runs (short jobs)."
    ),
    Setting(
        "env",
        "pool",
        "dict",
        {},
        "Environment of the handlers (secrets; never logged).",
        no_log=True,
        check="env",
    ),
    Setting(
        "state", "pool", "str", "present", "absent stops and removes the pool.", choices=POOL_STATES
    ),
)
# Only in a pool's own entry (beanfleet_pools), never in beanfleet_pool_defaults.
POOL_OWN: tuple[Setting, ...] = (
    Setting(
        "name",
        "pool",
        "str",
        None,
        "Pool name (letters, digits, _ and -).",
        required=True,
        pattern=POOL_NAME_PATTERN,
    ),
    Setting(
        "tubes",
        "pool",
        "dict",
        None,
        "Tube name -> MODULE:FUNCTION of its handler.",
        required=True,
        check="tubes",
    ),
)

BEANFLEET: tuple[Setting, ...] = (
    Setting(
        "beanfleet_server",
        "beanfleet",
        "str",
        "",
        "beanstalkd servers as HOST:PORT[,HOST:PORT...]; empty takes every host of group queue.",
        comment="""\
The beanstalkd servers the workers use, HOST:PORT[,HOST:PORT...]. Empty: every host of
inventory group `queue`, in inventory order (its beanstalkd_listen_address, or when that
is 0.0.0.0 its beanfleet_host_address / default IPv4 address / ansible_host, and its
beanstalkd_port). Several servers: each worker process serves all of them.""",
        check="server",
        inventory_default="every host of group 'queue' with its beanstalkd_port, comma-separated",
    ),
    Setting(
        "beanfleet_manager",
        "beanfleet",
        "str",
        "systemd",
        "Process manager of the pools.",
        comment="""\
Process manager of the worker pools: systemd or supervisor. Switching removes the
other manager's beanfleet units / programs.""",
        choices=MANAGERS,
    ),
    Setting(
        "beanfleet_packages",
        "beanfleet",
        "list",
        [],
        "pip requirements holding the handlers (from the wheelhouse).",
        comment="""\
pip requirements holding the handlers, installed into /opt/beanfleet/venv next to
beanfleet, from the wheelhouse only (the hosts have no package index).""",
        elements="str",
        check="packages",
    ),
    Setting(
        "beanfleet_wheelhouse",
        "beanfleet",
        "str",
        "",
        (
            "Controller directory of wheels, copied to the hosts.",
            "Default is build/wheelhouse of the repository.",
        ),
        comment="""\
Controller directory of wheels (scripts/wheelhouse.sh builds build/wheelhouse): copied
to the hosts and the only source of pip installs.""",
        ansible_default="{{ playbook_dir }}/../build/wheelhouse",
    ),
    Setting(
        "beanfleet_log_format",
        "beanfleet",
        "str",
        "text",
        "Format of the workers' job log.",
        comment="Format of the workers' one-line-per-job log: text or json.",
        choices=LOG_FORMATS,
    ),
    Setting(
        "beanfleet_stop_grace",
        "beanfleet",
        "int",
        30,
        "Seconds beyond a pool's timeout before a stopping worker is killed.",
        comment="""\
Seconds a stopping worker gets beyond its pool's timeout before it is killed
(TimeoutStopSec= / stopwaitsecs= = timeout + this).""",
        low=1,
    ),
    Setting(
        "beanfleet_pool_defaults",
        "beanfleet",
        "dict",
        {},
        "Fleet-wide overrides of the built-in pool settings.",
        comment="""\
Fleet-wide overrides of the built-in pool settings (beanfleet.fleet.POOL_DEFAULTS,
listed in meta/argument_specs.yml): a mapping of any of processes, max_retries, backoff_base,
backoff_cap, timeout, max_jobs, max_time, max_memory, prefetch, env, state.
A pool's own entry wins.""",
        options=POOL_SETTINGS,
        options_anchor="beanfleet_pool_settings",
        check="pool_defaults",
    ),
    Setting(
        "beanfleet_pools",
        "beanfleet",
        "list",
        [],
        "The worker pools.",
        comment="""\
The pools: a list of mappings with `name` (letters, digits, _ and -), `tubes` (tube ->
MODULE:FUNCTION) and any of the pool settings (see beanfleet_pool_defaults).""",
        elements="dict",
        options=POOL_OWN,
        options_merge="beanfleet_pool_settings",
        check="pools",
    ),
)
