"""What to do with a failed job (retry after a backoff, or bury) and how a retry is done.

The decision lives in :class:`RetryPolicy`; the mechanism in :func:`schedule_retry` alone.
A retry is ``release <id> <pri> <delay>``: the job keeps its id, priority, TTR and body.
Each delayed release adds a binlog record that beanstalkd frees only when the job is
deleted (upstream #622), so ``max_retries`` bounds the records a job can hold: at most one
per retry (drill 6 measures it).

The attempt number comes from beanstalkd's own counters (:func:`attempt_of`), so it counts
every start, including one that killed its worker, and survives worker restarts.  A crash
loop is told apart by the same counters (:func:`unfinished_of`): reservations that ended
with no ``release``, ``bury`` or ``delete``.  beanstalkd 1.12 moves the job counters so:
``reserves`` at every reservation; ``releases`` and ``buries`` only at those commands (a
connection closed with the job reserved and a TTR that ran out move neither; the TTR moves
``timeouts``); ``kicks`` at every kick, of a buried job and of a delayed one alike.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from beanfleet.bounds import MAX_RETRIES, check_count, check_number
from beanfleet.errors import PermanentFailure, RetryLater
from beanfleet.wire import commands
from beanfleet.wire.connection import Connection

DEFAULT_MAX_RETRIES = 3
DEFAULT_BACKOFF_BASE = 1.0
DEFAULT_BACKOFF_CAP = 300.0
MAX_DELAY = 2**32 - 1  # beanstalkd answers BAD_FORMAT to a larger delay


def attempt_of(stats: Mapping[str, int | str]) -> int:
    """The 1-based attempt number of a job reserved now, from its ``stats-job``:
    ``reserves - buries``.

    ``reserves`` counts every reservation, including this one and those whose worker died.
    A job being reserved is not buried, so each earlier ``bury`` was followed by a kick out
    of the buried state, and those reservations are not counted: a prefetch hand-back is a
    ``bury`` then ``kick-job`` (see :mod:`beanfleet.work.session`), and an operator's kick of a
    job buried after its last attempt gives it one more.  A kick of a delayed job (one
    waiting in its retry backoff) moves no ``buries``, so it leaves the count alone.
    """
    return max(1, int(stats["reserves"]) - int(stats["buries"]))


def unfinished_of(stats: Mapping[str, int | str]) -> int:
    """How many earlier reservations of a job reserved now ended with no outcome sent
    (no ``release``, ``bury`` or ``delete``): its worker died or lost its connection, or
    the TTR ran out.  ``reserves - releases - buries - 1`` (this reservation)."""
    earlier = int(stats["reserves"]) - 1
    return max(0, earlier - int(stats["releases"]) - int(stats["buries"]))


def clamp_delay(seconds: float) -> int:
    """Whole seconds for a ``release``: rounded up, never negative, never above 2**32-1."""
    if not seconds > 0:  # also NaN
        return 0
    return MAX_DELAY if seconds >= MAX_DELAY else math.ceil(seconds)


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

    def __post_init__(self) -> None:
        check_count(self.max_retries, "max-retries", low=0, high=MAX_RETRIES)
        check_number(self.backoff_base, "backoff base", low=0, high=MAX_DELAY)
        check_number(self.backoff_cap, "backoff cap", low=0, high=MAX_DELAY)

    def backoff(self, attempt: int) -> int:
        """Delay before the retry that follows failed attempt ``attempt`` (1-based).

        ``base * 2**(attempt-1)`` capped at ``cap``, then jittered into its upper half so
        jobs that failed together spread out but never retry much earlier than planned.
        """
        if not (self.backoff_base > 0 and self.backoff_cap > 0):
            return 0
        # Cap the exponent too: 2**10000 would overflow a float before min() could cap it.
        nominal = min(self.backoff_cap, self.backoff_base * 2.0 ** min(attempt - 1, 64))
        return clamp_delay(random.uniform(nominal / 2, nominal))

    def decide(self, attempt: int, error: BaseException, reason: str) -> Decision:
        """Retry or bury after ``error`` ended attempt ``attempt``; ``reason`` describes it."""
        if isinstance(error, PermanentFailure):
            return Decision("bury", 0, f"permanent failure: {reason}")
        if attempt > self.max_retries:
            return Decision("bury", 0, f"retries exhausted after {attempt} attempts: {reason}")
        if isinstance(error, RetryLater):
            return Decision("release", clamp_delay(error.delay), reason)
        return Decision("release", self.backoff(attempt), reason)

    def crashed_too_often(self, unfinished: int) -> str | None:
        """Why a job that started before must be buried before it starts again, or None.

        ``unfinished`` (:func:`unfinished_of`) earlier reservations ended with no outcome
        sent; at ``max_retries + 1`` of them the job is a crash loop.  Only the caller knows
        whether they were starts: a job held by prefetch goes back the same way when its
        worker dies (see ``Worker._process``).
        """
        if unfinished <= self.max_retries:
            return None
        return (
            f"retries exhausted: {unfinished} attempts ended with no outcome "
            "(the worker died, lost its connection or ran past the TTR during each)"
        )


@dataclass(frozen=True)
class RetryOutcome:
    """How :func:`schedule_retry` went, ready for the job's log line."""

    outcome: Literal["released", "buried", "lost"]
    delay: int | None
    note: str | None = None  # what went differently from the plain delayed release


# beanstalkd 1.12 takes the job off the reserved list before it finds the binlog full, so a
# refused delayed release (or bury) leaves the job in no queue until the server restarts and
# replays its binlog (drill 5).
_ORPHANED = "beanstalkd 1.12 holds the job in no queue until it restarts (its binlog still has it)"


def schedule_retry(conn: Connection, job_id: int, priority: int, delay: int) -> RetryOutcome:
    """Retry reserved job ``job_id`` after ``delay`` seconds, keeping its priority.

    On a full binlog disk the delayed release is refused (``OUT_OF_MEMORY``); the fallback
    is a delay-0 release, which writes no record.
    """
    conn.sock.sendall(commands.release(job_id, priority, clamp_delay(delay)))
    status, _ = conn.read_reply()
    if status == b"RELEASED":
        return RetryOutcome("released", delay)
    if status == b"BURIED":  # the server could not grow a queue: out of memory
        return RetryOutcome("buried", None, "server out of memory: it buried the job")
    if status != b"OUT_OF_MEMORY":
        return RetryOutcome("lost", None, _not_reserved("release", status))
    conn.sock.sendall(commands.release(job_id, priority, 0))
    fallback, _ = conn.read_reply()
    refused = "delayed release refused with OUT_OF_MEMORY (binlog disk full)"
    if fallback == b"RELEASED":
        return RetryOutcome("released", 0, f"{refused}; released with delay 0 instead")
    return RetryOutcome(
        "lost",
        None,
        f"{refused}; delay-0 release replied {fallback.decode(errors='replace')}: {_ORPHANED}",
    )


def bury(conn: Connection, job_id: int, priority: int) -> RetryOutcome:
    """Bury reserved job ``job_id`` keeping its priority."""
    conn.sock.sendall(commands.bury(job_id, priority))
    status, _ = conn.read_reply()
    if status == b"BURIED":
        return RetryOutcome("buried", None)
    if status in (b"OUT_OF_MEMORY", b"INTERNAL_ERROR"):
        text = status.decode()
        return RetryOutcome(
            "lost", None, f"bury refused with {text} (binlog disk full?): {_ORPHANED}"
        )
    return RetryOutcome("lost", None, _not_reserved("bury", status))


def _not_reserved(verb: str, status: bytes) -> str:
    return (
        f"{verb} replied {status.decode(errors='replace')}: not reserved by this worker any "
        "more (TTR ran out?)"
    )
