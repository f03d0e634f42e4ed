"""The table's rows for the other hosts: roles beanstalkd, monitoring and supervisor.

Part of the one table of settings (:mod:`.table` assembles it and derives the views).
May import: the standard library and :mod:`.schema`.
"""

from __future__ import annotations

from typing import Any

from beanfleet.fleet.schema import (
    DURATION_PATTERN,
    GROUP_PATTERN,
    MAX_JOB_SIZE_LIMIT,
    Setting,
)

_SECONDS = "a whole number of seconds"
# A share (of jobs, of a file system): a real number in (0, 1], never a string (the alert
# rules compare it as written).
_RATIO: dict[str, Any] = {"low": 0, "low_open": True, "high": 1, "text": False, "noun": "a ratio"}

BEANSTALKD: tuple[Setting, ...] = (
    Setting(
        "beanstalkd_listen_address",
        "beanstalkd",
        "str",
        "0.0.0.0",  # noqa: S104 - see comment
        "Address beanstalkd listens on (-l).",
        comment="""\
Address beanstalkd listens on (-l). 0.0.0.0: every IPv4 address, with the firewall
below limiting who may connect. beanstalkd binds it itself (beanstalkd.socket is masked).""",
        check="listen_address",
    ),
    Setting(
        "beanstalkd_port",
        "beanstalkd",
        "int",
        11300,
        "TCP port (-p), 1-65535.",
        comment="TCP port (-p).",
        low=1,
        high=65535,
    ),
    Setting(
        "beanstalkd_binlog_dir",
        "beanstalkd",
        "str",
        "/var/lib/beanstalkd",
        "Binlog directory (-b), an absolute path; empty for no binlog.",
        comment="""\
Binlog (write-ahead log) directory (-b): jobs survive restarts and crashes.
Empty string: no binlog (jobs live in memory only).""",
        check="binlog_dir",
    ),
    Setting(
        "beanstalkd_fsync_ms",
        "beanstalkd",
        "int",
        50,
        "fsync the binlog at most every N ms (-f); 0 fsyncs every write.",
        comment="""\
fsync the binlog at most once every this many milliseconds (-f). 0: fsync every write
(safest, slowest). Only used with a binlog.""",
        low=0,
    ),
    Setting(
        "beanstalkd_binlog_size",
        "beanstalkd",
        "int",
        10485760,
        "Size of each binlog file in bytes (-s).",
        comment="Size of each binlog file in bytes (-s), rounded up to a multiple of 4096 "
        "by beanstalkd.",
        low=1,
    ),
    Setting(
        "beanstalkd_max_job_size",
        "beanstalkd",
        "int",
        65535,
        "Largest job body in bytes (-z), 1-1073741824.",
        comment="Largest job body in bytes (-z), at most 1073741824.",
        low=1,
        high=MAX_JOB_SIZE_LIMIT,
    ),
    Setting(
        "beanstalkd_firewall",
        "beanstalkd",
        "bool",
        True,
        "Limit the port to loopback and beanstalkd_firewall_allow (nftables).",
        comment="""\
Restrict the port with nftables to loopback and beanstalkd_firewall_allow. false: no
firewall (the role removes its table).""",
    ),
    Setting(
        "beanstalkd_firewall_allow",
        "beanstalkd",
        "list",
        None,
        (
            "IP addresses or networks that may connect.",
            "Default is the address of every inventory host.",
        ),
        comment="""\
Addresses or networks (IPv4/IPv6, CIDR allowed) that may connect. null (the default):
the address of every inventory host (beanfleet_host_address, else the default IPv4
address from facts, else ansible_host).""",
        elements="str",
        check="firewall_allow",
        inventory_default="the address of every inventory host",
    ),
    Setting(
        "beanstalkd_exporter_wheelhouse",
        "beanstalkd",
        "str",
        "",
        (
            "Controller directory of wheels for the exporter's venv (monitoring_enabled).",
            "Default is beanfleet_wheelhouse, else build/wheelhouse next to the playbook.",
        ),
        comment="""\
Controller directory of wheels for the queue host's exporter venv (monitoring_enabled):
the workers' wheelhouse.""",
        ansible_default="{{ beanfleet_wheelhouse"
        " | default(playbook_dir ~ '/../build/wheelhouse') }}",
    ),
)

MONITORING: tuple[Setting, ...] = (
    Setting(
        "monitoring_enabled",
        "monitoring",
        "bool",
        False,
        "Deploy the exporter, the workers' metrics endpoints and Prometheus.",
        comment="Deploy the exporter, the workers' metrics endpoints and Prometheus. "
        "false: none of them.",
    ),
    Setting(
        "monitoring_scrape_group",
        "monitoring",
        "str",
        "monitor",
        "Inventory group of the hosts that scrape the metrics.",
        comment="Inventory group of the hosts that scrape the metrics (this role's hosts).",
        pattern=GROUP_PATTERN,
        rule="an inventory group name",
    ),
    Setting(
        "monitoring_scrape_allow",
        "monitoring",
        "list",
        None,
        (
            "Addresses or networks allowed to the metrics ports.",
            "Default is the address of every host of monitoring_scrape_group.",
        ),
        comment="""\
Addresses or networks allowed to the metrics ports. null (the default): the address of
every host of monitoring_scrape_group.""",
        elements="str",
        check="addresses",
        inventory_default="the addresses of the hosts of group monitoring_scrape_group",
    ),
    Setting(
        "monitoring_worker_hosts",
        "monitoring",
        "list",
        None,
        ("Worker hosts Prometheus scrapes.", "Default is every host of group workers."),
        comment="Worker hosts Prometheus scrapes. null (the default): every host of group workers.",
        elements="str",
        check="hosts",
        inventory_default="the addresses of the hosts of group 'workers'",
    ),
    Setting(
        "monitoring_exporter_port",
        "monitoring",
        "int",
        9650,
        "Port of the exporter on each queue host.",
        comment="Port of the exporter on each queue host.",
        low=1,
        high=65535,
        text=False,
    ),
    Setting(
        "monitoring_worker_port",
        "monitoring",
        "int",
        9651,
        "Port of the metrics endpoint on each worker host.",
        comment="Port of the metrics endpoint on each worker host.",
        low=1,
        high=65535,
        text=False,
    ),
    Setting(
        "monitoring_scrape_interval",
        "monitoring",
        "str",
        "15s",
        "Scrape and rule evaluation interval (a Prometheus duration).",
        comment="Prometheus' scrape and rule evaluation interval.",
        pattern=DURATION_PATTERN,
        rule="a Prometheus duration like 30s, 5m or 1h",
    ),
    Setting(
        "monitoring_oldest_ready_age",
        "monitoring",
        "int",
        300,
        "Seconds a tube's oldest ready job may wait before its alert.",
        comment="Alert when a tube's oldest ready job has waited longer than this many seconds.",
        low=1,
        text=False,
        noun=_SECONDS,
    ),
    Setting(
        "monitoring_tube_oldest_ready_age",
        "monitoring",
        "dict",
        {},
        "Per-tube thresholds for that alert (tube to seconds).",
        comment="Per-tube thresholds for that alert (tube: seconds).",
        low=1,
        text=False,
        noun=_SECONDS,
        check="tube_map",
        item_type="int",
    ),
    Setting(
        "monitoring_failure_rate",
        "monitoring",
        "float",
        0.1,
        "Share of a pool's finished jobs that may fail before its alert.",
        comment="Alert when more than this share of a pool's finished jobs failed "
        "(retried, buried, lost).",
        **_RATIO,
    ),
    Setting(
        "monitoring_pool_failure_rate",
        "monitoring",
        "dict",
        {},
        "Per-pool failure rates (pool to ratio).",
        comment="Per-pool failure rates (pool: ratio).",
        **_RATIO,
        check="pool_map",
        item_type="float",
    ),
    Setting(
        "monitoring_binlog_free_ratio",
        "monitoring",
        "float",
        0.1,
        "Free share of the binlog's filesystem below which its alert fires.",
        comment="Alert when the binlog's filesystem has less than this share free.",
        **_RATIO,
    ),
    Setting(
        "monitoring_alert_for",
        "monitoring",
        "dict",
        {},
        "for durations of alerts (alert name to Prometheus duration).",
        comment="`for:` durations of alerts (alert: duration) over the defaults in README.md.",
        pattern=DURATION_PATTERN,
        rule="a Prometheus duration like 30s, 5m or 1h",
        check="alert_map",
        item_type="str",
    ),
)

SUPERVISOR: tuple[Setting, ...] = (
    Setting(
        "supervisor_enabled",
        "supervisor",
        "bool",
        True,
        "Start supervisord at boot.",
        comment="Start supervisord at boot.",
    ),
)
