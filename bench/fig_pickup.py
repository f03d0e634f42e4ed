"""Figure 9: idle pickup latency, one idle worker waiting on 1, 2, 4 and 8 servers.

For each server count, that many beanstalkd (binlog off: nothing here writes much) and one
``beanfleet work --server a,b,...`` process, idle, watching the tube on all of them.  Then
jobs are put one at a time, each server as often in a shuffled order, each after a random pause
(so the put lands anywhere in the worker's cycle), each only once the previous one ran.
Latency = the handler's ``time.time()`` at start minus ``time.time()`` just before the put.

The series run side by side (every count, old code and new): the workers are idle, so they
do not compete for the cores, and the wall time is that of the slowest series instead of
the sum.  The old code waits ``reserve-with-timeout 1`` on each server in turn, so its
pickup grows with the count; the goal of issue 19 is under 50 ms whatever the count.
"""

from __future__ import annotations

import contextlib
import json
import random
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import greenstalk
from bench_common import (
    Beanstalkd,
    Figure,
    Row,
    beanfleet_exe,
    control,
    env_for_workers,
    median,
    percentile,
    stop_workers,
    tube_stats,
)
from bench_ctx import Ctx
from bench_handlers import read_records

TUBE = "f9-pickup"
GOAL_MS = 50.0


@contextlib.contextmanager
def servers(count: int) -> Iterator[list[Beanstalkd]]:
    started: list[Beanstalkd] = []
    try:
        for _ in range(count):
            srv = Beanstalkd(binlog_dir=None)
            srv.start()
            started.append(srv)
        yield started
    finally:
        for srv in started:
            srv.stop()


def series(ctx: Ctx, exe: list[str], name: str, count: int, puts: int, gap: float) -> list[float]:
    """Pickup latencies in ms of ``puts`` jobs spread over ``count`` servers."""
    rec = Path(ctx.tmp) / f"pickup-{name}-{count}"
    rec.mkdir()
    with servers(count) as srvs:
        controls = [control(s, TUBE) for s in srvs]
        argv = [*exe, "work", "--server", ",".join(s.address for s in srvs)]
        argv += ["--tube", f"{TUBE}=bench_handlers:record"]
        with open(ctx.log_dir / f"f9-{name}-{count}.log", "wb") as log:
            proc = subprocess.Popen(
                argv,
                env=env_for_workers(BENCH_RECORD_DIR=str(rec)),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            deadline = time.monotonic() + 60
            while not all(tube_stats(c, TUBE).get("current-watching", 0) >= 1 for c in controls):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} worker on {count} servers did not start")
                time.sleep(0.01)
            time.sleep(gap)  # let the worker settle into its idle cycle
            rng = random.Random(count)
            # Every server as often, in a shuffled order: a job lands on the server the
            # worker happens to wait on only by chance (1 in N), as in a fleet.
            order = [i % count for i in range(puts)]
            rng.shuffle(order)
            latencies: list[float] = []
            for i, k in enumerate(order):
                time.sleep(rng.uniform(0, gap))
                t = time.time()
                controls[k].put(json.dumps({"t": t}).encode(), ttr=60)
                deadline = time.monotonic() + 2 * count + 30
                while len(records := read_records(str(rec))) <= i:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{name} worker on {count} servers: job {i} not run")
                    time.sleep(0.001)
                start, _t = max(records)
                latencies.append(1000 * (start - t))
            return latencies
        finally:
            stop_workers([proc])
            for c in controls:
                with contextlib.suppress(OSError, greenstalk.Error):
                    c.close()


def run(ctx: Ctx) -> Figure:
    fig = Figure(9, "Idle pickup latency: one idle worker waiting on N servers")
    if not ctx.have_beanfleet:
        fig.notes.append(f"`beanfleet work` not measured: {ctx.beanfleet_missing}")
        return fig
    counts = ctx.size.pickup_counts
    puts = ctx.size.pickup_puts
    gap = ctx.size.pickup_gap
    codes: dict[str, list[str]] = {"new": beanfleet_exe()}
    if ctx.old is not None:
        codes[f"old code ({ctx.old.short})"] = ctx.old.exe
    results: dict[tuple[str, int], list[float]] = {}
    errors: list[BaseException] = []

    def one(name: str, exe: list[str], count: int) -> None:
        try:
            results[name, count] = series(ctx, exe, name.split(maxsplit=1)[0], count, puts, gap)
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    threads = [
        threading.Thread(target=one, args=(name, exe, count), daemon=True)
        for name, exe in codes.items()
        for count in counts
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    for name in codes:
        prefix = "" if name == "new" else f"{name}: "
        for count in counts:
            lat = results[name, count]
            mid = median(lat)
            fig.add(
                Row(
                    f"{prefix}idle pickup p50, {count} server{'s' if count > 1 else ''}",
                    mid,
                    "ms",
                    extra={
                        "p90 ms": percentile(lat, 90),
                        "max ms": max(lat),
                        "min ms": min(lat),
                        "puts": len(lat),
                    },
                )
            )
            fig.plot.setdefault(name, []).append((count, mid))
    for name in codes:
        p90 = {count: percentile(results[name, count], 90) for count in counts}
        worst = max(counts)
        fig.notes.insert(
            0,
            f"{name}: p90 {p90[counts[0]]:,.1f} ms with {counts[0]} server(s), "
            f"{p90[worst]:,.0f} ms with {worst} (max {max(results[name, worst]):,.0f} ms): "
            + ("**met**" if max(p90.values()) < GOAL_MS else "**missed**")
            + f" the goal of under {GOAL_MS:g} ms whatever the count.",
        )
    fig.notes.append(
        f"{puts} puts per server count, every server as often in a shuffled order, each "
        f"after a random pause of 0-{gap:g} s and only once the previous job ran; "
        "latency = handler start minus the time just before the put; every series runs at "
        "the same time (the workers are idle, so they hardly compete for the cores); goal: "
        "under "
        f"{GOAL_MS:g} ms p90 whatever the count."
    )
    if any(n != "new" for n in codes):
        fig.notes.append(
            "The old code serves its servers in turns; an idle turn is a "
            "`reserve-with-timeout 1` on one server, so a job put on another waits until the "
            "worker's turn comes round: up to about 2×(N−1) s."
        )
    return fig
