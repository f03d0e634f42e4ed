"""Jobs/s of beanfleet's Worker vs a plain greenstalk reserve/delete loop, same beanstalkd.

Not a test (pytest does not collect it); a quick probe until the formal ``make bench``:

    .venv/bin/python tests/worker/bench_loop.py [--jobs 20000] [--rounds 3] [--prefetch]

Both loops decode the JSON body and call a no-op handler; beanstalkd runs with its binlog on.
Worker log lines go to a line-buffered /dev/null, as they would to a line-buffered stderr.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import greenstalk

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from beanfleet.wire.connection import Connection
from beanfleet.work.joblog import JobLog
from beanfleet.work.loop import Worker
from beanfleet.work.recycle import RecycleLimits
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


def greenstalk_loop(server: Beanstalkd, jobs: int) -> tuple[float, float]:
    client = greenstalk.Client(server.pair, encoding=None, watch=TUBE)
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(jobs):
        job = client.reserve()
        noop(json.loads(job.body.decode("utf-8")), job)
        client.delete(job)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    client.close()
    return jobs / elapsed, cpu / jobs * 1e6


def worker_loop(server: Beanstalkd, jobs: int, prefetch: bool = False) -> tuple[float, float]:
    with open(os.devnull, "w", buffering=1) as devnull:
        worker = Worker(
            server.address,
            {TUBE: noop},
            limits=RecycleLimits(max_jobs=jobs),
            log=JobLog("text", devnull),
            prefetch=prefetch,
        )
        started, cpu = time.perf_counter(), time.process_time()
        worker.run()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return jobs / elapsed, cpu / jobs * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--prefetch", action="store_true", help="run the Worker with prefetch")
    args = parser.parse_args()
    loops = {
        "greenstalk": greenstalk_loop,
        "beanfleet": functools.partial(worker_loop, prefetch=args.prefetch),
    }
    rates: dict[str, list[float]] = {name: [] for name in loops}
    cpus: dict[str, list[float]] = {name: [] for name in loops}
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
                    rate, cpu = loops[name](server, args.jobs)
                    rates[name].append(rate)
                    cpus[name].append(cpu)
                ratios.append(rates["beanfleet"][-1] / rates["greenstalk"][-1])
        finally:
            server.kill()
    for name in loops:
        print(f"{name:10s} jobs/s " + " ".join(f"{r:7.0f}" for r in rates[name]))
        print(f"{name:10s} cpu us " + " ".join(f"{c:7.1f}" for c in cpus[name]))
    print("ratio             " + " ".join(f"{r:7.2f}" for r in ratios))
    plain, ours = statistics.median(rates["greenstalk"]), statistics.median(rates["beanfleet"])
    print(
        f"median: greenstalk {plain:.0f} jobs/s ({statistics.median(cpus['greenstalk']):.1f} "
        f"us client CPU/job), beanfleet {ours:.0f} jobs/s "
        f"({statistics.median(cpus['beanfleet']):.1f} us); "
        f"median per-round ratio {statistics.median(ratios):.2f}x"
    )


if __name__ == "__main__":
    main()
