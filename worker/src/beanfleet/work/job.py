"""A job reserved on the worker's current connection, and what the worker learned of it."""

from __future__ import annotations

import re
import time

from beanfleet.work.handlers import JobInfo
from beanfleet.work.outcome import attempt_of

HEARTBEAT_AFTER = 0.5  # touch only jobs still running this long after they started


# The stats-job fields a start needs (``age``: the worker metrics' wait).  One findall
# instead of a general YAML parse of its ~15 lines: the parse runs once per job, on the hot
# path.
_NEEDED = re.compile(rb"^(tube|pri|ttr|age|reserves|releases|buries): ([^\r\n]*)", re.MULTILINE)


def parse_job_stats(data: bytes) -> dict[str, int | str]:
    """``tube``, ``pri``, ``ttr``, ``age``, ``reserves``, ``releases`` and ``buries`` from a
    stats-job body."""
    found = {key.decode(): value for key, value in _NEEDED.findall(data)}
    stats: dict[str, int | str] = {k: int(v) for k, v in found.items() if k != "tube"}
    stats["tube"] = found["tube"].decode().strip('"')
    return stats


class Reserved:
    """A reserved job; once handled, it may await its ``delete``."""

    __slots__ = (
        "body",
        "delete_sent",
        "duration",
        "id",
        "info",
        "next_touch",
        "stats",
        "stats_asked",
        "stats_checked",
        "stats_known",
        "tube",
    )

    def __init__(self, job_id: int, body: bytes, tube: str | None) -> None:
        self.id = job_id
        self.body = body
        self.tube = tube
        # stats-job, asked once before the job starts: its pri, ttr and counters hold
        # still while it is reserved here.
        self.stats: dict[str, int | str] | None = None  # None once known: job gone
        self.stats_asked = False
        self.stats_known = False
        # Worker._needs_stats was asked: once per job, even when prefetch sees it held
        # and again at its start (see Prefetch.start).
        self.stats_checked = False
        self.info: JobInfo | None = None
        self.duration: float | None = None
        # Its delete was written (maybe unanswered): not written again on a closing connection.
        self.delete_sent = False
        self.next_touch = time.monotonic() + HEARTBEAT_AFTER

    @property
    def attempt(self) -> int | None:
        return None if self.stats is None else attempt_of(self.stats)

    @property
    def priority(self) -> int:
        assert self.stats is not None
        return int(self.stats["pri"])

    def started(self) -> None:
        """Its handler starts now: the heartbeat counts from here."""
        self.next_touch = time.monotonic() + HEARTBEAT_AFTER
