"""Figure 10: where one job's microseconds go in ``beanfleet work`` (no-op handler).

Also a script: ``python bench/jobcost.py [--jobs N] [--exe PATH/TO/beanfleet]`` prints the
tables for one install.

Three runs of the same worker on preloaded jobs, each twice (N/4 and N jobs) so that the
difference is per job and start-up (imports, connecting) drops out:

- ``strace -f -c``: the system calls per job, by name (exact counts);
- ``python -m cProfile``: the worker's Python time per job, by part (the log line, the run
  record, JSON decode, the handler call, socket I/O, the rest of the loop).  The profiler
  slows every Python call, so its µs are inflated; the table shows each part's *share* and
  that share of the worker's CPU per job measured without a profiler;
- unprofiled, timed like figure 1: the worker's CPU per job (user and kernel).

Parts are recognised by module and function names that hold for the old flat layout and
the new subpackages alike (``running.py``/``crashguard.py``, ``protocol.py``/``wire/``).
"""

from __future__ import annotations

import argparse
import contextlib
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from bench_common import (
    Figure,
    Row,
    beanfleet_exe,
    env_for_workers,
    preload,
    server,
    timed_drain,
    wait_exit,
    workers_running,
)
from bench_ctx import Ctx

TUBE = "f10-cost"

# First match wins; matched against "file:function" of each profile entry.
PARTS: list[tuple[str, str]] = [
    ("socket calls (send, recv, poll)", r"_socket\.socket|select\.poll|'poll'"),
    (
        "start-up (imports, regex compiling; differs run to run)",
        r"<frozen |marshal\.loads|re/_|sre_|importlib|builtins\.compile|posix\.stat|"
        r"posix\.listdir|_io\.open_code|site-packages/(click|greenstalk|prometheus_client)/",
    ),
    (
        "waiting (sleeps, locks, thread joins)",
        r"time\.sleep|_thread\.lock|_thread\.RLock|threading\.py:(join|wait)|select\.select",
    ),
    (
        "run record (pwrite + its bookkeeping)",
        r"posix\.pwrite|crashguard\.py|running\.py|posix\.lseek|posix\.fsync",
    ),
    ("log line (format + write)", r"logging/|joblog\.py|TextIOWrapper|strftime|localtime|gmtime"),
    ("JSON decode", r"json/|_json\.|json\.loads|decode"),
    (
        "handler call (+ timeout timer)",
        r"bench_handlers\.py|setitimer|handlers\.py|runner\.py|:_call$",
    ),
    ("worker metrics", r"metrics/|worker_metrics\.py|prometheus_client"),
    ("reply parsing, commands (wire layer)", r"wire/|protocol\.py|jobref\.py|commands\.py"),
    ("job object and its state", r"/job\.py|reserved\.py|outcome\.py|retry\.py"),
    (
        "reserve/delete exchange (loop code)",
        r":_reserve$|:_send_after_delete$|:_deleted$|source\.py|sources\.py|session\.py"
        r"|prefetch\.py",
    ),
]
REST = "the loop's other Python (stop/recycle checks, calls, the rest)"
# Wall time that is not the worker's per-job CPU (waits, start-up noise): left out of shares.
LEFT_OUT = (PARTS[0][0], PARTS[1][0], PARTS[2][0])


def part_of(key: tuple[str, int, str]) -> str:
    text = f"{key[0]}:{key[2]}"
    for name, pattern in PARTS:
        if re.search(pattern, text):
            return name
    return REST


def _python_of(exe: list[str]) -> str:
    return str(Path(exe[0]).with_name("python")) if Path(exe[0]).name == "beanfleet" else exe[0]


def _work_argv(exe: list[str], address: str, n: int) -> list[str]:
    return [
        *exe[1:],
        "work",
        "--server",
        address,
        "--tube",
        f"{TUBE}=bench_handlers:noop",
        "--max-jobs",
        str(n),
    ]


def _drain(
    tmp: Path, n: int, argv_for: Callable[[str], list[str]], log: Path
) -> subprocess.CompletedProcess[bytes]:
    """One fresh server with ``n`` jobs, one worker process that works them off and exits."""
    with server(tmp, binlog=False) as srv:
        preload(srv, TUBE, n)
        with open(log, "wb") as out:
            proc = subprocess.run(
                argv_for(srv.address),
                env=env_for_workers(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=600,
                check=False,
            )
    if proc.returncode != 0:
        raise RuntimeError(f"{argv_for('…')[:3]} exited {proc.returncode}: see {log}")
    return proc


def syscalls(exe: list[str], tmp: Path, n: int) -> dict[str, float] | None:
    """System calls per job by name (``strace -f -c``, N/4 vs N jobs); None without strace."""
    strace = shutil.which("strace")
    if strace is None:
        return None
    counts = []
    for jobs in (n // 4, n):
        out = tmp / f"strace-{jobs}.txt"
        _drain(
            tmp,
            jobs,
            lambda addr, out=out, jobs=jobs: [
                strace,
                "-f",
                "-c",
                "-o",
                str(out),
                "--",
                *exe[:1],
                *_work_argv(exe, addr, jobs),
            ],
            tmp / f"strace-{jobs}.log",
        )
        counts.append(_strace_counts(out.read_text()))
    small, big = counts
    per = (n - n // 4) or 1
    return {
        k: (big.get(k, 0) - small.get(k, 0)) / per
        for k in big
        if (big.get(k, 0) - small.get(k, 0)) / per >= 0.005
    }


def _strace_counts(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or not fields[0][0].isdigit() or fields[-1] == "total":
            continue
        counts[fields[-1]] = int(fields[3])
    return counts


def profile(exe: list[str], tmp: Path, n: int) -> dict[str, tuple[float, float]]:
    """{part: (µs per job under the profiler, calls per job)} from N/4 vs N jobs."""
    totals = []
    for jobs in (n // 4, n):
        out = tmp / f"prof-{jobs}.out"
        _drain(
            tmp,
            jobs,
            lambda addr, out=out, jobs=jobs: [
                _python_of(exe),
                "-m",
                "cProfile",
                "-o",
                str(out),
                "-m",
                "beanfleet",
                *_work_argv(exe, addr, jobs),
            ],
            tmp / f"prof-{jobs}.log",
        )
        parts: dict[str, list[float]] = {}
        stats = pstats.Stats(str(out)).stats  # type: ignore[attr-defined]
        for key, (_cc, calls, tottime, _ct, _callers) in stats.items():
            acc = parts.setdefault(part_of(key), [0.0, 0.0])
            acc[0] += tottime
            acc[1] += calls
        totals.append(parts)
    small, big = totals
    per = (n - n // 4) or 1
    return {
        k: (
            1e6 * (v[0] - small.get(k, [0.0, 0.0])[0]) / per,
            (v[1] - small.get(k, [0.0, 0.0])[1]) / per,
        )
        for k, v in big.items()
    }


def unprofiled(ctx: Ctx, exe: list[str], n: int) -> dict[str, float]:
    """Figure 1's measurement of one worker on ``n`` jobs: µs of CPU per job, user and total."""
    with server(ctx.tmp) as srv:
        running = workers_running(
            srv, "beanfleet", f"{TUBE}-timed", 1, ctx.log_dir, paused_jobs=n, max_jobs=n, exe=exe
        )
        with running as (ctl, procs):
            t = timed_drain(ctl, srv, f"{TUBE}-timed", procs, n, ctx.settle, group="worker")
            wait_exit(procs, timeout=30)
    return {
        "cpu": 1e4 * t["worker"] / t["rate"],
        "user": 1e4 * t["worker_usr"] / t["rate"],
        "wall": 1e6 / t["rate"],
        "others": t["others"],
    }


@dataclass
class Cost:
    """One install's measurements: system calls, profile parts, unprofiled CPU per job."""

    syscalls: dict[str, float] | None
    profile: dict[str, tuple[float, float]]
    timed: dict[str, float]


def measure(ctx: Ctx, exe: list[str]) -> Cost:
    n = ctx.size.jobcost_jobs
    tmp = Path(tempfile.mkdtemp(prefix="jobcost-", dir=ctx.tmp))
    return Cost(syscalls(exe, tmp, n), profile(exe, tmp, n), unprofiled(ctx, exe, n))


def tables(results: dict[str, Cost]) -> list[str]:
    """The two markdown tables (system calls per job; µs per part), a column set per install."""
    names = list(results)
    calls = {n: results[n].syscalls or {} for n in names}
    out = ["| system call | " + " | ".join(f"per job, {n}" for n in names) + " |"]
    out.append("|---|" + "---:|" * len(names))
    every = {k for c in calls.values() for k in c}
    for k in sorted(every, key=lambda k: -max(c.get(k, 0.0) for c in calls.values())):
        out.append(f"| `{k}` | " + " | ".join(f"{calls[n].get(k, 0.0):.2f}" for n in names) + " |")
    out.append("| all | " + " | ".join(f"**{sum(calls[n].values()):.2f}**" for n in names) + " |")
    out.append("")
    head = " | ".join(f"{n}: share | {n}: ≈ µs | {n}: calls" for n in names)
    out.append(f"| part of one job (user-mode Python) | {head} |")
    out.append("|---|" + "---:|---:|---:|" * len(names))
    for part in [p for p, _ in PARTS] + [REST]:
        if not any(results[n].profile.get(part, (0.0, 0.0))[1] >= 0.005 for n in names):
            continue  # no call per job in this part (metrics off, start-up)
        cells = []
        for n in names:
            # cProfile's clock is wall time: a recv's wait for beanstalkd's reply is not the
            # worker's CPU, so the socket calls' share is left out of the Python parts; the
            # kernel's side of every system call is the row below, measured.
            prof, user = results[n].profile, results[n].timed["user"]
            python = {k: max(0.0, us) for k, (us, _c) in prof.items() if k not in LEFT_OUT}
            count = prof.get(part, (0.0, 0.0))[1]
            if part in LEFT_OUT:
                cells.append(f"– | – | {count:.1f}")
                continue
            share = python.get(part, 0.0) / (sum(python.values()) or 1.0)
            cells.append(f"{100 * share:.0f} % | {share * user:.1f} | {count:.1f}")
        out.append(f"| {part} | " + " | ".join(cells) + " |")
    cells = [f"| **{results[n].timed['cpu'] - results[n].timed['user']:.1f}** | " for n in names]
    out.append("| kernel: all system calls (measured: CPU − user) | " + " | ".join(cells) + " |")
    cells = [
        f"100 % | **{results[n].timed['cpu']:.1f}** ({results[n].timed['user']:.1f} user) | "
        for n in names
    ]
    out.append("| worker CPU per job, no profiler | " + " | ".join(cells) + " |")
    return out


def run(ctx: Ctx) -> Figure:
    fig = Figure(10, "Where a job's microseconds go in the worker (no-op handler)")
    if not ctx.have_beanfleet:
        fig.notes.append(f"`beanfleet work` not measured: {ctx.beanfleet_missing}")
        return fig
    codes = {"new": beanfleet_exe()}
    if ctx.old is not None:
        codes[f"old ({ctx.old.short})"] = ctx.old.exe
    results = {name: measure(ctx, exe) for name, exe in codes.items()}
    for name, cost in results.items():
        prefix = "" if name == "new" else f"old code ({name[5:-1]}): "
        fig.add(
            Row(
                f"{prefix}worker CPU per job (no profiler)",
                cost.timed["cpu"],
                "µs",
                extra={
                    "of which user": cost.timed["user"],
                    "wall µs per job": cost.timed["wall"],
                    "other processes CPU %": cost.timed["others"],
                },
            )
        )
        if cost.syscalls is not None:
            fig.add(Row(f"{prefix}system calls per job", sum(cost.syscalls.values()), "calls"))
    if any(cost.syscalls is None for cost in results.values()):
        fig.notes.append("strace not found: system calls per job not counted.")
    fig.tables.append(tables(results))
    fig.notes.append(
        f"{ctx.size.jobcost_jobs:,} jobs (and a quarter of that, subtracted: start-up drops "
        "out), one worker, one server, binlog off for the strace and profile runs. 'share' "
        "is the part's share of the worker's Python time under cProfile (which inflates "
        "every call, so only shares are kept; socket calls, waits and start-up are left out "
        "of it, since cProfile's wall clock counts a recv's wait for beanstalkd, a sleep, "
        "and preemption by other processes); "
        "'≈ µs' is that share of the worker's user-mode CPU per job measured without the "
        "profiler; the kernel row is the worker's system CPU per job, measured; 'calls' is "
        "function calls per job. System calls are counted exactly (strace -f -c, every "
        "thread). cProfile sees the main thread only: the job log's lines are formatted per "
        "job there but written in batches by the heartbeat thread (one write per batch, "
        "which is why no write per job shows); that thread's CPU is in the unprofiled total."
    )
    return fig


def main(argv: list[str] | None = None) -> int:
    from bench_common import SIZES

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=20_000)
    ap.add_argument("--exe", default=None, help="a `beanfleet` console script (default: ours)")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="beanfleet-jobcost-"))
    (tmp / "logs").mkdir()
    size = replace(SIZES["tiny"], jobcost_jobs=args.jobs)
    ctx = Ctx(size, tmp, tmp / "logs", True, "", True, "")
    exe = [args.exe] if args.exe else beanfleet_exe()
    try:
        print("\n".join(tables({"this install": measure(ctx, exe)})))
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
