"""beanfleet's benchmark suite: ``python bench/run.py [--size tiny|full] [--out DIR]``.

Runs every figure next to its baseline in one run, each against a beanstalkd it starts
itself (binlog on, in a temp dir), prints the table, and writes it to ``DIR/bench.md`` with
the machine described, and the charts to ``DIR/bench.png`` (DIR defaults to ``docs/``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

import bench_common
import fig_bulkput
import fig_delays
import fig_durability
import fig_latency
import fig_memory
import fig_pickup
import fig_scaling
import fig_servers
import fig_worker
import jobcost
import oldcode
import report
from bench_common import ROOT, SIZES, Figure
from bench_ctx import Ctx

FIGURES = {
    1: fig_worker.run,
    2: fig_bulkput.run,
    3: fig_latency.run,
    4: fig_scaling.run,
    5: fig_durability.run,
    6: fig_delays.run,
    7: fig_memory.run,
    8: fig_servers.run,
    9: fig_pickup.run,
    10: jobcost.run,
}
OLD_FIGURES = {1, 9, 10}  # the figures that also run the old code (--old-rev)


def busy_before(seconds: float = 1.0) -> float:
    """CPU the machine used over ``seconds`` before the run, in % of one core."""
    b0, t0 = bench_common.machine_busy(), time.perf_counter()
    time.sleep(seconds)
    return 100 * (bench_common.machine_busy() - b0) / (time.perf_counter() - t0)


def _terminate(signum: int, _frame: object) -> None:
    # Unwind normally so every beanstalkd and worker this run started is stopped.
    raise SystemExit(128 + signum)


def disturbed(fig: Figure) -> None:
    """Say so when other processes took a large share of the cores during a figure."""
    others = [
        r.extra["other processes CPU %"] for r in fig.rows if "other processes CPU %" in r.extra
    ]
    if others and (mean := sum(others) / len(others)) > 30:
        fig.notes.insert(
            0,
            f"**Disturbed:** other processes on this machine used {mean:.0f} % of a core on "
            "average during these measurements (100 % = one of the 2 cores): absolute "
            "numbers are pessimistic and noisy; ratios measured side by side hold better.",
        )


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="full")
    ap.add_argument("--out", type=Path, default=ROOT / "docs", help="where bench.md/png go")
    ap.add_argument(
        "--only", default="", help="comma-separated figure numbers (default: all of them)"
    )
    ap.add_argument(
        "--old-rev",
        default="none",
        metavar="REV",
        help="also run figures 1, 9 and 10 with the worker at git revision REV, installed in "
        ".venv-old (`auto`: the commit before the move into subpackages; default: none)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (worker logs)")
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds in all the run may spend waiting for other processes to go "
        "quiet before measurements and repeating disturbed runs "
        "(default: 120 for full, 0 for tiny)",
    )
    args = ap.parse_args(argv)
    numbers = [int(x) for x in args.only.split(",") if x] or list(FIGURES)
    size = SIZES[args.size]

    have_bf, bf_missing = bench_common.beanfleet_available()
    have_prod, prod_missing = bench_common.producer_available()
    for ok, why in ((have_bf, bf_missing), (have_prod, prod_missing)):
        if not ok:
            print(f"note: {why}", file=sys.stderr)

    busy = busy_before()
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    background = (
        f"other processes used {busy:.0f} % of a core in the second before the run "
        f"(100 % = one of {os.cpu_count()} cores), load average {load}"
    )

    tmp = Path(tempfile.mkdtemp(prefix="beanfleet-bench-"))
    log_dir = tmp / "logs"
    log_dir.mkdir()
    full = size.name == "full"
    quiet = args.quiet_wait if args.quiet_wait is not None else (120.0 if full else 0.0)
    retries = 10 if full and quiet > 0 else 0
    ctx = Ctx(size, tmp, log_dir, have_bf, bf_missing, have_prod, prod_missing, quiet, retries)
    if args.old_rev != "none" and have_bf and OLD_FIGURES & set(numbers):
        ctx.old = oldcode.install(args.old_rev)
    figures: list[Figure] = []
    failed = []
    start = time.perf_counter()
    try:
        for number in numbers:
            t0 = time.perf_counter()
            print(f"figure {number} ...", file=sys.stderr, flush=True)
            try:
                fig = FIGURES[number](ctx)
            except Exception:
                traceback.print_exc()
                failed.append(number)
                continue
            fig.seconds = time.perf_counter() - t0
            disturbed(fig)
            figures.append(fig)
            print(report.text_table([fig]), flush=True)
    finally:
        if args.keep:
            print(f"temp dir kept: {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    total = time.perf_counter() - start
    if ctx.waited or ctx.repeated:
        background += (
            f"; waited {ctx.waited:.0f} s for quiet moments, repeated {ctx.repeated} "
            "disturbed run(s)"
        )
    with open("/proc/loadavg") as f:
        background += f"; load average {f.read().split()[0]} at the end"

    args.out.mkdir(parents=True, exist_ok=True)
    md = args.out / "bench.md"
    png = args.out / "bench.png"
    machine = bench_common.machine()
    text = report.markdown(figures, machine, size.name, total, png.name, background)
    partial = set(numbers) != set(FIGURES)
    if partial and md.exists():
        # --only: the other figures' rows and sections stay as the last run wrote them,
        # and so does the picture (a full run redraws it).
        md.write_text(report.merge(md.read_text(), text, {f.number for f in figures}))
    else:
        md.write_text(text)
    if not (partial and png.exists()):
        report.plot(
            figures,
            png,
            f"beanfleet bench ({size.name}), {machine['Date']}",
            [f"{k}: {v}" for k, v in machine.items()] + [f"Background: {background}"],
        )
    print("\n" + report.text_table(figures))
    print(f"\nwrote {md} and {png} in {total:.0f} s", file=sys.stderr)
    if failed:
        print(f"figures that failed: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
