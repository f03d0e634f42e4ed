#!/usr/bin/env python3
"""Prototype (drills only): retry a failed job by putting a fresh copy and deleting the old.

beanfleet's worker retries with ``release <id> <pri> <delay>``.  Each delayed release makes
beanstalkd 1.12 append a record to the binlog that is reclaimed only when the job is
deleted (upstream issue #622), so a job that keeps failing grows the binlog without bound;
and on a full binlog disk the same release is refused *after* the job was taken off the
connection, which orphans it (see the disk-full drill).

The alternative measured here: ``put`` a new job carrying the attempt number, and only when
beanstalkd answered INSERTED, ``delete`` the old one.  Every record then belongs to a job
that dies within one retry cycle, so compaction can reclaim it, and a refused put leaves the
old job reserved and untouched (it falls back to ``release <id> <pri> 0``, which writes
nothing to the binlog).  A crash between the put and the delete leaves both copies: the job
runs once more, which at-least-once delivery allows anyway.

The attempt number travels in an envelope, so the handler still gets the original data::

    {"__beanfleet_retry__": {"attempt": 3, "origin": 1234}, "data": <original data>}

``origin`` is the id of the first job, for logs that follow a job across its copies.

Run by the retry-storm drill as a worker stand-in:

    python drills/reput.py --server H:P --tube T --handler drill_handlers:always_fail \\
        --delay 1 --max-retries 1000000 --duration 15
"""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
import time
from typing import Any

from beanfleet.protocol import Connection

ENVELOPE = "__beanfleet_retry__"


class _Job:
    def __init__(self, job_id: int, tube: str, attempt: int) -> None:
        self.id = job_id
        self.tube = tube
        self.attempt = attempt


def unwrap(data: Any) -> tuple[Any, int, int | None]:
    """(original data, attempt, origin id) of a decoded body."""
    if isinstance(data, dict) and set(data) == {ENVELOPE, "data"}:
        meta = data[ENVELOPE]
        if isinstance(meta, dict) and isinstance(meta.get("attempt"), int):
            origin = meta.get("origin")
            return (
                data["data"],
                meta["attempt"],
                origin if isinstance(origin, int) else None,
            )
    return data, 1, None


def wrap(data: Any, attempt: int, origin: int) -> bytes:
    envelope = {ENVELOPE: {"attempt": attempt, "origin": origin}, "data": data}
    return json.dumps(envelope, separators=(",", ":")).encode()


def retry_by_reput(
    conn: Connection, job_id: int, body: bytes, priority: int, delay: int, ttr: int
) -> str:
    """Put ``body`` as a new job after ``delay`` s, then delete ``job_id``.

    The connection must already ``use`` the job's tube.  Returns "reput" or, when the put is
    refused (binlog full, draining), "released" after handing the old job back at once.
    """
    conn.send([Connection.put_command(body, priority, delay, ttr)])
    status, _ = conn.read_reply()
    if status != b"INSERTED":
        conn.send([b"release %d %d 0" % (job_id, priority)])
        conn.read_reply()
        return "released"
    conn.send([b"delete %d" % job_id])
    conn.expect(b"DELETED")
    return "reput"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="re-put retry prototype worker")
    parser.add_argument("--server", required=True)
    parser.add_argument("--tube", required=True)
    parser.add_argument("--handler", required=True, metavar="MODULE:FUNCTION")
    parser.add_argument("--delay", type=int, default=1)
    parser.add_argument("--max-retries", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args(argv)

    module, _, function = args.handler.partition(":")
    handler = getattr(importlib.import_module(module), function)
    host, _, port = args.server.rpartition(":")
    conn = Connection((host, int(port)))
    conn.sock.settimeout(30)
    conn.send(
        [
            b"watch " + args.tube.encode(),
            b"ignore default",
            b"use " + args.tube.encode(),
        ]
    )
    conn.expect(b"WATCHING")
    conn.expect(b"WATCHING")
    conn.expect(b"USING")

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    counts = {"reput": 0, "released": 0, "buried": 0, "done": 0}
    end = time.monotonic() + args.duration
    while not stopping and time.monotonic() < end:
        conn.send([b"reserve-with-timeout 1"])
        status, values = conn.expect(b"RESERVED", b"TIMED_OUT", b"DEADLINE_SOON")
        if status != b"RESERVED":
            continue
        job_id = int(values[0])
        body = conn.read_chunk(int(values[1]))
        data, attempt, origin = unwrap(json.loads(body))
        try:
            handler(data, _Job(job_id, args.tube, attempt))
        except Exception:
            stats = conn.stats_job(job_id)
            if attempt > args.max_retries:
                conn.send([b"bury %d %d" % (job_id, int(stats["pri"]))])
                conn.read_reply()
                counts["buried"] += 1
                continue
            new_body = wrap(data, attempt + 1, origin if origin is not None else job_id)
            outcome = retry_by_reput(
                conn, job_id, new_body, int(stats["pri"]), args.delay, int(stats["ttr"])
            )
            counts[outcome] += 1
        else:
            conn.send([b"delete %d" % job_id])
            conn.read_reply()
            counts["done"] += 1
    conn.close()
    print(json.dumps(counts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
