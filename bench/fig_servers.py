"""Figure 8: one vs two beanstalkd servers, same run.

Every run starts the same process tree: two beanstalkd processes (binlog on), this process
as the producer, two ``beanfleet work`` processes; only the server list given to the
producer and the workers differs (``a`` or ``a,b``).  Measured, each as a ratio of two
servers to one:

- ``Producer.put_many`` of N small JSON jobs (one server: the one-server pipelined path;
  two: split in halves, each pipelined on its server's link);
- ``Producer.put``, one round trip per job (round-robin over the servers);
- two worker processes draining N preloaded jobs (all on ``a``, or half on each server),
  from unpausing the tube(s) until the servers' ``cmd-delete`` add up to N.

Variants alternate within each round; the median is shown.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import greenstalk
from bench_common import (
    Beanstalkd,
    CpuWindow,
    Figure,
    Row,
    beanfleet_exe,
    control,
    env_for_workers,
    median,
    pause,
    preload,
    server,
    server_pid,
    stop_workers,
    tube_stats,
    unpause,
)
from bench_ctx import Ctx
from fig_bulkput import items

WORKERS = 2
SHAPES = ("one", "two")


@contextlib.contextmanager
def two_servers(ctx: Ctx) -> Iterator[tuple[Beanstalkd, Beanstalkd]]:
    """Two fresh servers, in both variants: the process tree stays the same."""
    with server(ctx.tmp) as a, server(ctx.tmp) as b:
        yield a, b


def used(pair: tuple[Beanstalkd, Beanstalkd], shape: str) -> list[Beanstalkd]:
    return list(pair[:1] if shape == "one" else pair)


def _counts(servers: list[Beanstalkd], tube: str, key: str) -> int:
    total = 0
    for srv in servers:
        with contextlib.closing(control(srv)) as ctl:
            total += tube_stats(ctl, tube).get(key, 0)
    return total


def _wait(condition: Callable[[], bool], timeout: float, what: str, procs: list[Any]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"worker {p.args!r} exited with {p.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached in {timeout}s")
        time.sleep(0.002)


def put_run(ctx: Ctx, shape: str, bulk: bool, n: int) -> dict[str, float]:
    from beanfleet import Producer

    tube = f"f8-{'many' if bulk else 'put'}-{shape}"
    data = items(n)  # built outside the clock; encoding is inside it
    with two_servers(ctx) as pair:
        servers = used(pair, shape)
        ctx.settle()
        window = CpuWindow({"client": [os.getpid()], "servers": [server_pid(s) for s in pair]})
        t0 = time.perf_counter()
        with Producer(servers=[s.address for s in servers]) as producer:
            if bulk:
                producer.put_many(tube, data)
            else:
                for item in data:
                    producer.put(tube, item)
        elapsed = time.perf_counter() - t0
        cpu = window.stop()
        ready = _counts(servers, tube, "current-jobs-ready")
    if ready != n:
        raise RuntimeError(f"{tube}: {ready} of {n} put")
    return {"rate": n / elapsed, **cpu}


def work_run(ctx: Ctx, shape: str, n: int) -> dict[str, float]:
    tube = f"f8-work-{shape}"
    with two_servers(ctx) as pair:
        servers = used(pair, shape)
        controls = [control(s, tube) for s in servers]
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for i, (srv, ctl) in enumerate(zip(servers, controls, strict=True)):
                preload(srv, tube, n // len(servers) + (i < n % len(servers)))
                pause(ctl, tube)
            argv = [
                *beanfleet_exe(),
                "work",
                "--server",
                ",".join(s.address for s in servers),
                "--tube",
                f"{tube}=bench_handlers:noop",
            ]
            for i in range(WORKERS):
                with open(ctx.log_dir / f"f8-{shape}-{i}.log", "wb") as log:
                    procs.append(
                        subprocess.Popen(
                            argv,
                            env=env_for_workers(),
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL,
                        )
                    )
            # Every worker watches the tube on every server it was given (one connection
            # each; the control connection only uses it).
            _wait(
                lambda: all(
                    tube_stats(c, tube).get("current-watching", 0) >= WORKERS for c in controls
                ),
                60,
                "workers watching",
                procs,
            )
            ctx.settle()
            window = CpuWindow(
                {"workers": [p.pid for p in procs], "servers": [server_pid(s) for s in pair]}
            )
            t0 = time.perf_counter()
            for ctl in controls:
                unpause(ctl, tube)
            _wait(
                lambda: sum(tube_stats(c, tube).get("cmd-delete", 0) for c in controls) >= n,
                600,
                f"{n} jobs done",
                procs,
            )
            elapsed = time.perf_counter() - t0
            cpu = window.stop()
        finally:
            stop_workers(procs)
            for ctl in controls:
                with contextlib.suppress(OSError, greenstalk.Error):
                    ctl.close()
    return {"rate": n / elapsed, **cpu}


def run(ctx: Ctx) -> Figure:
    fig = Figure(8, "One vs two beanstalkd servers, same run")
    n = ctx.size.servers_jobs
    kinds: dict[str, Callable[[str], dict[str, float]]] = {}
    if ctx.have_producer:
        kinds["put_many"] = lambda shape: put_run(ctx, shape, True, n)
        kinds["put"] = lambda shape: put_run(ctx, shape, False, n)
    else:
        fig.notes.append(f"puts not measured: {ctx.producer_missing}")
    if ctx.have_beanfleet:
        kinds["work"] = lambda shape: work_run(ctx, shape, n)
    else:
        fig.notes.append(f"workers not measured: {ctx.beanfleet_missing}")
    runs: dict[tuple[str, str], list[dict[str, float]]] = {
        (k, s): [] for k in kinds for s in SHAPES
    }
    for r in range(ctx.size.servers_rounds):
        shapes = SHAPES if r % 2 == 0 else tuple(reversed(SHAPES))
        for kind, measure in kinds.items():
            for shape in shapes:
                runs[kind, shape].append(measure(shape))
    mids: dict[tuple[str, str], dict[str, float]] = {}
    for key, values in runs.items():
        rate = median([x["rate"] for x in values])
        mids[key] = min(values, key=lambda x: abs(x["rate"] - rate))
    labels = {
        "put_many": "Producer.put_many",
        "put": "Producer.put (one round trip per job)",
        "work": f"{WORKERS} beanfleet work processes",
    }
    client = {"put_many": "client", "put": "client", "work": "workers"}
    for kind in kinds:
        one, two = mids[kind, "one"], mids[kind, "two"]
        for shape, mid in (("one", one), ("two", two)):
            fig.add(
                Row(
                    f"{labels[kind]}, {shape} server{'s' if shape == 'two' else ''}",
                    mid["rate"],
                    "jobs/s",
                    ratio=mid["rate"] / one["rate"] if shape == "two" else None,
                    ratio_to=f"{labels[kind]}, one server",
                    extra={
                        f"{client[kind]} CPU %": mid[client[kind]],
                        "beanstalkd CPU % (both)": mid["servers"],
                        "other processes CPU %": mid["others"],
                    },
                )
            )
        fig.notes.append(
            f"{labels[kind]}: two servers {two['rate'] / one['rate']:.2f}× one; "
            f"{client[kind]} {one[client[kind]]:.0f} → {two[client[kind]]:.0f} % of a core, "
            f"beanstalkd (both) {one['servers']:.0f} → {two['servers']:.0f} %."
        )
    cores = os.cpu_count() or 1
    fig.notes.append(
        f"What {cores} cores allow: the producer (one Python thread), both beanstalkd "
        "processes and the worker processes share them, so a second server adds no CPU. "
        "beanstalkd is one thread; a second one pays only where one server's core is the "
        "wall (near 100 % above). Below that the client is the limit, and the ratio "
        "measures the client's cost of several servers (placement, a link per server, "
        "worker turns across servers), not server capacity. On separate hosts, put "
        "capacity grows with the servers until the producers' CPU is the limit."
    )
    fig.notes.append(
        f"{n:,} jobs per run, {ctx.size.servers_rounds} round(s) (one/two alternating), "
        "median shown; two fresh beanstalkd (binlog on, -f 50 default) in every run, "
        "the second idle in the one-server runs."
    )
    return fig
