"""Idle pickup: how long an idle worker over N servers takes to start a job put on one of them.

Not a test (pytest does not collect it); a probe for issue 19's "scale with the number of
servers" (goal: under 50 ms whatever N):

    .venv/bin/python tests/worker/bench_idle_pickup.py [--servers 1 2 4 8] [--puts 10]

For each N it starts N beanstalkd servers and one in-process worker over all of them, then
repeatedly lets the worker go idle (a random pause), puts one job on a server (each server in
turn, the last one first) and measures from the end of the put to the handler's start.
Run with another checkout's ``worker/src`` on PYTHONPATH to measure that code the same way.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import greenstalk

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from beanstalkd_server import Beanstalkd


def make_worker(addresses: list[str], handler: Any) -> Any:
    try:
        from beanfleet.work.loop import Worker
    except ImportError:  # a checkout from before issue 19's worker loop
        from beanfleet.work.pool import ServersWorker  # type: ignore[no-redef]
        from beanfleet.work.worker import Worker  # type: ignore[no-redef]

        if len(addresses) > 1:
            return ServersWorker(addresses, {"idle": handler}, state_dir=None)
        return Worker(addresses[0], {"idle": handler}, state_dir=None)
    return Worker(addresses, {"idle": handler}, state_dir=None)


def measure(count: int, puts: int, tmp: Path) -> list[float]:
    servers = [Beanstalkd(binlog_dir=tmp / f"binlog-{count}-{i}") for i in range(count)]
    for server in servers:
        server.start()
    started = threading.Event()
    at: list[float] = []

    def handler(_data: object, _job: object) -> None:
        at.append(time.perf_counter())
        started.set()

    worker = make_worker([s.address for s in servers], handler)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    clients = [greenstalk.Client(s.pair, encoding=None, use="idle") for s in servers]
    delays: list[float] = []
    try:
        time.sleep(1.0)  # connected, idle
        for n in range(puts):
            time.sleep(random.uniform(0.3, 1.5))  # idle at a random point of its wait
            target = clients[(count - 1 - n) % count]
            started.clear()
            target.put(b"{}")
            put_done = time.perf_counter()
            if not started.wait(30):
                raise SystemExit(f"{count} servers: job {n} not picked up in 30 s")
            delays.append(at[-1] - put_done)
    finally:
        worker.request_stop()
        thread.join(timeout=15)
        for client in clients:
            client.close()
        for server in servers:
            server.kill()
    return delays


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--servers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--puts", type=int, default=10)
    args = parser.parse_args()
    print("servers  median_ms  max_ms")
    with tempfile.TemporaryDirectory() as tmp:
        for count in args.servers:
            delays = measure(count, args.puts, Path(tmp))
            print(f"{count:7d}  {statistics.median(delays) * 1000:9.1f}  {max(delays) * 1000:6.1f}")


if __name__ == "__main__":
    main()
