"""What to do with a failed job (retry after a backoff, or bury) and how a retry is done.

The decision lives in :class:`RetryPolicy`; the mechanism lives in :func:`schedule_retry`
alone.  A retry is a *re-put*: a fresh job in the same tube whose body is an envelope
carrying the attempts made so far and the first job's id, then a ``delete`` of the old job.
beanstalkd 1.12 appends a binlog record for every delayed ``release`` and reclaims none of
them while the job lives (upstream issue #622; measured in drill 6, docs/drills.md), so a
job that keeps failing would grow the binlog without bound; re-put records die with each
copy.  When the put is refused (binlog disk full, envelope over max-job-size, draining) the
old job is released with delay 0, which writes no binlog record and works on a full disk.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

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


ENVELOPE = "__beanfleet_retry__"
_ENVELOPE_KEYS = frozenset({ENVELOPE, "data"})

# Put refusals after which the old job is released with delay 0 instead.  beanstalkd reads
# (or skips) the whole body before any of these replies, so the connection stays in step.
_PUT_REFUSED = frozenset(
    {b"OUT_OF_MEMORY", b"JOB_TOO_BIG", b"DRAINING", b"INTERNAL_ERROR", b"EXPECTED_CRLF"}
)
_WHY_REFUSED = {
    b"OUT_OF_MEMORY": "beanstalkd is out of memory or binlog disk space",
    b"JOB_TOO_BIG": "the retry envelope makes the body larger than the server's max-job-size",
    b"DRAINING": "the server is draining and takes no new jobs",
}


@dataclass(frozen=True)
class RetryEnvelope:
    """What a re-put job carries besides its data."""

    attempts: int  # attempts made before this copy was put
    origin: int  # id of the job as first put by the producer


def unwrap(decoded: Any) -> tuple[Any, RetryEnvelope | None]:
    """The original data of a decoded body, and its retry envelope if it has one.

    An envelope is a dict with exactly the keys ``__beanfleet_retry__`` and ``data`` whose
    meta holds an integer ``attempt`` and ``origin``; anything else is the data itself.
    """
    if type(decoded) is dict and decoded.keys() == _ENVELOPE_KEYS:
        meta = decoded[ENVELOPE]
        if isinstance(meta, dict):
            attempts, origin = meta.get("attempt"), meta.get("origin")
            if type(attempts) is int and type(origin) is int and attempts >= 0 and origin >= 0:
                return decoded["data"], RetryEnvelope(attempts, origin)
    return decoded, None


def wrap(data: Any, attempts: int, origin: int) -> bytes:
    """The compact JSON body of a re-put job (raises ValueError/RecursionError on data
    that cannot be encoded again)."""
    envelope = {ENVELOPE: {"attempt": attempts, "origin": origin}, "data": data}
    try:
        return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:  # lone surrogates (from "\ud800" escapes): keep them escaped
        return json.dumps(envelope, separators=(",", ":")).encode()


@dataclass(frozen=True)
class RetryResult:
    """How :func:`schedule_retry` went.

    ``status`` is ``INSERTED`` (re-put as ``new_id``, old job deleted unless ``note`` says
    otherwise), ``BURIED`` (re-put, but the server had to bury the copy: out of memory), or
    the reply to the fallback ``release <id> <pri> 0``: ``RELEASED``, ``BURIED``,
    ``NOT_FOUND``, ``OUT_OF_MEMORY``, ...  ``note`` says why the fallback was used, or what
    went wrong deleting the old job.
    """

    status: bytes
    new_id: int | None = None
    delay: int = 0
    note: str | None = None


def schedule_retry(
    conn: Connection,
    job_id: int,
    tube: str,
    stats: Mapping[str, int | str],
    delay: int,
    data: Any,
    attempts: int,
    origin: int,
) -> RetryResult:
    """Retry reserved job ``job_id`` after ``delay`` seconds: re-put it, then delete it.

    ``stats`` is its stats-job (priority and TTR are kept), ``data`` its decoded data
    (unwrapped), ``attempts`` the attempts made so far and ``origin`` the first job's id.
    """
    priority, ttr = int(stats["pri"]), int(stats["ttr"])
    try:
        body: bytes | None = wrap(data, attempts, origin)
    except (ValueError, RecursionError) as exc:
        body, why = None, f"its data cannot be encoded as JSON again ({type(exc).__name__})"
    if body is not None:
        # The worker's connection never puts otherwise, so naming the tube before every put
        # is all the ``use`` state there is to keep.
        conn.send([b"use " + tube.encode(), Connection.put_command(body, priority, delay, ttr)])
        using, _ = conn.read_reply()
        status, values = conn.read_reply()  # read both before judging: stay in step
        if using != b"USING":
            raise ConnectionError(f"unexpected reply to use: {using.decode(errors='replace')}")
        if status in (b"INSERTED", b"BURIED"):
            # At-least-once: the old job is deleted only once the copy exists.  A crash (or a
            # lost connection) between the two leaves both, so the job runs once more; it is
            # never lost.
            new_id = int(values[0])
            conn.send([b"delete %d" % job_id])
            deleted, _ = conn.read_reply()
            note = None
            if deleted != b"DELETED":
                note = (
                    f"the old job's delete replied {deleted.decode(errors='replace')} (TTR ran "
                    "out?): it may run once more"
                )
            return RetryResult(status, new_id, delay, note)
        if status not in _PUT_REFUSED:
            raise ConnectionError(f"unexpected reply to put: {status.decode(errors='replace')}")
        why = f"re-put refused with {status.decode()}: " + _WHY_REFUSED.get(status, "server error")
    # A delay-0 release writes no binlog record, so it works even on a full binlog disk
    # (a delayed release or a bury there is refused and orphans the job until a restart).
    conn.send([b"release %d %d 0" % (job_id, priority)])
    status, _ = conn.read_reply()
    return RetryResult(status, None, 0, why)
