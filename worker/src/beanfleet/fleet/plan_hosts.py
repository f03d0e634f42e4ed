"""The other hosts' plans: the queue host (role beanstalkd, its exporter) and the
Prometheus host (role monitoring).

May import: the standard library, :mod:`beanfleet.errors`, :mod:`beanfleet.names` and the
fleet's :mod:`.paths`, :mod:`.inventory`, :mod:`.plans`.
"""

from __future__ import annotations

import posixpath
from dataclasses import replace

from beanfleet.errors import ConfigError
from beanfleet.fleet.inventory import Fleet, listen
from beanfleet.fleet.paths import (
    BEANSTALKD_DROPIN,
    EXPORTER_VENV,
    HOME,
    NFT,
    NFT_FILE,
    NFT_TABLE,
    PROMETHEUS_DIR,
    PROMETHEUS_PORT,
    PROMTOOL,
    UNIT_DIR,
    WHEELHOUSE_DEST,
)
from beanfleet.fleet.plans import (
    Directory,
    ExporterService,
    FilePlan,
    MonitorPlan,
    MonitorPool,
    QueuePlan,
    ScrapeAccess,
)
from beanfleet.names import parse_server, parse_servers


def _wildcard_local(address: str) -> str:
    return "127.0.0.1" if address in ("0.0.0.0", "::") else address  # noqa: S104


def queue_plan(fleet: Fleet) -> QueuePlan:
    """What role beanstalkd does on the queue host."""
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
    files = [FilePlan(BEANSTALKD_DROPIN, "beanfleet.conf.j2", "0644", restart=True, validate="")]
    if firewall:
        files.append(
            FilePlan(
                NFT_FILE, "beanstalkd.nft.j2", "0644", restart=False, validate=f"{NFT} -c -f %s"
            )
        )
    files = [replace(f, kind="beanstalkd" if f.restart else "firewall") for f in files]
    exporter = exporter_service(fleet)
    if exporter.enabled:
        files.append(
            FilePlan(
                exporter.unit_path,
                f"{exporter.unit}.j2",
                "0644",
                restart=False,
                validate="",
                kind="exporter",
            )
        )
    return QueuePlan(
        listen_address=address,
        port=port,
        wait_host=_wildcard_local(address),
        binlog_dir=v["beanstalkd_binlog_dir"],
        command=command,
        firewall=firewall,
        allow_v4=[a for a in fleet.firewall_allow if ":" not in a],
        allow_v6=[a for a in fleet.firewall_allow if ":" in a],
        nft=NFT,
        nft_file=NFT_FILE,
        nft_table=NFT_TABLE,
        exporter=exporter,
        directories=[Directory(d) for d in dict.fromkeys(posixpath.dirname(f.path) for f in files)],
        files=files,
    )


def exporter_service(fleet: Fleet) -> ExporterService:
    """The queue host's ``beanfleet exporter``: on beanstalkd's listen address, asking it
    on the address the host itself reaches it at."""
    m = fleet.monitoring
    v = fleet.vars
    address = str(v["beanstalkd_listen_address"])
    port = int(m["exporter_port"])
    server = listen(_wildcard_local(address), int(v["beanstalkd_port"]))
    command = (
        f"{EXPORTER_VENV}/bin/beanfleet exporter --server {server} --listen {listen(address, port)}"
    )
    if v["beanstalkd_binlog_dir"]:
        command += f" --binlog-dir {v['beanstalkd_binlog_dir']}"
    return ExporterService(
        enabled=bool(m["enabled"]),
        port=port,
        unit="beanfleet-exporter.service",
        unit_path=f"{UNIT_DIR}/beanfleet-exporter.service",
        command=command,
        # Its allow_v4/v6: in beanstalkd's firewall table (beanstalkd_firewall), next to its
        # port's rule.
        scrape=ScrapeAccess.of(m),
        # A venv of its own (beanfleet only, no handler packages): on a host that is also a
        # worker host, the workers' venv and its updates stay theirs.
        home=HOME,
        venv=EXPORTER_VENV,
        wheelhouse_dest=WHEELHOUSE_DEST,
        packages=["beanfleet"],
    )


def monitor_plan(fleet: Fleet) -> MonitorPlan:
    """What a Prometheus host gets: its scrape config and the alert rules, with the
    thresholds and ``for:`` durations of the description."""
    m = fleet.monitoring
    if not m["enabled"]:
        raise ConfigError("monitoring_enabled is false: the fleet has no metrics to scrape")
    # Every queue host runs an exporter of its own beanstalkd (several: one target each).
    queue_hosts = [parse_server(s)[0] for s in parse_servers(fleet.server)] if fleet.server else []
    present = fleet.present_pools
    overrides = m["tube_oldest_ready_age"]
    rules = f"{PROMETHEUS_DIR}/beanfleet.rules.yml"
    # Rules first: Prometheus' config names the rules file. Both are checked by promtool
    # before they replace the old ones (a bad file never reaches a running Prometheus).
    files = [
        FilePlan(rules, "beanfleet.rules.yml.j2", "0644", validate=f"{PROMTOOL} check rules %s"),
        FilePlan(
            f"{PROMETHEUS_DIR}/prometheus.yml",
            "prometheus.yml.j2",
            "0644",
            validate=f"{PROMTOOL} check config --syntax-only %s",
        ),
    ]
    return MonitorPlan(
        scrape_interval=m["scrape_interval"],
        exporter_targets=[listen(h, int(m["exporter_port"])) for h in queue_hosts],
        worker_targets=[listen(h, int(m["worker_port"])) for h in m["worker_hosts"]],
        # Absolute: promtool checks a config written to a temporary file (Ansible's validate).
        rules_file=rules,
        alert_for=m["alert_for"],
        oldest_ready_age=m["oldest_ready_age"],
        # One rule per tube with its own threshold; the default rule covers every other.
        tube_oldest_ready_age=[{"tube": t, "seconds": s} for t, s in sorted(overrides.items())],
        # Every tube without a threshold of its own.
        oldest_ready_default_selector="beanfleet_tube_oldest_ready_age_seconds"
        + ("{" + ",".join(f'tube!="{t}"' for t in sorted(overrides)) + "}" if overrides else ""),
        tubes=sorted({t for p in present for t in p["tubes"]}),
        pools=[
            MonitorPool(
                p["name"],
                int(p["processes"]),
                m["pool_failure_rate"].get(p["name"], m["failure_rate"]),
            )
            for p in present
        ],
        binlog_free_ratio=m["binlog_free_ratio"],
        # Debian's package (its unit reloads on SIGHUP; it listens on :9090).
        package="prometheus",
        service="prometheus.service",
        port=PROMETHEUS_PORT,
        directories=[Directory(PROMETHEUS_DIR)],
        files=files,
    )
