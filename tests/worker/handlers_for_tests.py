"""Handlers the worker tests run, in-process or in a `beanfleet work` subprocess.

They report through files named in the job body, so a test can assert on what really ran.
Body keys: ``out`` (file to append a JSON line per call to), ``go`` (file to wait for),
``seconds`` (how long to sleep), ``delay`` (RetryLater), ``mb`` (memory to hold), ``kill``,
``server`` and ``held`` (kill_or_record), ``raise`` (raise_base).
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import greenstalk
from beanfleet import PermanentFailure, RetryLater
from beanfleet.work.handlers import JobInfo

_BALLAST: list[bytes] = []


def _record(data: Any, job: JobInfo, event: str) -> None:
    if isinstance(data, dict) and "out" in data:
        # The id on its server (a JobRef, with several servers, is a value json cannot
        # write; the tests keep one out file per server).
        record = {"event": event, "id": int(job.id), "tube": job.tube, "attempt": job.attempt}
        line = json.dumps({**record, "pid": os.getpid()})
        with open(data["out"], "a") as f:
            f.write(line + "\n")


def noop(data: Any, job: JobInfo) -> None:
    """The benchmark handler: does nothing, never asks for the attempt."""


def record(data: Any, job: JobInfo) -> None:
    _record(data, job, "done")


def fail(data: Any, job: JobInfo) -> None:
    _record(data, job, "failed")
    raise ValueError("boom")


def permanent(data: Any, job: JobInfo) -> None:
    _record(data, job, "permanent")
    raise PermanentFailure("cannot ever work")


def retry_later(data: Any, job: JobInfo) -> None:
    _record(data, job, "retry-later")
    raise RetryLater(data["delay"])


def slow(data: Any, job: JobInfo) -> None:
    """Record start, sleep ``seconds`` (or until the ``go`` file exists), record done."""
    _record(data, job, "started")
    deadline = time.monotonic() + float(data.get("seconds", 60))
    while time.monotonic() < deadline:
        if "go" in data and os.path.exists(data["go"]):
            break
        time.sleep(0.02)
    _record(data, job, "done")


def ballast(data: Any, job: JobInfo) -> None:
    """Hold ``mb`` MB (touched pages, so they count in the RSS)."""
    _BALLAST.append(b"\x01" * (int(data["mb"]) * 1024 * 1024))
    _record(data, job, "done")


def kill_worker(data: Any, job: JobInfo) -> None:
    """Record the start, then die as an OOM kill or a segfault would: no outcome sent."""
    _record(data, job, "started")
    os.kill(os.getpid(), signal.SIGKILL)


def kill_or_record(data: Any, job: JobInfo) -> None:
    """``kill`` in the body: record the start, wait until the tube ``work`` has ``held``
    jobs reserved (with ``--prefetch``: the next job is held, not started), then die as
    :func:`kill_worker` does.  Otherwise as :func:`record`."""
    if not data.get("kill"):
        record(data, job)
        return
    _record(data, job, "started")
    host, port = data["server"].rsplit(":", 1)
    with greenstalk.Client((host, int(port))) as client:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if client.stats_tube("work")["current-jobs-reserved"] >= data["held"]:
                break
            time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGKILL)


def raise_base(data: Any, job: JobInfo) -> None:
    """Record the start, then raise ``SystemExit(0)`` or ``KeyboardInterrupt`` (``raise``)."""
    _record(data, job, "started")
    if data["raise"] == "SystemExit":
        raise SystemExit(0)
    raise KeyboardInterrupt
