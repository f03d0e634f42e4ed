"""Drill 3 (local part of the restart storm): SIGTERM and restart workers during a stream.

Three workers run a stream of jobs that each take a few milliseconds, so a SIGTERM often
lands while a handler runs.  Round after round one worker gets SIGTERM, must exit 0 within
a deadline, and a fresh one takes its place.  Graceful shutdown finishes the current job and
deletes it before exiting, so: lost == 0 and run twice == 0.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from harness import DrillError, DrillResult, ExecLog, finish_stream, stream_stage, wait_for

NAME = "restart-storm"
TUBE = "drill-restart"
SIZES = {
    "ci": {"rate": 200, "job_sleep": 0.01, "restarts": 12, "workers": 3, "gap": 0.25},
    # capacity: 3 workers x ~40 jobs/s at 20 ms per job; the stream stays below it
    "full": {"rate": 100, "job_sleep": 0.02, "restarts": 60, "workers": 3, "gap": 0.5},
}


def run(size: str, workdir: Path) -> list[DrillResult]:
    params = SIZES[size]
    result = DrillResult(
        NAME,
        "repeated SIGTERM + restart of workers during a stream",
        run_twice_bound="0",
    )
    started = time.monotonic()
    exit_codes: list[int] = []
    stop_times: list[float] = []
    mid_job = 0
    stream = stream_stage(
        workdir,
        TUBE,
        params["rate"],
        workers=params["workers"],
        job_extra=lambda _seq: {"sleep": params["job_sleep"]},
    )
    with stream as (log, server, fleet, producer):
        live = list(fleet.workers)
        wait_for(lambda: len(producer.acked) >= 20, 10, "the stream to start")
        for n in range(params["restarts"]):
            victim = live.pop(0)
            # Aim the signal at a handler that is running: its last line is a start.
            try:
                wait_for(
                    lambda v=victim: _running(log, v.pid),
                    2,
                    "a running handler",
                    0.002,
                )
                mid_job += 1
            except DrillError:  # no handler running at that moment: signal anyway
                pass
            t0 = time.monotonic()
            victim.signal(signal.SIGTERM)
            exit_codes.append(victim.wait(timeout=15))
            stop_times.append(time.monotonic() - t0)
            live.append(fleet.start(f"w{params['workers'] + n}"))
            time.sleep(params["gap"])  # let the stream run between restarts
        acked = finish_stream(producer, log, server)
        outcomes = [
            (w.name, e.get("outcome"), e.get("reason"))
            for w in fleet.workers
            for e in w.events()
            if e.get("event") == "job" and e.get("outcome") != "deleted"
        ]

    result.count(log, acked)
    result.metrics.update(
        exit_codes=exit_codes,
        stop_times=stop_times,
        mid_job=mid_job,
        odd_outcomes=outcomes,
    )
    result.recovery = (
        f"SIGTERM to exit: max {max(stop_times):.2f} s, mean "
        f"{sum(stop_times) / len(stop_times):.2f} s"
    )
    result.notes = (
        f"{params['restarts']} SIGTERM+restart rounds, {mid_job} of them with a handler "
        f"running; exit codes {sorted(set(exit_codes))}; non-deleted outcomes: {len(outcomes)}"
    )
    result.check(result.lost == 0, f"{result.lost} acknowledged jobs lost")
    result.check(
        result.run_twice == 0,
        f"{result.run_twice} jobs ran twice: {result.metrics['started_twice']}",
    )
    result.check(all(code == 0 for code in exit_codes), f"exit codes {exit_codes}")
    result.details.append(
        f"- {params['restarts']} rounds, {mid_job} signalled while a handler ran; exit codes "
        f"{sorted(set(exit_codes))}; SIGTERM-to-exit max {max(stop_times):.2f} s; "
        f"worker log outcomes other than `deleted`: {outcomes[:3]}"
    )
    result.seconds = time.monotonic() - started
    return [result]


def _running(log: ExecLog, pid: int) -> bool:
    mine = [e for e in log.entries()[-200:] if e.pid == pid]
    return bool(mine) and mine[-1].phase == "start"
