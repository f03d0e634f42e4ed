"""Drill 6: a retry storm -- thousands of jobs whose handler always fails, retrying every
second -- and what it does to beanstalkd's binlog.

Arm ``release``: two ``drills/release_loop.py`` processes, retrying the way most beanstalkd
workers do (and beanfleet did before this drill): ``release <id> <pri> 1``.  beanstalkd 1.12
appends a record per delayed release that is reclaimed only when the job is deleted
(upstream #622), so the binlog grows with the number of release cycles.

Arm ``reput``: two real ``beanfleet work`` processes (``--max-retries`` huge, backoff base
0.01 s and cap 1 s), which retry by putting a fresh job (attempt number in an envelope) and
then deleting the old one (beanfleet.retry): every record dies within one retry cycle.

Both arms sample the binlog directory's size (sum of the files) and the server's counters
twice a second; the binlog files are 128 KiB (``-s 131072``) so growth shows at CI size.
At the end all jobs are deleted, which shows the release records were reclaimable only then.
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

from beanfleet.producer import Producer
from beanfleet.protocol import Connection
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
            if arm == "reput":  # the product: beanfleet work, retrying by re-put
                retry = ["--max-retries", "1000000", "--backoff-base", "0.01", "--backoff-cap", "1"]
                for i in range(2):
                    fleet.start(f"w{i}", retry)
                time.sleep(params["seconds"])  # the storm runs for its stated length
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
            out["cycles"] = (
                end["releases"] - base["releases"]
                if arm == "release"
                else end["puts"] - base["puts"]
            )
            out["failures_run"] = sum(1 for e in log.entries() if e.phase == "fail")
            counts_now = tube_counts(server.pair, TUBE)
            out["jobs_left"] = sum(counts_now.values())
            # Delete every job: the release records become dead and the files go.
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
    reput = _arm(size, workdir / "reput", "reput")
    rel_slope = _slope(release["samples"], "releases")
    rep_slope = _slope(reput["samples"], "puts")
    result = DrillResult(
        NAME,
        f"retry storm: {params['jobs']} always-failing jobs, 1 s retry delay, "
        f"{params['seconds']:g} s per arm",
        run_twice_bound="n/a (every job fails on purpose)",
    )
    result.sent = params["jobs"]
    result.processed = 0
    result.lost = params["jobs"] - release["deleted"] + params["jobs"] - reput["deleted"]
    result.run_twice = 0
    kib = 1024
    result.recovery = (
        f"binlog after deleting all jobs: release {release['bytes_after_delete'] // kib} KiB, "
        f"reput {reput['bytes_after_delete'] // kib} KiB"
    )
    result.notes = (
        f"release: {release['cycles']} releases grew the binlog from "
        f"{release['bytes_jobs_only'] // kib} KiB to {release['bytes_end'] // kib} KiB "
        f"(~{rel_slope:.0f} B per release); beanfleet work (re-put): {reput['cycles']} re-puts, "
        f"binlog {reput['bytes_jobs_only'] // kib} KiB -> max {reput['bytes_max'] // kib} KiB, "
        f"end {reput['bytes_end'] // kib} KiB (~{rep_slope:.1f} B per re-put)"
    )
    result.metrics.update(
        release={k: v for k, v in release.items() if k != "samples"},
        reput={k: v for k, v in reput.items() if k != "samples"},
        release_bytes_per_cycle=rel_slope,
        reput_bytes_per_cycle=rep_slope,
        release_samples=release["samples"],
        reput_samples=reput["samples"],
    )
    growth_release = release["bytes_end"] - release["bytes_jobs_only"]
    # Every job is still there after the storm (none buried, none lost) in both arms.
    result.check(
        release["deleted"] == params["jobs"],
        f"release arm: {release['deleted']} jobs left of {params['jobs']}",
    )
    result.check(
        reput["deleted"] == params["jobs"],
        f"reput arm: {reput['deleted']} jobs left of {params['jobs']}",
    )
    result.check(release["cycles"] > params["jobs"], "the release arm did not cycle every job")
    result.check(reput["cycles"] > params["jobs"], "the reput arm did not cycle every job")
    # The measurement itself: release grows with cycles, reput stays bounded.
    result.check(rel_slope > 40, f"release arm grew only {rel_slope:.1f} B per release")
    result.check(
        reput["bytes_max"]
        <= max(4 * reput["bytes_jobs_only"], reput["bytes_jobs_only"] + 6 * FILE_SIZE),
        f"reput arm binlog reached {reput['bytes_max']} bytes",
    )
    result.check(growth_release > 0, "release arm binlog did not grow")
    result.details += [
        (
            "| arm | jobs | retry cycles | binlog with jobs only | binlog at end | max | "
            "bytes per cycle (2nd half) | after deleting all |"
        ),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {a['arm']} | {a['jobs']} | {a['cycles']} | {a['bytes_jobs_only']} | "
            f"{a['bytes_end']} | {a['bytes_max']} | {s:.1f} | {a['bytes_after_delete']} |"
            for a, s in ((release, rel_slope), (reput, rep_slope))
        ),
        "",
        (
            "Binlog size over the storm (bytes, sampled every 0.5 s; cycles = releases or re-puts "
            "so far):"
        ),
        "",
        "| t (s) | release: cycles | release: binlog | reput: cycles | reput: binlog |",
        "| ---: | ---: | ---: | ---: | ---: |",
        *_side_by_side(release, reput),
    ]
    result.seconds = time.monotonic() - started
    return [result]


def _side_by_side(release: dict[str, Any], reput: dict[str, Any]) -> list[str]:
    a, b = release["samples"], reput["samples"]
    a0 = a[0]["releases"] if a else 0
    b0 = b[0]["puts"] if b else 0
    rows = []
    step = max(1, min(len(a), len(b)) // 12)
    for i in range(0, min(len(a), len(b)), step):
        rows.append(
            f"| {a[i]['t']:.1f} | {a[i]['releases'] - a0} | {a[i]['bytes']} | "
            f"{b[i]['puts'] - b0} | {b[i]['bytes']} |"
        )
    return rows
