"""What to do with a failed job (retry after a backoff, or bury) and how a retry is done.

The decision lives in :class:`RetryPolicy`; the mechanism lives in :func:`schedule_retry`
alone, so it can be swapped: today it is ``release`` with a delay, but beanstalkd issue #622
reports binlogs growing without bound with delayed releases, and the alternative ("put a
fresh job carrying its attempt number, then delete the old one") would replace just that
function and where the attempt number is read.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

from beanfleet.errors import PermanentFailure, RetryLater
from beanfleet.protocol import Connection

DEFAULT_MAX_RETRIES = 3
DEFAULT_BACKOFF_BASE = 1.0
DEFAULT_BACKOFF_CAP = 300.0


@dataclass(frozen=True)
class Decision:
    action: Literal["release", "bury"]
    delay: int  # seconds; beanstalkd delays are whole seconds
    reason: str


@dataclass(frozen=True)
class RetryPolicy:
    """``max_retries`` retries after the first attempt, exponential backoff with jitter."""

    max_retries: int = DEFAULT_MAX_RETRIES
    backoff_base: float = DEFAULT_BACKOFF_BASE
    backoff_cap: float = DEFAULT_BACKOFF_CAP

    def backoff(self, attempt: int) -> int:
        """Delay before the retry that follows failed attempt ``attempt`` (1-based).

        ``base * 2**(attempt-1)`` capped at ``cap``, then jittered into its upper half so
        jobs that failed together spread out but never retry much earlier than planned.
        """
        if self.backoff_base <= 0 or self.backoff_cap <= 0:
            return 0
        # Cap the exponent too: 2**10000 would overflow a float before min() could cap it.
        nominal = min(self.backoff_cap, self.backoff_base * 2.0 ** min(attempt - 1, 64))
        return math.ceil(random.uniform(nominal / 2, nominal))

    def decide(self, attempt: int, error: BaseException, reason: str) -> Decision:
        """Retry or bury after ``error`` ended attempt ``attempt``; ``reason`` describes it."""
        if isinstance(error, PermanentFailure):
            return Decision("bury", 0, f"permanent failure: {reason}")
        if attempt > self.max_retries:
            return Decision("bury", 0, f"retries exhausted after {attempt} attempts: {reason}")
        if isinstance(error, RetryLater):
            return Decision("release", math.ceil(error.delay), reason)
        return Decision("release", self.backoff(attempt), reason)


def schedule_retry(conn: Connection, job_id: int, priority: int, delay: int) -> bytes:
    """Hand a reserved job back for another attempt after ``delay`` seconds.

    Returns beanstalkd's status: ``RELEASED``, ``BURIED`` (server out of memory) or
    ``NOT_FOUND`` (the job is no longer reserved by this connection).
    """
    conn.send([b"release %d %d %d" % (job_id, priority, delay)])
    status, _ = conn.read_reply()
    return status
