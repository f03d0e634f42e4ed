"""The worker hosts' plan (role beanfleet): pools, instances, command lines, the unit or
program files of the process manager, and the metrics endpoint.

May import: the standard library, :mod:`beanfleet.errors` and the fleet's :mod:`.paths`,
:mod:`.schema`, :mod:`.inventory`, :mod:`.plans`.
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from beanfleet.errors import ConfigError
from beanfleet.fleet.inventory import Fleet, listen
from beanfleet.fleet.paths import (
    HOME,
    METRICS_DIR,
    METRICS_NFT_FILE,
    METRICS_NFT_TABLE,
    NFT,
    POOL_DIR,
    SETPRIV,
    STATE_DIR,
    SUPERVISOR_DIR,
    UNIT_DIR,
    USER,
    VENV,
    WHEELHOUSE_DEST,
)
from beanfleet.fleet.plans import (
    Directory,
    FilePlan,
    LinkPlan,
    MetricsEndpoint,
    PoolPlan,
    ScrapeAccess,
    WorkerPlan,
)
from beanfleet.fleet.schema import MANAGERS


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


def _systemd_files(
    fleet: Fleet, metrics: MetricsEndpoint
) -> tuple[list[str], list[FilePlan], list[LinkPlan]]:
    present = fleet.present_pools
    every = [i for p in present for i in instances(p)]
    directories = [UNIT_DIR, POOL_DIR]
    files = [
        FilePlan(f"{UNIT_DIR}/{unit}", f"systemd/{unit}.j2", "0644", restarts=every)
        for unit in ("beanfleet-worker@.service", "beanfleet.target")
    ]
    links = []
    for p in present:
        name = p["name"]
        conf = f"{POOL_DIR}/{name}.conf"
        mine = instances(p)
        files.append(FilePlan(conf, "systemd/pool.conf.j2", "0644", pool=name, restarts=mine))
        files.append(
            FilePlan(
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
                LinkPlan(f"{dropin_dir}/pool.conf", posixpath.relpath(conf, dropin_dir), name)
            )
    if metrics.enabled:
        unit = "beanfleet-metrics.service"
        files.append(FilePlan(f"{UNIT_DIR}/{unit}", f"systemd/{unit}.j2", "0644"))
        files.append(FilePlan(METRICS_NFT_FILE, "metrics.nft.j2", "0644"))
        directories.append(posixpath.dirname(METRICS_NFT_FILE))
    return directories, files, links


def _supervisor_files(fleet: Fleet, metrics: MetricsEndpoint) -> tuple[list[str], list[FilePlan]]:
    present = fleet.present_pools
    directories = [SUPERVISOR_DIR]
    files = []
    if present:
        files.append(
            FilePlan(f"{SUPERVISOR_DIR}/beanfleet.conf", "supervisor/beanfleet.conf.j2", "0644")
        )
    for p in present:
        files.append(
            FilePlan(
                f"{SUPERVISOR_DIR}/beanfleet-{p['name']}.conf",
                "supervisor/pool.conf.j2",
                "0600",
                pool=p["name"],
                secret=True,
            )
        )
    if metrics.enabled:
        files.append(
            FilePlan(
                f"{SUPERVISOR_DIR}/beanfleet-metrics.conf", "supervisor/metrics.conf.j2", "0644"
            )
        )
        # Loaded by the role (supervisor has no ExecStartPre=).
        files.append(FilePlan(METRICS_NFT_FILE, "metrics.nft.j2", "0644"))
        directories.append(posixpath.dirname(METRICS_NFT_FILE))
    return directories, files


def worker_plan(fleet: Fleet, manager: str | None = None) -> WorkerPlan:
    """What role beanfleet does on a worker host.

    ``pools`` (by name, with ``command`` and ``stop_timeout``), ``instances``, and the
    ``directories``, ``files`` (templates of the role) and ``links`` of ``manager``.
    """
    manager = manager or fleet.manager
    v = fleet.vars
    present = fleet.present_pools
    log_format = str(v["beanfleet_log_format"])
    metrics = metrics_endpoint(fleet)
    pools = {
        p["name"]: PoolPlan(
            dict(p),
            instances(p),
            worker_command(p, fleet.server, log_format, manager, metrics=metrics.enabled),
            stop_timeout(p, v["beanfleet_stop_grace"]),
        )
        for p in present
    }
    links: list[LinkPlan] = []
    if manager == "systemd":
        directories, files, links = _systemd_files(fleet, metrics)
    elif manager == "supervisor":
        directories, files = _supervisor_files(fleet, metrics)
    else:  # validate() rejects it first; kept for direct callers
        raise ConfigError(
            f"beanfleet_manager must be one of: {', '.join(MANAGERS)}, got {manager!r}"
        )
    # A change to these restarts the metrics endpoint (which loads its firewall table).
    endpoint_files = (
        f"{UNIT_DIR}/{metrics.unit}",
        f"{SUPERVISOR_DIR}/{metrics.program}.conf",
        METRICS_NFT_FILE,
    )
    return WorkerPlan(
        manager=manager,
        server=fleet.server,
        user=USER,
        home=HOME,
        venv=VENV,
        wheelhouse_dest=WHEELHOUSE_DEST,
        state_dir=STATE_DIR,
        pool_dir=POOL_DIR,
        unit_dir=UNIT_DIR,
        supervisor_dir=SUPERVISOR_DIR,
        log_format=log_format,
        stop_grace=v["beanfleet_stop_grace"],
        packages=["beanfleet", *v["beanfleet_packages"]],
        metrics=metrics,
        pools=pools,
        pool_names=[p["name"] for p in present],
        instances=[i for p in present for i in instances(p)],
        directories=[Directory(d) for d in directories],
        files=[replace(f, endpoint=f.path in endpoint_files) for f in files],
        links=links,
    )


def metrics_endpoint(fleet: Fleet) -> MetricsEndpoint:
    """The worker hosts' metrics endpoint (``beanfleet metrics-endpoint``): one per host,
    serving the sum of its worker processes' metrics."""
    m = fleet.monitoring
    port = int(m["worker_port"])
    command = (
        f"{VENV}/bin/beanfleet metrics-endpoint --dir {METRICS_DIR} "
        f"--listen {listen('0.0.0.0', port)}"  # noqa: S104 - the firewall limits who connects
    )
    return MetricsEndpoint(
        enabled=bool(m["enabled"]),
        dir=METRICS_DIR,
        port=port,
        unit="beanfleet-metrics.service",
        program="beanfleet-metrics",
        command=command,
        # supervisor has no ExecStartPre=: the program loads the table as root, then drops
        # to the workers' user (fails closed like the systemd unit: no table, no endpoint).
        supervisor_command=f"/bin/sh -c '{NFT} -f {METRICS_NFT_FILE} && exec "
        f"{SETPRIV} --reuid={USER} --regid={USER} --init-groups {command}'",
        scrape=ScrapeAccess.of(m),
        nft=NFT,
        nft_file=METRICS_NFT_FILE,
        nft_table=METRICS_NFT_TABLE,
    )
