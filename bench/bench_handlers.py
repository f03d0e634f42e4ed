"""Job handlers the benchmark workers run (``bench_handlers:noop`` and friends).

Worker processes import this module by name: the suite puts ``bench/`` on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import time
from typing import Any

_fd: int | None = None


def noop(*args: Any, **kwargs: Any) -> None:
    """Does nothing: figure 1, 4, 5 and 7 measure the loop around it."""


def _data(args: tuple[Any, ...]) -> dict[str, Any]:
    """The decoded JSON body, whatever shape the worker hands the handler."""
    for a in args:
        if isinstance(a, dict):
            return a
        for attr in ("data", "payload", "body"):
            value = getattr(a, attr, None)
            if isinstance(value, dict):
                return value
    raise TypeError(f"no JSON object among handler arguments {args!r}")


def record(*args: Any, **kwargs: Any) -> None:
    """Appends ``<start time> <body's t>`` to ``$BENCH_RECORD_DIR/<pid>.txt`` (figures 3, 6).

    One ``os.write`` on an O_APPEND descriptor per job, so nothing is lost however the
    worker process ends.
    """
    start = time.time()
    global _fd
    if _fd is None:
        path = os.path.join(os.environ["BENCH_RECORD_DIR"], f"{os.getpid()}.txt")
        _fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    data = kwargs.get("data") or _data(args)
    os.write(_fd, b"%.6f %.6f\n" % (start, float(data["t"])))


def read_records(directory: str) -> list[tuple[float, float]]:
    out = []
    for name in os.listdir(directory):
        if name.endswith(".txt"):
            with open(os.path.join(directory, name)) as f:
                for line in f:
                    start, t = line.split()
                    out.append((float(start), float(t)))
    return out
