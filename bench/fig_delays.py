"""Figure 6: how late delayed jobs start relative to their due time.

Two runs of N jobs each, put at an even pace over a few seconds so due times are spread,
with 2 workers running ``bench_handlers:record`` (handler start − due time):

* ``put(delay=k)``, k a whole number of seconds (1..3): due = time of the put + k.  This is
  beanstalkd's own timer precision plus the worker's pick-up time.
* ``Producer.schedule_at(when)``, ``when`` = now + a fractional 1.0-3.0 s: the API a user
  calls with a wall-clock time.  beanstalkd delays are whole seconds, so the producer must
  round; the lateness shows which way and by how much.
"""

from __future__ import annotations

import random
import time
from typing import Any

from bench_common import (
    Beanstalkd,
    Figure,
    Row,
    drained,
    percentile,
    record_dir,
    server,
    take_records,
    wait_for,
    workers_running,
)
from bench_ctx import Ctx

WORKERS = 2


def one_run(ctx: Ctx, srv: Beanstalkd, ctl: Any, tube: str, mode: str, done: int) -> int:
    """Put the delayed jobs of one mode on running workers; wait until all ran."""
    n = ctx.size.delay_jobs
    spread = ctx.size.delay_spread
    rng = random.Random(6)
    max_delay = 3 if ctx.size.name == "full" else 1
    put = make_put(ctx, srv, ctl, mode)
    start = time.perf_counter()
    for i in range(n):
        target = start + spread * i / n
        if (pause := target - time.perf_counter()) > 0:
            time.sleep(pause)
        if mode == "delay":
            k = rng.randint(1, max_delay)
            put(tube, {"t": time.time() + k, "n": i}, k)
        else:
            when = time.time() + rng.uniform(1.0, float(max_delay))
            put(tube, {"t": when, "n": i}, when)
    wait_for(ctl, tube, drained(done + n), timeout=max_delay + spread + 60)
    return done + n


def make_put(ctx: Ctx, srv: Beanstalkd, ctl: Any, mode: str) -> Any:
    if ctx.have_producer:
        from beanfleet import Producer

        producer = Producer(srv.address)
        if mode == "delay":
            return lambda tube, data, k: producer.put(tube, data, delay=k)
        return producer.schedule_at

    import json

    def put(tube: str, data: Any, k: float) -> None:
        ctl.use(tube)
        ctl.put(
            json.dumps(data).encode(),
            delay=int(k if mode == "delay" else k - time.time()),
        )

    return put


def run(ctx: Ctx) -> Figure:
    kind = "beanfleet" if ctx.have_beanfleet else "pipelined"
    fig = Figure(6, f"Delayed jobs: start − due time, {WORKERS} `{kind}` workers")
    if not ctx.have_beanfleet:
        fig.notes.append(f"`beanfleet work` missing ({ctx.beanfleet_missing}); bare-socket loop.")
    modes = [("delay", "put(delay=k s)")]
    if ctx.have_producer:
        modes.append(("schedule_at", "schedule_at(t)"))
    else:
        fig.notes.append(f"schedule_at not measured: {ctx.producer_missing}")
    tube = "f6"
    with (
        server(ctx.tmp) as srv,
        record_dir(ctx.tmp) as rec_dir,
        workers_running(srv, kind, tube, WORKERS, ctx.log_dir, record_to=rec_dir) as (ctl, _),
    ):
        done = 0
        for mode, label in modes:
            ctx.settle()
            done = one_run(ctx, srv, ctl, tube, mode, done)
            late = [1000 * (start - due) for start, due in take_records(rec_dir)]
            fig.add(
                Row(
                    f"{label}: lateness p50",
                    percentile(late, 50),
                    "ms",
                    extra={"min ms": min(late), "jobs": len(late)},
                )
            )
            fig.add(Row(f"{label}: lateness p99", percentile(late, 99), "ms"))
            fig.add(Row(f"{label}: lateness max", max(late), "ms"))
    fig.notes += explain(fig.rows)
    fig.notes.append(
        f"{ctx.size.delay_jobs:,} jobs per mode put over {ctx.size.delay_spread:g} s; "
        "negative lateness would mean a job started early."
    )
    return fig


def explain(rows: list[Row]) -> list[str]:
    values = {r.label: r.value for r in rows}
    notes = [
        (
            f"put(delay=k): p50 {values['put(delay=k s): lateness p50']:.2f} ms, p99 "
            f"{values['put(delay=k s): lateness p99']:.2f} ms late. beanstalkd keeps delayed "
            "jobs in a heap and sets its epoll timeout to the next due time (millisecond "
            "resolution), then hands the job to a worker waiting in reserve: the limit is "
            "that timer plus one wake-up. Whole seconds are beanstalkd's unit for delays."
        )
    ]
    p50 = values.get("schedule_at(t): lateness p50")
    if p50 is not None:
        if p50 > 100:
            notes.append(
                f"schedule_at(t): p50 {p50:.0f} ms late, up to "
                f"{values['schedule_at(t): lateness max']:.0f} ms. beanstalkd takes whole "
                "seconds only; beanfleet rounds the delay up (math.ceil), so a job never "
                "starts early but starts up to 1 s late (≈ 0.5 s on average for arbitrary "
                "times). That rounding, not beanstalkd, is the limit."
            )
        else:
            notes.append(
                f"schedule_at(t): p50 {p50:.2f} ms late. (This size uses due times a whole "
                "number of seconds ahead, so the rounding to beanstalkd's whole seconds "
                "does not show; `--size full` uses fractional times.)"
            )
    return notes
