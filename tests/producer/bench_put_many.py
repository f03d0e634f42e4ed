"""Bulk put vs a greenstalk put loop: ``python tests/producer/bench_put_many.py``.

Not collected by pytest (no ``test_`` prefix): it takes a while and its numbers depend on
the machine.  Both sides turn the same Python objects into compact JSON bodies.  Each round
starts a fresh beanstalkd (binlog in a temp dir unless --no-binlog) and runs both methods,
alternating which goes first; medians are reported because a shared machine is noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import greenstalk

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from beanfleet.produce.producer import Producer
from beanstalkd_server import Beanstalkd


def greenstalk_loop(server: Beanstalkd, items: list[Any]) -> float:
    with greenstalk.Client(server.pair, encoding=None, use="loop") as client:
        started = time.perf_counter()
        for item in items:
            client.put(json.dumps(item, separators=(",", ":")).encode())
        return time.perf_counter() - started


def bulk(server: Beanstalkd, items: list[Any]) -> float:
    with Producer(server.address) as producer:
        started = time.perf_counter()
        ids = producer.put_many("bulk", items)
        elapsed = time.perf_counter() - started
    assert len(ids) == len(items)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-binlog", action="store_true")
    args = parser.parse_args()
    items = [{"n": i, "kind": "email", "to": f"user{i}@example.com"} for i in range(args.jobs)]
    loops: list[float] = []
    bulks: list[float] = []
    for round_ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            server = Beanstalkd(binlog_dir=None if args.no_binlog else Path(tmp) / "binlog")
            server.start()
            try:
                if round_ % 2:
                    bulks.append(bulk(server, items))
                    loops.append(greenstalk_loop(server, items))
                else:
                    loops.append(greenstalk_loop(server, items))
                    bulks.append(bulk(server, items))
            finally:
                server.kill()
        print(f"round {round_ + 1}: loop {loops[-1]:.2f}s  put_many {bulks[-1]:.2f}s")
    loop, fast = statistics.median(loops), statistics.median(bulks)
    binlog = "off" if args.no_binlog else "on"
    print(
        f"{args.jobs} jobs, binlog {binlog}, median of {args.rounds}: greenstalk loop "
        f"{loop:.2f}s, put_many {fast:.2f}s, ratio {loop / fast:.1f}x"
    )


if __name__ == "__main__":
    main()
