"""Jobs/s of beanfleet's Worker vs a plain greenstalk reserve/delete loop, same beanstalkd.

Not a test (pytest does not collect it); a quick probe until the formal ``make bench``:

    .venv/bin/python tests/worker/bench_loop.py [--jobs 20000] [--rounds 3]

Both loops decode the JSON body and call a no-op handler; beanstalkd runs with its binlog on.
Worker log lines go to a line-buffered /dev/null, as they would to a line-buffered stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import greenstalk

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from beanfleet.joblog import JobLog
from beanfleet.protocol import Connection
from beanfleet.recycle import RecycleLimits
from beanfleet.worker import Worker
from beanstalkd_server import Beanstalkd

TUBE = "bench"
BODY = json.dumps({"n": 1, "payload": "x" * 64}).encode()


def fill(server: Beanstalkd, jobs: int) -> None:
    conn = Connection(server.pair)
    conn.send([b"use " + TUBE.encode()])
    conn.expect(b"USING")
    batch = 500
    for start in range(0, jobs, batch):
        count = min(batch, jobs - start)
        conn.send([Connection.put_command(BODY, 1024, 0, 60)] * count)
        for _ in range(count):
            conn.expect(b"INSERTED")
    conn.close()


def noop(_data: object, _job: object) -> None:
    pass


def greenstalk_loop(server: Beanstalkd, jobs: int) -> float:
    client = greenstalk.Client(server.pair, encoding=None, watch=TUBE)
    started = time.perf_counter()
    for _ in range(jobs):
        job = client.reserve()
        noop(json.loads(job.body.decode("utf-8")), job)
        client.delete(job)
    elapsed = time.perf_counter() - started
    client.close()
    return jobs / elapsed


def worker_loop(server: Beanstalkd, jobs: int) -> float:
    with open(os.devnull, "w", buffering=1) as devnull:
        worker = Worker(
            server.address,
            {TUBE: noop},
            limits=RecycleLimits(max_jobs=jobs),
            log=JobLog("text", devnull),
        )
        started = time.perf_counter()
        worker.run()
        elapsed = time.perf_counter() - started
    return jobs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    loops = {"greenstalk": greenstalk_loop, "beanfleet": worker_loop}
    results: dict[str, list[float]] = {name: [] for name in loops}
    ratios: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        server = Beanstalkd(binlog_dir=Path(tmp) / "binlog")
        server.start()
        try:
            for round_no in range(args.rounds):
                # Alternate the order, and compare within a round: a shared machine's load
                # drifts, so back-to-back pairs are the fairest comparison.
                order = list(loops) if round_no % 2 == 0 else list(reversed(loops))
                for name in order:
                    fill(server, args.jobs)
                    results[name].append(loops[name](server, args.jobs))
                ratios.append(results["beanfleet"][-1] / results["greenstalk"][-1])
        finally:
            server.kill()
    for name, rates in results.items():
        print(f"{name:10s} " + "  ".join(f"{r:8.0f}" for r in rates) + " jobs/s")
    print("ratio      " + "  ".join(f"{r:8.2f}" for r in ratios))
    plain = statistics.median(results["greenstalk"])
    ours = statistics.median(results["beanfleet"])
    print(
        f"median: greenstalk {plain:.0f} jobs/s, beanfleet {ours:.0f} jobs/s; "
        f"median per-round ratio {statistics.median(ratios):.2f}x"
    )


if __name__ == "__main__":
    main()
