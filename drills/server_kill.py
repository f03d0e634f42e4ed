"""Drill 1: ``kill -9`` of beanstalkd under load, then restart it on the same binlog.

A producer puts numbered jobs at a steady rate and two workers run them.  Halfway,
beanstalkd gets SIGKILL and is started again at once with the same binlog directory; the
producer and the workers reconnect on their own.  Run with ``-f 50`` and with ``-f 0``.

Expected: lost == 0 for acknowledged puts in both modes (beanstalkd ``write``s each record
before it replies, and a process crash leaves the page cache to the kernel).  A job may run
twice when its handler finished but its ``delete`` never reached the binlog: at-least-once.
"""

from __future__ import annotations

import time
from pathlib import Path

from harness import DrillResult, finish_stream, first_after, fmt_s, stream_stage, wait_for

NAME = "server-kill"
TUBE = "drill-kill"
SIZES = {
    "ci": {"rate": 400, "before": 2.5, "after": 2.5, "kills": 1},
    "full": {"rate": 1000, "before": 5.0, "after": 5.0, "kills": 3},
}


def run_mode(size: str, workdir: Path, fsync_ms: int) -> DrillResult:
    params = SIZES[size]
    mode = f"-f{fsync_ms}"
    result = DrillResult(
        f"{NAME}{mode}",
        f"kill -9 beanstalkd under load ({mode})",
        run_twice_bound="≤ jobs in flight at the crash",
    )
    started = time.monotonic()
    recoveries: list[float] = []
    put_recoveries: list[float] = []
    worker_recoveries: list[float] = []
    stream = stream_stage(workdir, TUBE, params["rate"], fsync_ms=fsync_ms)
    with stream as (log, server, fleet, producer):
        workers = fleet.workers
        for _ in range(params["kills"]):
            time.sleep(params["before"])  # load runs for this long before the crash
            wait_for(lambda: len(producer.acked) > 0, 10, "first acknowledged puts")
            server.kill()
            killed_at = time.time()
            server.start()
            restarted_at = time.time()
            # Recovery: every worker completed a job again, and the producer got an ack.
            wait_for(
                lambda: all(
                    any(
                        e.at >= restarted_at  # noqa: B023 - called at once
                        and e.phase == "done"
                        and e.pid == w.pid
                        for e in log.entries()
                    )
                    for w in workers
                ),
                30,
                "every worker to complete a job after the restart",
                interval=0.05,
            )
            done_times = [e.at for e in log.entries() if e.phase == "done"]
            recoveries.append(first_after(done_times, killed_at) or 0.0)
            worker_recoveries.append(
                max(
                    first_after(
                        [e.at for e in log.entries() if e.phase == "done" and e.pid == w.pid],
                        killed_at,
                    )
                    or 0.0
                    for w in workers
                )
            )
            ack_after = first_after(list(producer.ack_times.values()), killed_at)
            put_recoveries.append(ack_after if ack_after is not None else float("nan"))
        time.sleep(params["after"])
        acked = finish_stream(producer, log, server)
        for w in workers:
            result.check(w.alive, f"worker {w.name} died: {w.tail()}")

    result.count(log, acked)
    stats = log.stats()
    result.metrics.update(
        fsync_ms=fsync_ms,
        unknown=len(producer.unknown),
        unknown_done=len(set(producer.unknown) & stats.done_seqs),
        completed_twice=len(stats.completed_twice),
        recovery_first_job=recoveries,
        recovery_all_workers=worker_recoveries,
        recovery_producer=put_recoveries,
        producer_errors=dict(producer.errors.most_common(3)),
        rate=params["rate"],
    )
    result.recovery = (
        f"first job {fmt_s(max(recoveries))}, all workers {fmt_s(max(worker_recoveries))}, "
        f"producer {fmt_s(max(put_recoveries))}"
    )
    result.notes = (
        f"{params['kills']} kill(s) at ~{params['rate']} puts/s; "
        f"{len(producer.unknown)} put(s) cut off by the crash (outcome unknown to the producer, "
        f"{result.metrics['unknown_done']} of them were in the binlog and ran); "
        f"{len(stats.completed_twice)} job(s) completed twice (delete lost with the connection)"
    )
    result.check(
        result.lost == 0,
        f"{result.lost} acknowledged jobs lost: {result.metrics['lost_seqs']}",
    )
    result.check(bool(recoveries), "no recovery measured")
    # A job can only run twice if it was reserved or finishing when the server died: with two
    # workers that is at most 2 per crash (one held by each worker, plus its pending delete).
    bound = 4 * params["kills"]
    result.check(
        result.run_twice <= bound,
        f"{result.run_twice} jobs ran twice; at most {bound} were in flight at the crashes",
    )
    result.details += [
        (
            f"- mode `{mode}`: {result.sent} acknowledged puts, {result.processed} done, lost "
            f"{result.lost}, started twice {result.run_twice} "
            f"({result.metrics['started_twice'][:5]}), completed twice {len(stats.completed_twice)}"
        ),
        (
            f"- recovery after each kill (seconds): first job done {_fmt_list(recoveries)}, "
            f"every worker done a job {_fmt_list(worker_recoveries)}, first acknowledged put "
            f"{_fmt_list(put_recoveries)}"
        ),
        f"- producer errors during the crash: {dict(producer.errors.most_common(2))}",
    ]
    result.seconds = time.monotonic() - started
    return result


def _fmt_list(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def run(size: str, workdir: Path) -> list[DrillResult]:
    return [run_mode(size, workdir / f"f{ms}", ms) for ms in (50, 0)]
