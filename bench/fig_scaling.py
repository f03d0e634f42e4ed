"""Figure 4: jobs/s with 1, 2, 4 and 8 worker processes (no-op handler) on this machine.

Per worker count: N jobs preloaded into a paused tube, the workers started and blocked in
their first reserve, then the tube unpaused; the clock stops when stats-tube ``cmd-delete``
reaches N.  CPU time of beanstalkd and of every worker (utime+stime from /proc/PID/stat)
over the same window says what the limit is: one core is 100 %, the machine has
``os.cpu_count()`` × 100 %.
"""

from __future__ import annotations

import os

from bench_common import (
    Beanstalkd,
    Figure,
    Row,
    median,
    server,
    timed_drain,
    workers_running,
)
from bench_ctx import Ctx

COUNTS = (1, 2, 4, 8)


def drain_run(
    ctx: Ctx, srv: Beanstalkd, kind: str, tube: str, workers: int, n: int
) -> dict[str, float]:
    """Time ``workers`` processes of ``kind`` draining ``n`` preloaded jobs."""
    with workers_running(srv, kind, tube, workers, ctx.log_dir, paused_jobs=n) as (ctl, procs):
        cpu = timed_drain(ctl, srv, tube, procs, n, ctx.settle)
    return {
        "rate": cpu["rate"],
        "server_cpu": cpu["server"],
        "worker_cpu": cpu["workers"],
        "others": cpu["others"],
    }


def knee(rates: dict[int, float]) -> int:
    """The fewest workers that reach 90 % of the best jobs/s measured: past it, more
    processes buy little (robust to one noisy run, unlike comparing neighbours)."""
    best = max(rates.values())
    return min(c for c, r in rates.items() if r >= 0.9 * best)


def run(ctx: Ctx) -> Figure:
    kind = "beanfleet" if ctx.have_beanfleet else "greenstalk"
    fig = Figure(4, f"Scaling: jobs/s with 1-8 `{kind}` worker processes")
    if not ctx.have_beanfleet:
        fig.notes.append(
            f"`beanfleet work` missing ({ctx.beanfleet_missing}); the greenstalk loop stands in."
        )
    n = ctx.size.scaling_jobs
    rounds = ctx.size.scaling_rounds
    runs: dict[int, list[dict[str, float]]] = {c: [] for c in COUNTS}
    with server(ctx.tmp) as srv:
        for r in range(rounds):
            order = COUNTS if r % 2 == 0 else tuple(reversed(COUNTS))
            for count in order:
                runs[count].append(drain_run(ctx, srv, kind, f"f4-{count}-{r}", count, n))
    results: dict[int, dict[str, float]] = {}
    for count in COUNTS:
        rate = median([x["rate"] for x in runs[count]])
        results[count] = min(runs[count], key=lambda x: abs(x["rate"] - rate))
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
    fig.notes += explain(results, cores)
    fig.notes.append(
        f"{n:,} jobs per run, {rounds} round(s) (worker counts interleaved), median shown; "
        "binlog on (-f 50). 'other processes' is CPU that other jobs on this machine used "
        "during the window: it is taken from the same cores."
    )
    return fig


def explain(results: dict[int, dict[str, float]], cores: int) -> list[str]:
    """Where the knee is and why, from the CPU readings."""
    k = knee({c: r["rate"] for c, r in results.items()})
    one, at = results[1], results[k]
    cap = 100 * cores
    total = at["server_cpu"] + at["worker_cpu"]
    notes = [
        (
            f"1 worker: a ping-pong. beanstalkd used {one['server_cpu']:.0f} % and the worker "
            f"{one['worker_cpu']:.0f} % of a core; each waits for the other's reply, so the "
            "limit is the round trip (CPU on both sides plus wake-ups), not either core."
        )
    ]
    if k == 1:
        notes.append(
            "Knee at 1 worker: no larger count was more than 11 % faster than 1 worker, so "
            "more workers did not pay here: the cores, not the round trip, were the limit "
            "(see below)."
        )
    else:
        notes.append(
            f"Knee at {k} workers: the fewest that reach 90 % of the best jobs/s measured. "
            f"{k} connections keep {k} requests in flight, so beanstalkd and the workers "
            "overlap instead of taking turns; past that, more processes only share cores."
        )
    busy = total + at["others"]
    ratio = at["worker_cpu"] / max(at["server_cpu"], 1e-9)
    workers = f"{k} worker{'s' if k > 1 else ''}"
    if at["server_cpu"] >= 90:
        notes.append(
            f"At {workers} beanstalkd (one thread) is at {at['server_cpu']:.0f} % of a core: "
            "the server is the limit; more workers only queue behind it."
        )
    elif busy >= 0.75 * cap:
        notes.append(
            f"At {workers} the cores are nearly full: beanstalkd {at['server_cpu']:.0f} % + "
            f"workers {at['worker_cpu']:.0f} % + other processes {at['others']:.0f} % of the "
            f"{cap} % that {cores} cores give (the rest is wake-up gaps). beanstalkd (one "
            "thread) is below a full core; the workers' Python "
            f"({ratio:.1f}× beanstalkd's CPU per job) takes most of it, so client CPU is the "
            "limit, not the server."
        )
    else:
        notes.append(
            f"At {workers} beanstalkd used {at['server_cpu']:.0f} %, the workers "
            f"{at['worker_cpu']:.0f} %, other processes {at['others']:.0f} % of {cap} %: "
            "not CPU-bound, so wake-up latency (round trips) is what stops further gains."
        )
    last = max(results)
    if last > k:
        per_k = 1e4 * at["worker_cpu"] / at["rate"]
        per_last = 1e4 * results[last]["worker_cpu"] / results[last]["rate"]
        notes.append(
            f"Past the knee the workers' CPU per job rises from {per_k:.0f} µs ({workers}) to "
            f"{per_last:.0f} µs ({last} workers): more processes than cores means context "
            "switches and cold caches, so jobs/s stays flat or falls."
        )
    return notes
