#!/usr/bin/env python3
"""A worker stand-in (drills only) that retries the way most beanstalkd workers do:
``release <id> <pri> <delay>``, with no limit on retries.

beanstalkd 1.12 appends a binlog record for every delayed release and reclaims none of them
while the job lives (upstream issue #622), so a job that keeps failing grows the binlog
without bound.  The retry-storm drill runs this loop next to ``beanfleet work``, which
releases the same way but at most ``--max-retries`` times per job, to show the bound.

    python drills/release_loop.py --server H:P --tube T --handler drill_handlers:always_fail \\
        --delay 1 --duration 15

Prints its counts as one JSON line when done.
"""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
import time

from beanfleet.wire.connection import Connection


class _Job:
    def __init__(self, job_id: int, tube: str, attempt: int) -> None:
        self.id = job_id
        self.tube = tube
        self.attempt = attempt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="delayed-release retry loop")
    parser.add_argument("--server", required=True)
    parser.add_argument("--tube", required=True)
    parser.add_argument("--handler", required=True, metavar="MODULE:FUNCTION")
    parser.add_argument("--delay", type=int, default=1)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args(argv)

    module, _, function = args.handler.partition(":")
    handler = getattr(importlib.import_module(module), function)
    host, _, port = args.server.rpartition(":")
    conn = Connection((host, int(port)))
    conn.sock.settimeout(30)
    conn.send([b"watch " + args.tube.encode(), b"ignore default"])
    conn.expect(b"WATCHING")
    conn.expect(b"WATCHING")

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    counts = {"released": 0, "done": 0}
    end = time.monotonic() + args.duration
    while not stopping and time.monotonic() < end:
        conn.send([b"reserve-with-timeout 1"])
        status, values = conn.expect(b"RESERVED", b"TIMED_OUT", b"DEADLINE_SOON")
        if status != b"RESERVED":
            continue
        job_id = int(values[0])
        data = json.loads(conn.read_chunk(int(values[1])))
        stats = conn.stats_job(job_id)
        try:
            handler(data, _Job(job_id, args.tube, int(stats["releases"]) + 1))
        except Exception:
            conn.send([b"release %d %d %d" % (job_id, int(stats["pri"]), args.delay)])
            conn.expect(b"RELEASED")
            counts["released"] += 1
        else:
            conn.send([b"delete %d" % job_id])
            conn.read_reply()
            counts["done"] += 1
    conn.close()
    print(json.dumps(counts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
