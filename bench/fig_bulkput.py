"""Figure 2: bulk put of N small JSON jobs.

``Producer.put_many`` (pipelined, batches per write) next to a greenstalk ``put`` loop (one
round trip per job), both in this process, both JSON-encoding the same dicts, each into a
fresh tube of one server.  Variants alternate within each round; the median is shown.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import greenstalk
from bench_common import Beanstalkd, Figure, Row, control, median, server, tube_stats
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
    from beanfleet.producer import Producer

    with Producer(srv.address) as producer:
        producer.put_many(tube, data)


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
    times: dict[str, list[float]] = {k: [] for k in variants}
    with server(ctx.tmp) as srv:
        for r in range(ctx.size.bulk_rounds):
            names = list(variants)
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                tube = f"f2-{name}-{r}"
                ctl = control(srv, tube)
                data = items(n)  # built outside the clock; encoding is inside it
                t0 = time.perf_counter()
                variants[name](srv, tube, data)
                times[name].append(time.perf_counter() - t0)
                stats = tube_stats(ctl, tube)
                if stats.get("current-jobs-ready") != n:
                    raise RuntimeError(
                        f"{name}: {stats.get('current-jobs-ready')} of {n} put"
                    )
                ctl.close()
    base = n / median(times["greenstalk"])
    if "put_many" in times:
        rate = n / median(times["put_many"])
        fig.add(
            Row(
                "Producer.put_many (pipelined, 1000 puts per write)",
                rate,
                "jobs/s",
                ratio=rate / base,
                ratio_to="greenstalk put loop",
                goal="≥ 5× greenstalk",
                extra={"seconds": median(times["put_many"])},
            )
        )
    fig.add(
        Row(
            "greenstalk put loop (json.dumps + put per job)",
            base,
            "jobs/s",
            extra={"seconds": median(times["greenstalk"])},
        )
    )
    fig.notes.append(
        f"{ctx.size.bulk_rounds} round(s), median shown; binlog on (-f 50 default); "
        "each variant into a fresh tube of one server."
    )
    return fig
