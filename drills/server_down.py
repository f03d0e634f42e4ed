"""Drill 4: beanstalkd is down for a while (30 s at full size, 8 s at CI size).

Two workers and a producer run; beanstalkd gets SIGKILL, stays down, then starts again on
the same binlog.  Each worker must reconnect by itself: its reconnect backoff doubles up to a
cap (``beanfleet.work.link.RECONNECT_CAP``), so after the server returns every worker should be
back within that cap (plus a connect).  Measured per worker: time from the server's return
to its ``connected`` log line and to its first finished job.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from beanfleet.work import link as worker_module
from harness import DrillResult, finish_stream, first_after, parse_ts, stream_stage, wait_for

NAME = "server-down"
TUBE = "drill-down"
SIZES = {
    "ci": {"rate": 200, "down": 8.0, "before": 1.0, "after": 1.5},
    "full": {"rate": 300, "down": 30.0, "before": 3.0, "after": 5.0},
}
_RETRY_RE = re.compile(r"retrying in ([0-9.]+)s")


def run(size: str, workdir: Path) -> list[DrillResult]:
    params = SIZES[size]
    cap = float(worker_module.RECONNECT_CAP)
    result = DrillResult(
        NAME,
        f"beanstalkd down for {params['down']:g} s",
        run_twice_bound="≤ jobs in flight at the crash",
    )
    started = time.monotonic()
    per_worker: dict[str, dict[str, float | int | None]] = {}
    with stream_stage(workdir, TUBE, params["rate"]) as (log, server, fleet, producer):
        workers = fleet.workers
        time.sleep(params["before"])
        server.kill()
        down_at = time.time()
        time.sleep(params["down"])  # the outage itself: hold it for its stated length
        result.check(
            all(w.alive for w in workers),
            "a worker exited while the server was down",
        )
        server.start()
        up_at = time.time()
        wait_for(
            lambda: all(any(t >= up_at for t in w.connected_times()) for w in workers),
            cap + 15,
            "every worker to reconnect",
            0.05,
        )
        wait_for(
            lambda: all(
                any(e.pid == w.pid and e.phase == "done" and e.at >= up_at for e in log.entries())
                for w in workers
            ),
            cap + 15,
            "every worker to finish a job after the outage",
            0.05,
        )
        time.sleep(params["after"])
        acked = finish_stream(producer, log, server)
        for w in workers:
            events = w.events()
            retries = [
                float(m.group(1))
                for e in events
                if e.get("event") == "connect-failed"
                and parse_ts(e["ts"]) >= down_at
                and (m := _RETRY_RE.search(e.get("message", "")))
            ]
            done_times = [e.at for e in log.entries() if e.pid == w.pid and e.phase == "done"]
            per_worker[w.name] = {
                "reconnect": first_after(w.connected_times(), up_at),
                "first_job": first_after(done_times, up_at),
                "attempts": len(retries),
                "max_wait": max(retries, default=0.0),
            }
            result.check(w.alive, f"worker {w.name} died: {w.tail()}")

    result.count(log, acked)
    reconnects = [v["reconnect"] or 0.0 for v in per_worker.values()]
    first_jobs = [v["first_job"] or 0.0 for v in per_worker.values()]
    result.metrics.update(per_worker=per_worker, cap=cap, down=params["down"])
    result.recovery = (
        "per worker: "
        + ", ".join(f"{name} {v['reconnect']:.2f} s" for name, v in per_worker.items())
        + f" (cap {cap:g} s)"
    )
    result.notes = (
        f"down {params['down']:g} s{' (CI size; full size is 30 s)' if size == 'ci' else ''}; "
        f"reconnect attempts while down: "
        + ", ".join(
            f"{n} {v['attempts']} (longest wait {v['max_wait']:.1f} s)"
            for n, v in per_worker.items()
        )
        + "; producer saw: "
        + (producer.errors.most_common(1)[0][0] if producer.errors else "no error")
    )
    result.check(result.lost == 0, f"{result.lost} acknowledged jobs lost")
    result.check(result.run_twice <= 4, f"{result.run_twice} jobs ran twice")
    slack = 1.0
    result.check(
        max(reconnects) <= cap + slack,
        f"a worker took {max(reconnects):.2f}s to reconnect; the cap is {cap:g}s",
    )
    result.details.append(
        "- per worker after the server returned: "
        + "; ".join(
            f"{n}: connected {v['reconnect']:.2f} s, first job done {v['first_job']:.2f} s, "
            f"{v['attempts']} failed connects, longest wait {v['max_wait']:.1f} s"
            for n, v in per_worker.items()
        )
    )
    result.details.append(f"- slowest first job after the return: {max(first_jobs):.2f} s")
    result.seconds = time.monotonic() - started
    return [result]
