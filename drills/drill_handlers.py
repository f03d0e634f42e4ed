"""Handlers the drills run inside real ``beanfleet work`` processes.

The worker imports this module as ``drill_handlers`` (the drill harness puts ``drills/`` on
the worker's PYTHONPATH).  Every execution appends lines to the file named by
``$BEANFLEET_DRILL_LOG`` with ``O_APPEND`` (one ``write`` per line, far below PIPE_BUF, so
lines from several workers never interleave):

    <seq> <pid> <job id> <phase> <unix time>

``phase`` is ``start`` when the handler is entered and ``done`` when it returns (``fail``
when it raises).  The harness counts executions from ``start`` lines and completed work
from ``done`` lines, so a job killed halfway shows as started twice, completed once.

What a handler does is steered by the *data* of the job (``sleep``, ``fail_first``), never
by anything that could pick other code: the code is fixed by ``--tube TUBE=MODULE:FUNCTION``.
"""

from __future__ import annotations

import os
import time
from typing import Any

LOG_ENV = "BEANFLEET_DRILL_LOG"

_fd: int | None = None


def _log_fd() -> int:
    global _fd
    if _fd is None:
        _fd = os.open(os.environ[LOG_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    return _fd


def _seq(data: Any) -> str:
    # Bodies that are not drill jobs (random bytes that happen to be JSON, hostile bodies)
    # are recorded under "-" so the drill can count them without trusting their content.
    if isinstance(data, dict):
        seq = data.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool):
            return str(seq)
    return "-"


def _write(data: Any, job: Any, phase: str) -> None:
    line = f"{_seq(data)} {os.getpid()} {job.id} {phase} {time.time():.6f}\n"
    os.write(_log_fd(), line.encode())


def record(data: Any, job: Any) -> None:
    """Record start and done; sleep ``data["sleep"]`` seconds in between (if given).

    ``data["fail_first"]``: raise on the first attempt (the worker retries it).
    """
    _write(data, job, "start")
    if isinstance(data, dict):
        if data.get("fail_first") and job.attempt == 1:
            _write(data, job, "fail")
            raise RuntimeError("drill: failing the first attempt on purpose")
        seconds = data.get("sleep")
        if isinstance(seconds, int | float) and 0 < seconds <= 60:
            time.sleep(seconds)
    _write(data, job, "done")


def always_fail(data: Any, job: Any) -> None:
    """The retry storm: every attempt fails, so the job cycles through delayed retries."""
    _write(data, job, "fail")
    raise RuntimeError("drill: this handler always fails")
