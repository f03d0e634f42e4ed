"""Figure 7: resident memory (VmRSS from /proc/PID/status) of one worker process.

Idle: started on an empty tube and blocked in reserve for half a second.  Then N jobs in
equal steps (no-op handler); after each step drains the RSS is read again.  Growth is the
last reading minus the first step's: a leak per job shows as steady growth across steps.
The plain greenstalk loop is measured the same way for scale.
"""

from __future__ import annotations

import time

from bench_common import (
    Beanstalkd,
    Figure,
    Row,
    drained,
    preload,
    rss_kib,
    server,
    wait_for,
    workers_running,
)
from bench_ctx import Ctx


def measure(ctx: Ctx, srv: Beanstalkd, kind: str) -> list[tuple[int, float]]:
    """[(jobs done, RSS MiB)], starting with (0, idle RSS)."""
    tube = f"f7-{kind}"
    steps = ctx.size.memory_steps
    per_step = ctx.size.memory_jobs // steps
    out = []
    with workers_running(srv, kind, tube, 1, ctx.log_dir) as (ctl, procs):
        time.sleep(0.5)
        pid = procs[0].pid
        out.append((0, rss_kib(pid) / 1024))
        for step in range(1, steps + 1):
            preload(srv, tube, per_step)
            wait_for(ctl, tube, drained(step * per_step), timeout=600, procs=procs)
            wait_for(ctl, tube, "current-waiting==1", timeout=60, procs=procs)
            out.append((step * per_step, rss_kib(pid) / 1024))
    return out


def run(ctx: Ctx) -> Figure:
    fig = Figure(7, "Worker memory: VmRSS idle and after N jobs")
    kinds = ["greenstalk"]
    if ctx.have_beanfleet:
        kinds.insert(0, "beanfleet")
    else:
        fig.notes.append(f"`beanfleet work` missing ({ctx.beanfleet_missing}).")
    with server(ctx.tmp) as srv:
        for kind in kinds:
            series = measure(ctx, srv, kind)
            name = "beanfleet work" if kind == "beanfleet" else "greenstalk loop"
            fig.plot[name] = [(float(jobs), rss) for jobs, rss in series]
            idle = series[0][1]
            first, last = series[1], series[-1]
            fig.add(Row(f"{name}: RSS idle", idle, "MiB"))
            fig.add(
                Row(
                    f"{name}: RSS after {last[0]:,} jobs",
                    last[1],
                    "MiB",
                    extra={f"after {jobs:,}": rss for jobs, rss in series[1:]},
                )
            )
            growth = last[1] - first[1]
            fig.add(
                Row(
                    f"{name}: growth from {first[0]:,} to {last[0]:,} jobs",
                    growth,
                    "MiB",
                    extra={"KiB per 10k jobs": 1024 * growth / max(1, (last[0] - first[0]) / 1e4)},
                )
            )
    rows = {r.label: r.value for r in fig.rows}
    if ctx.have_beanfleet:
        notes = (
            f"beanfleet work idles at {rows['beanfleet work: RSS idle']:.1f} MiB vs "
            f"{rows['greenstalk loop: RSS idle']:.1f} MiB for the bare greenstalk loop: the "
            "difference is code loaded once: `beanfleet.cli` imports every command "
            "family (click, the exporter's prometheus_client and http.server, the "
            "producer, admin), not per-job state."
        )
        growth = next(v for k, v in rows.items() if k.startswith("beanfleet work: growth"))
        notes += f" From the first step to the last it grew {growth:.2f} MiB" + (
            ": no growth worth the name, nothing is kept per job."
            if growth < 1
            else ": it keeps something per job, worth a look."
        )
        fig.notes.append(notes)
    fig.notes.append(
        f"{ctx.size.memory_jobs:,} jobs in {ctx.size.memory_steps} steps; RSS read after "
        "each step has drained and the worker is back in reserve."
    )
    return fig
