"""Recycling limits: after so many jobs, so much time or so much memory the worker exits 0
between jobs, and its process manager starts a fresh one (leaks and fragmentation go away).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from beanfleet.bounds import MAX_MEGABYTES, MAX_SECONDS, check_count, check_number

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
MB = 1024 * 1024


def current_rss() -> int:
    """Resident set size now, in bytes (/proc/self/statm; ru_maxrss would be the peak)."""
    fd = os.open("/proc/self/statm", os.O_RDONLY)
    try:
        fields = os.read(fd, 256).split()
    finally:
        os.close(fd)
    return int(fields[1]) * _PAGE_SIZE


@dataclass(frozen=True)
class RecycleLimits:
    max_jobs: int | None = None
    max_time: float | None = None  # seconds since the worker started
    max_memory_mb: float | None = None

    def __post_init__(self) -> None:
        if self.max_jobs is not None:
            check_count(self.max_jobs, "max-jobs", low=1, high=2**63 - 1)
        if self.max_time is not None:
            check_number(self.max_time, "max-time", low=0, low_open=True, high=MAX_SECONDS)
        if self.max_memory_mb is not None:
            check_number(self.max_memory_mb, "max-memory", low=0, low_open=True, high=MAX_MEGABYTES)


class Recycler:
    """Counts jobs and tells the worker when a limit is reached."""

    def __init__(self, limits: RecycleLimits, started: float | None = None) -> None:
        self.limits = limits
        self.started = time.monotonic() if started is None else started
        self.jobs = 0
        # Checked before every job: one attribute read when no limit is set.
        self.limited = any(
            value is not None for value in (limits.max_jobs, limits.max_time, limits.max_memory_mb)
        )

    def time_reason(self) -> str | None:
        """The max-time limit alone: cheap enough to check while idle."""
        max_time = self.limits.max_time
        if max_time is not None and time.monotonic() - self.started >= max_time:
            return f"max-time reached ({max_time:g}s)"
        return None

    def reason(self) -> str | None:
        """Why the worker should exit now (between jobs), or None."""
        limits = self.limits
        if limits.max_jobs is not None and self.jobs >= limits.max_jobs:
            return f"max-jobs reached ({self.jobs} jobs)"
        if limits.max_memory_mb is not None:
            rss = current_rss()
            if rss >= limits.max_memory_mb * MB:
                return f"max-memory reached (rss {rss / MB:.1f} MB >= {limits.max_memory_mb:g} MB)"
        return self.time_reason()
