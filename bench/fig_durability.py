"""Figure 5: the cost of durability: one put+work workload under three binlog settings.

Workload: 2 worker processes blocked in reserve; then this process puts N jobs with
``put_many`` (100 per call) while they work; the clock runs from the first put to
stats-tube ``cmd-delete`` = N.  Every put and every delete is one binlog record.

* binlog off: no ``-b``; a restart loses every job.
* ``-f 50`` (beanstalkd's default with ``-b``): fsync at most every 50 ms; a power cut
  loses up to the last 50 ms.
* ``-f 0``: fsync after every binlog write.
"""

from __future__ import annotations

from functools import partial

from bench_common import Figure, Row, server, timed_drain, workers_running
from bench_ctx import Ctx
from fig_latency import Putter, make_putter

WORKERS = 2
MODES = (
    ("binlog off", False, None),
    ("binlog, fsync every 50 ms (-f 50)", True, 50),
    ("binlog, fsync every write (-f 0)", True, 0),
)


def put_all(put: Putter, tube: str, n: int) -> None:
    """Put ``n`` jobs, 100 per call."""
    for start in range(0, n, 100):
        put(tube, [{"n": i} for i in range(start, min(n, start + 100))])


def run(ctx: Ctx) -> Figure:
    kind = "beanfleet" if ctx.have_beanfleet else "greenstalk"
    fig = Figure(5, f"Durability cost: put+work, {WORKERS} `{kind}` workers")
    if not ctx.have_beanfleet:
        fig.notes.append(f"`beanfleet work` missing ({ctx.beanfleet_missing}); greenstalk loop.")
    results = {}
    for label, binlog, fsync in MODES:
        n = ctx.size.durability_f0_jobs if fsync == 0 else ctx.size.durability_jobs
        tube = "f5"
        with (
            server(ctx.tmp, binlog=binlog, fsync_ms=fsync) as srv,
            workers_running(srv, kind, tube, WORKERS, ctx.log_dir) as (ctl, procs),
        ):
            put, close = make_putter(ctx, srv)
            try:
                cpu = timed_drain(
                    ctl, srv, tube, procs, n, ctx.settle, partial(put_all, put, tube, n)
                )
            finally:
                close()
        results[label] = (cpu["rate"], cpu, n)
    base = results[MODES[0][0]][0]
    for label, _, _ in MODES:
        rate, cpu, n = results[label]
        fig.add(
            Row(
                label,
                rate,
                "jobs/s",
                ratio=None if label == MODES[0][0] else rate / base,
                ratio_to="binlog off",
                extra={
                    "beanstalkd CPU %": cpu["server"],
                    "workers CPU %": cpu["workers"],
                    "other processes CPU %": cpu["others"],
                    "jobs": n,
                },
            )
        )
    off, f50, f0 = (results[m[0]] for m in MODES)
    fig.notes.append(
        f"binlog off vs -f 50: {off[0]:,.0f} vs {f50[0]:,.0f} jobs/s "
        f"({f50[0] / off[0]:.2f}×). With -f 50 every put and every delete is also a "
        "write() to the binlog file (fsync at most every 50 ms, off the request path), "
        f"so beanstalkd does more per job; it used {off[1]['server']:.0f} % vs "
        f"{f50[1]['server']:.0f} % of a core. Either way the limit is CPU shared by the "
        "producer, 2 workers and beanstalkd on 2 cores (other processes took "
        f"{off[1]['others']:.0f} % / {f50[1]['others']:.0f} %)."
    )
    fig.notes.append(
        f"-f 0: {f0[0]:,.0f} jobs/s, {1e3 / f0[0]:.2f} ms per job. beanstalkd fsyncs the "
        "binlog after each write and serves nothing else meanwhile (one thread), so the "
        "disk's fsync latency (a put and a delete per job) is the limit: beanstalkd used "
        f"only {f0[1]['server']:.0f} % of a core, the workers {f0[1]['workers']:.0f} %; "
        "they wait on the disk."
    )
    fig.notes.append(
        f"{ctx.size.durability_jobs:,} jobs per mode ({ctx.size.durability_f0_jobs:,} with "
        "-f 0, which is slower); binlog in a temp dir on the machine's disk."
    )
    return fig
