"""Figure 4: jobs/s with 1, 2, 4 and 8 worker processes (no-op handler) on this machine.

Per worker count: N jobs preloaded into a paused tube, the workers started and blocked in
their first reserve, then the tube unpaused; the clock stops when stats-tube ``cmd-delete``
reaches N.  CPU time of beanstalkd and of every worker (utime+stime from /proc/PID/stat)
over the same window says what the limit is: one core is 100 %, the machine has
``os.cpu_count()`` × 100 %.
"""

from __future__ import annotations

import itertools
import os
import time

from bench_common import (
    Beanstalkd,
    CpuWindow,
    Figure,
    Row,
    control,
    drained,
    pause,
    preload,
    server,
    server_pid,
    start_workers,
    stop_workers,
    unpause,
    wait_for,
)
from bench_ctx import Ctx

COUNTS = (1, 2, 4, 8)


def drain_run(
    ctx: Ctx, srv: Beanstalkd, kind: str, tube: str, workers: int, n: int
) -> dict[str, float]:
    """Time ``workers`` processes of ``kind`` draining ``n`` preloaded jobs."""
    ctl = control(srv, tube)
    procs = []
    try:
        preload(srv, tube, n)
        pause(ctl, tube)
        procs = start_workers(kind, srv, tube, workers, log_dir=ctx.log_dir)
        wait_for(ctl, tube, f"current-waiting=={workers}", timeout=60, procs=procs)
        window = CpuWindow(
            {"workers": [p.pid for p in procs], "server": [server_pid(srv)]}
        )
        t0 = time.perf_counter()
        unpause(ctl, tube)
        wait_for(ctl, tube, drained(n), timeout=600, procs=procs)
        elapsed = time.perf_counter() - t0
        cpu = window.stop()
    finally:
        stop_workers(procs)
        ctl.close()
    return {
        "rate": n / elapsed,
        "server_cpu": cpu["server"],
        "worker_cpu": cpu["workers"],
        "others": cpu["others"],
    }


def knee(rates: dict[int, float]) -> int:
    """The last worker count whose doubling still bought ≥ 15 % more throughput."""
    counts = sorted(rates)
    best = counts[0]
    for a, b in itertools.pairwise(counts):
        if rates[b] >= 1.15 * rates[a]:
            best = b
        else:
            break
    return best


def run(ctx: Ctx) -> Figure:
    kind = "beanfleet" if ctx.have_beanfleet else "greenstalk"
    fig = Figure(4, f"Scaling: jobs/s with 1-8 `{kind}` worker processes")
    if not ctx.have_beanfleet:
        fig.notes.append(
            f"`beanfleet work` missing ({ctx.beanfleet_missing}); the greenstalk loop stands in."
        )
    n = ctx.size.scaling_jobs
    results: dict[int, dict[str, float]] = {}
    with server(ctx.tmp) as srv:
        for count in COUNTS:
            results[count] = drain_run(ctx, srv, kind, f"f4-{count}", count, n)
    one = results[1]["rate"]
    cores = os.cpu_count() or 1
    for count in COUNTS:
        r = results[count]
        fig.add(
            Row(
                f"{count} worker process{'es' if count > 1 else ''}",
                r["rate"],
                "jobs/s",
                ratio=None if count == 1 else r["rate"] / one,
                ratio_to="1 worker",
                extra={
                    "beanstalkd CPU %": r["server_cpu"],
                    "workers CPU %": r["worker_cpu"],
                    "total CPU %": r["server_cpu"] + r["worker_cpu"],
                    "µs CPU/job (server)": 1e4 * r["server_cpu"] / r["rate"],
                    "µs CPU/job (workers)": 1e4 * r["worker_cpu"] / r["rate"],
                    "other processes CPU %": r["others"],
                },
            )
        )
    k = knee({c: results[c]["rate"] for c in COUNTS})
    at = results[k]
    one_r = results[1]
    fig.notes.append(
        f"Knee at {k} worker process(es): past it doubling the workers adds < 15 %. "
        f"With 1 worker the job is a ping-pong: beanstalkd ({one_r['server_cpu']:.0f} % of "
        f"a core) and the worker ({one_r['worker_cpu']:.0f} %) mostly wait for each other's "
        f"round trip, so neither core is full. At {k}, beanstalkd uses "
        f"{at['server_cpu']:.0f} % and the workers {at['worker_cpu']:.0f} %: "
        f"{at['server_cpu'] + at['worker_cpu']:.0f} % of the {cores * 100} % this "
        f"{cores}-core machine has, so more processes only share the same cores "
        "(client CPU and server CPU compete; beanstalkd itself is single-threaded)."
    )
    fig.notes.append(f"{n:,} jobs per worker count, binlog on (-f 50), one run each.")
    return fig
