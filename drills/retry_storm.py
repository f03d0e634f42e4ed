"""Drill 6: a retry storm -- thousands of jobs whose handler always fails -- and what it
does to beanstalkd's binlog.

Arm ``release`` (the contrast): two ``drills/release_loop.py`` processes releasing every
failed job with ``release <id> <pri> 1`` and no retry limit.  beanstalkd 1.12 appends a
record per delayed release that is reclaimed only when the job is deleted (upstream #622),
so the binlog grows with the number of release cycles, without bound.

Arm ``worker``: two real ``beanfleet work`` processes with ``--max-retries 3`` (backoff base
0.01 s, cap 1 s).  They retry the same way, ``release`` with a delay, but max-retries bounds
the releases: each job gets at most 3 delayed releases and one bury, then sits buried.  So
the binlog grows by at most those records per job, and once the buried jobs are deleted it
returns to its baseline.

Both arms sample the binlog directory's size (sum of the files) and the server's counters
twice a second; the binlog files are 128 KiB (``-s 131072``) so growth shows at CI size.
At the end all jobs are deleted, which shows the records were reclaimable only then.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from beanfleet.produce.producer import Producer
from beanfleet.wire.connection import Connection
from harness import (
    DRILLS_DIR,
    Beanstalkd,
    DrillResult,
    binlog_bytes,
    drill_env,
    server_stats,
    stage,
    tube_counts,
    wait_for,
)

NAME = "retry-storm"
MAX_RETRIES = 3
RECORD_BOUND = 100  # bytes a bounded record may take (the release arm measures ~84)
TUBE = "drill-storm"
FILE_SIZE = 131072
SIZES = {
    "ci": {"jobs": 2000, "seconds": 12.0},
    "full": {"jobs": 10000, "seconds": 60.0},
}


class Sampler(threading.Thread):
    def __init__(self, server: Beanstalkd, directory: Path, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.directory = directory
        self.interval = interval
        self.samples: list[dict[str, float]] = []
        self.stop_event = threading.Event()
        self.t0 = time.monotonic()

    def sample(self) -> dict[str, float]:
        stats = server_stats(self.server.pair)
        row = {
            "t": time.monotonic() - self.t0,
            "bytes": binlog_bytes(self.directory),
            "files": len(list(self.directory.glob("binlog.*"))),
            "releases": int(stats["cmd-release"]),
            "puts": int(stats["cmd-put"]),
            "buried": int(stats["current-jobs-buried"]),
            "deletes": int(stats["cmd-delete"]),
        }
        self.samples.append(row)
        return row

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            with contextlib.suppress(OSError):
                self.sample()


def _arm(size: str, workdir: Path, arm: str) -> dict[str, Any]:
    params = SIZES[size]
    binlog = workdir / "binlog"  # where the stage puts the server's binlog
    out: dict[str, Any] = {"arm": arm, "jobs": params["jobs"]}
    procs: list[subprocess.Popen[bytes]] = []
    with stage(workdir, TUBE, "always_fail", extra=["-s", str(FILE_SIZE)]) as (log, server, fleet):
        sampler = Sampler(server, binlog)
        try:
            with Producer(server.address) as p:
                p.put_many(TUBE, [{"seq": i} for i in range(params["jobs"])], ttr=30)
            base = sampler.sample()
            out["bytes_jobs_only"] = base["bytes"]
            sampler.start()
            if arm == "worker":  # the product: beanfleet work, max-retries bounding releases
                retry = ["--max-retries", str(MAX_RETRIES)]
                retry += ["--backoff-base", "0.01", "--backoff-cap", "1"]
                for i in range(2):
                    fleet.start(f"w{i}", retry)
                # Until every job has used up its retries (bounded, so a stuck run fails).
                wait_for(
                    lambda: tube_counts(server.pair, TUBE).get("buried", 0) >= params["jobs"],
                    params["seconds"] * 5,
                    "every job to be buried after its retries",
                    0.5,
                )
                for w in fleet.workers:
                    w.signal(15)
                for w in fleet.workers:
                    w.wait(15)
            else:
                argv = [sys.executable, str(DRILLS_DIR / "release_loop.py")]
                argv += ["--server", server.address, "--tube", TUBE]
                argv += ["--handler", "drill_handlers:always_fail", "--delay", "1"]
                argv += ["--duration", str(params["seconds"])]
                env = drill_env(log.path)
                procs += [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE) for _ in range(2)]
                counts: dict[str, int] = {}
                for proc in procs:
                    stdout, _ = proc.communicate(timeout=params["seconds"] + 30)
                    for key, value in json.loads(stdout or b"{}").items():
                        counts[key] = counts.get(key, 0) + value
                out["loop_counts"] = counts
            sampler.stop_event.set()
            sampler.join(5)
            end = sampler.sample()
            out["samples"] = sampler.samples
            out["bytes_end"] = end["bytes"]
            out["bytes_max"] = max(s["bytes"] for s in sampler.samples)
            out["cycles"] = end["releases"] - base["releases"]
            out["buried"] = end["buried"]
            out["failures_run"] = sum(1 for e in log.entries() if e.phase == "fail")
            counts_now = tube_counts(server.pair, TUBE)
            out["jobs_left"] = sum(counts_now.values())
            # Delete every job (the worker arm's are all buried): the release records become
            # dead and the files go.
            deleted = _delete_all(server.pair)
            out["deleted"] = deleted
            wait_for(
                lambda: binlog_bytes(binlog) <= 2 * FILE_SIZE + out["bytes_jobs_only"],
                10,
                "the binlog to shrink after deleting every job",
                0.1,
            )
            out["bytes_after_delete"] = binlog_bytes(binlog)
        finally:
            sampler.stop_event.set()
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
    return out


def _delete_all(address: tuple[str, int]) -> int:
    """Kick nothing, wait for nothing: delete ready, delayed and buried jobs by peeking."""
    conn = Connection(address)
    conn.sock.settimeout(10)
    deleted = 0
    try:
        conn.call(b"use " + TUBE.encode(), b"USING")
        for _ in range(1_000_000):
            found = False
            for peek in (b"peek-ready", b"peek-delayed", b"peek-buried"):
                conn.send([peek])
                status, values = conn.expect(b"FOUND", b"NOT_FOUND")
                if status == b"FOUND":
                    conn.read_chunk(int(values[1]))
                    conn.call(b"delete " + values[0], b"DELETED", b"NOT_FOUND")
                    deleted += 1
                    found = True
                    break
            if not found:
                return deleted
        return deleted
    finally:
        conn.close()


def _slope(samples: list[dict[str, float]], key: str) -> float:
    """Bytes of binlog per cycle over the second half of the storm (least squares)."""
    half = samples[len(samples) // 2 :]
    if len(half) < 2:
        return 0.0
    xs = [s[key] for s in half]
    ys = [s["bytes"] for s in half]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def run(size: str, workdir: Path) -> list[DrillResult]:
    params = SIZES[size]
    started = time.monotonic()
    release = _arm(size, workdir / "release", "release")
    worker = _arm(size, workdir / "worker", "worker")
    rel_slope = _slope(release["samples"], "releases")
    jobs = params["jobs"]
    result = DrillResult(
        NAME,
        f"retry storm: {jobs} always-failing jobs; unbounded 1 s release loop for "
        f"{params['seconds']:g} s vs beanfleet work --max-retries {MAX_RETRIES}",
        run_twice_bound="n/a (every job fails on purpose)",
    )
    result.sent = jobs
    result.processed = 0
    result.lost = jobs - release["deleted"] + jobs - worker["deleted"]
    result.run_twice = 0
    kib = 1024
    growth = worker["bytes_max"] - worker["bytes_jobs_only"]
    # Every job: MAX_RETRIES delayed releases and one bury, each one record; the binlog
    # grows in whole files, so one file of slack.
    bound = jobs * (MAX_RETRIES + 1) * RECORD_BOUND + FILE_SIZE
    result.recovery = (
        f"binlog after deleting all jobs: release arm {release['bytes_after_delete'] // kib} "
        f"KiB, worker arm {worker['bytes_after_delete'] // kib} KiB (jobs alone: "
        f"{worker['bytes_jobs_only'] // kib} KiB)"
    )
    result.notes = (
        f"release loop: {release['cycles']} releases grew the binlog from "
        f"{release['bytes_jobs_only'] // kib} KiB to {release['bytes_end'] // kib} KiB "
        f"(~{rel_slope:.0f} B per release, no bound); beanfleet work --max-retries "
        f"{MAX_RETRIES}: {worker['cycles']} releases, {worker['buried']} buried, binlog "
        f"{worker['bytes_jobs_only'] // kib} KiB -> max {worker['bytes_max'] // kib} KiB "
        f"(+{growth / jobs:.0f} B per job; bound {bound // kib} KiB)"
    )
    result.metrics.update(
        release={k: v for k, v in release.items() if k != "samples"},
        worker={k: v for k, v in worker.items() if k != "samples"},
        release_bytes_per_cycle=rel_slope,
        worker_growth_per_job=growth / jobs,
        worker_bound=bound,
        release_samples=release["samples"],
        worker_samples=worker["samples"],
    )
    result.check(
        release["deleted"] == jobs, f"release arm: {release['deleted']} jobs left of {jobs}"
    )
    result.check(worker["deleted"] == jobs, f"worker arm: {worker['deleted']} jobs left of {jobs}")
    result.check(worker["buried"] == jobs, f"worker arm: {worker['buried']} of {jobs} buried")
    result.check(release["cycles"] > jobs, "the release arm did not cycle every job")
    result.check(
        worker["cycles"] == jobs * MAX_RETRIES,
        f"worker arm: {worker['cycles']} releases, expected {jobs * MAX_RETRIES}",
    )
    # The measurement itself: the loop grows with its cycles; the worker stays within its
    # records, and both return to the baseline once the jobs are deleted.
    result.check(rel_slope > 40, f"release arm grew only {rel_slope:.1f} B per release")
    result.check(growth <= bound, f"worker arm binlog grew {growth} B, bound {bound} B")
    for arm in (release, worker):
        result.check(
            arm["bytes_after_delete"] <= arm["bytes_jobs_only"] + FILE_SIZE,
            f"{arm['arm']} arm: binlog {arm['bytes_after_delete']} B after deleting all jobs",
        )
    result.details += [
        (
            "| arm | jobs | releases | buried | binlog with jobs only | binlog at end | max | "
            "after deleting all |"
        ),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {a['arm']} | {a['jobs']} | {a['cycles']} | {a['buried']} | "
            f"{a['bytes_jobs_only']} | {a['bytes_end']} | {a['bytes_max']} | "
            f"{a['bytes_after_delete']} |"
            for a in (release, worker)
        ),
        "",
        "Binlog size over the storm (bytes, sampled every 0.5 s; releases so far):",
        "",
        "| t (s) | release loop: releases | binlog | worker: releases | binlog |",
        "| ---: | ---: | ---: | ---: | ---: |",
        *_side_by_side(release, worker),
    ]
    result.seconds = time.monotonic() - started
    return [result]


def _side_by_side(release: dict[str, Any], worker: dict[str, Any]) -> list[str]:
    a, b = release["samples"], worker["samples"]
    a0 = a[0]["releases"] if a else 0
    b0 = b[0]["releases"] if b else 0
    rows = []
    step = max(1, max(len(a), len(b)) // 12)
    for i in range(0, max(len(a), len(b)), step):
        left = (
            f"{a[i]['t']:.1f} | {a[i]['releases'] - a0} | {a[i]['bytes']}"
            if i < len(a)
            else (f"{b[i]['t']:.1f} | | ")
        )
        right = f"{b[i]['releases'] - b0} | {b[i]['bytes']}" if i < len(b) else " | "
        rows.append(f"| {left} | {right} |")
    return rows
