"""Figure 2: bulk put of N small JSON jobs.

``Producer.put_many`` (pipelined, batches per write) next to a greenstalk ``put`` loop (one
round trip per job), both in this process, both JSON-encoding the same dicts, each run into
a fresh beanstalkd (binlog on).  Variants alternate within each round; the median is shown.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import greenstalk
from bench_common import (
    Beanstalkd,
    CpuWindow,
    Figure,
    Row,
    control,
    median,
    server,
    server_pid,
    tube_stats,
)
from bench_ctx import Ctx


def items(n: int) -> list[dict[str, Any]]:
    return [{"n": i, "to": "user@example.com", "template": "welcome"} for i in range(n)]


def greenstalk_loop(srv: Beanstalkd, tube: str, data: list[dict[str, Any]]) -> None:
    client = greenstalk.Client(srv.pair, use=tube)
    try:
        for item in data:
            client.put(json.dumps(item))
    finally:
        client.close()


def put_many(srv: Beanstalkd, tube: str, data: list[dict[str, Any]]) -> None:
    from beanfleet import Producer

    with Producer(srv.address) as producer:
        producer.put_many(tube, data)


NOISY = 25.0  # % of one core used by other processes during a run: repeat it


def one_run(
    ctx: Ctx,
    fn: Callable[[Beanstalkd, str, list[dict[str, Any]]], None],
    tube: str,
    n: int,
) -> dict[str, float]:
    """One bulk put into a fresh server (so no run pays for an earlier one's jobs)."""
    with server(ctx.tmp) as srv:
        ctl = control(srv, tube)
        data = items(n)  # built outside the clock; encoding is inside it
        ctx.settle()
        window = CpuWindow({"client": [os.getpid()], "server": [server_pid(srv)]})
        t0 = time.perf_counter()
        fn(srv, tube, data)
        elapsed = time.perf_counter() - t0
        cpu = window.stop()
        stats = tube_stats(ctl, tube)
        ctl.close()
    if stats.get("current-jobs-ready") != n:
        raise RuntimeError(f"{tube}: {stats.get('current-jobs-ready')} of {n} put")
    return {"rate": n / elapsed, **cpu}


def run(ctx: Ctx) -> Figure:
    fig = Figure(2, f"Bulk put of {ctx.size.bulk_jobs:,} small JSON jobs")
    variants: dict[str, Callable[[Beanstalkd, str, list[dict[str, Any]]], None]] = {
        "greenstalk": greenstalk_loop,
    }
    if ctx.have_producer:
        variants = {"put_many": put_many, **variants}
    else:
        fig.notes.append(f"`put_many` not measured: {ctx.producer_missing}")
    n = ctx.size.bulk_jobs
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in variants}
    for r in range(ctx.size.bulk_rounds):
        names = list(variants)
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            tries = [one_run(ctx, variants[name], f"f2-{name}", n)]
            while tries[-1]["others"] > NOISY and ctx.may_repeat():
                tries.append(one_run(ctx, variants[name], f"f2-{name}", n))
            runs[name].append(min(tries, key=lambda x: x["others"]))
    rows = {}
    for name in variants:
        rate = median([x["rate"] for x in runs[name]])
        mid = min(runs[name], key=lambda x: abs(x["rate"] - rate))
        rows[name] = (rate, mid)
    base = rows["greenstalk"][0]

    def extra(mid: dict[str, float]) -> dict[str, float]:
        return {
            "client CPU %": mid["client"],
            "beanstalkd CPU %": mid["server"],
            "µs CPU/job (client)": 1e4 * mid["client"] / mid["rate"],
            "µs CPU/job (server)": 1e4 * mid["server"] / mid["rate"],
            "other processes CPU %": mid["others"],
        }

    if "put_many" in rows:
        rate, mid = rows["put_many"]
        fig.add(
            Row(
                "Producer.put_many (pipelined, 1000 puts per write)",
                rate,
                "jobs/s",
                ratio=rate / base,
                ratio_to="greenstalk put loop",
                goal="≥ 5× greenstalk",
                extra=extra(mid),
            )
        )
        c = mid["client"]
        s = mid["server"]
        fig.notes.append(
            f"put_many keeps both ends busy at once (client {c:.0f} %, beanstalkd {s:.0f} % of "
            "a core): the limit is CPU, the client's JSON encoding and command building plus "
            "beanstalkd's parsing and binlog writes, not round trips."
        )
        # beanstalkd is one thread: its CPU per put caps every client, however it batches.
        # (A tiny run can see no clock tick of beanstalkd's CPU at all: no ceiling then.)
        server_us = 1e4 * s / rate
        ceiling = 1e6 / server_us if server_us else float("inf")
        limit = (
            "below the 5× goal: with the binlog on, beanstalkd itself is the wall here"
            if ceiling / base < 5
            else (
                "room for the 5× goal; what is left is the client's CPU per put (every body "
                "is encoded before the first send, so a bad item enqueues nothing; then "
                "commands are built and replies parsed) and the wake-ups between the two"
            )
        )
        fig.notes.append(
            f"beanstalkd spends {server_us:.1f} µs of CPU per put here (reading the command, "
            f"storing the job, one binlog write), so no client can put more than about "
            f"{ceiling:,.0f} jobs/s into it: {ceiling / base:.1f}× the greenstalk loop, "
            f"{limit}. put_many reaches {rate / ceiling:.0%} of that ceiling."
        )
    fig.add(
        Row(
            "greenstalk put loop (json.dumps + put per job)",
            base,
            "jobs/s",
            extra=extra(rows["greenstalk"][1]),
        )
    )
    g = rows["greenstalk"][1]
    fig.notes.append(
        f"The greenstalk loop is one round trip per job: client ({g['client']:.0f} %) and "
        f"beanstalkd ({g['server']:.0f} %) take turns, neither core is full; its limit is "
        "the latency of a loopback round trip (two wake-ups) plus greenstalk's per-call cost."
    )
    fig.notes.append(
        f"{ctx.size.bulk_rounds} round(s), median shown; binlog on (-f 50 default); "
        "each run into a fresh beanstalkd; bodies are encoded inside the clock."
    )
    return fig
