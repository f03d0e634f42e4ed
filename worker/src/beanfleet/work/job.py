"""One reserved job: what the worker learned of it and where it is in its life (one object,
one explicit :class:`State`, plus :class:`Counters` for its ``stats-job`` exchange).

May import: ``work.handlers`` (JobInfo), ``work.outcome`` (attempt_of) and the stdlib.

A job's life on its connection (:mod:`beanfleet.work.session` moves it)::

    HELD ──start──> RUNNING ──succeeded──> SUCCEEDED ──delete written──> DELETING ──> ENDED
      │                │                       │                             │
      │                └── failed: release/bury ────────────────────────────────────> ENDED
      └── handed back / connection lost ──────────────────────────────────────────────> ENDED
                                   connection lost: SUCCEEDED/DELETING ──> ORPHANED ──> ENDED
                                   (deleted again after reconnecting)

``ENDED`` is reached once, through :meth:`Job.end`, which sets ``outcome`` and ``reason``: the
observers' ``job_finished`` sees every job exactly once there.
"""

from __future__ import annotations

import re
import time
from enum import Enum

from beanfleet.wire.jobref import JobRef
from beanfleet.work.handlers import JobInfo
from beanfleet.work.outcome import attempt_of

HEARTBEAT_AFTER = 0.5  # touch only jobs still running this long after they started


class State(Enum):
    HELD = "held"  # reserved here, not started (prefetched, or reserved while another ran)
    RUNNING = "running"  # taken by the loop: its handler runs (the heartbeat touches it)
    SUCCEEDED = "succeeded"  # handler returned; its delete is not written yet
    DELETING = "deleting"  # delete written, reply not read
    ORPHANED = "orphaned"  # succeeded; connection lost before DELETED: delete it again
    ENDED = "ended"  # outcome known and logged (``outcome``)


class Counters(Enum):
    """The ``stats-job`` exchange of one job (asked at most once: its counters hold still
    while it is reserved here)."""

    UNDECIDED = "undecided"  # nobody asked yet whether they are needed before the start
    SKIPPED = "skipped"  # not needed before the start (asked later only if something needs them)
    ASKED = "asked"  # stats-job written, reply owed
    KNOWN = "known"  # ``stats`` holds them
    GONE = "gone"  # NOT_FOUND: its TTR ran out, the job is not ours any more


# The members as module constants: on Python 3.11 ``State.HELD`` costs a descriptor call
# (~0.1 µs), and the loop compares states a dozen times per job.
HELD, RUNNING, SUCCEEDED, DELETING, ORPHANED, ENDED = State
UNDECIDED, SKIPPED, ASKED, KNOWN, GONE = Counters

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


class Job:
    """A reserved job.  ``id`` is its number on ``server`` (what commands carry); ``ref`` is
    the id users see (the number with one server, ``SERVER/ID`` with several)."""

    __slots__ = (
        "body",
        "counters",
        "delay",
        "delete_written",
        "detail",
        "duration",
        "id",
        "info",
        "next_touch",
        "outcome",
        "reason",
        "ref",
        "server",
        "state",
        "stats",
        "tube",
        "waited",
    )

    def __init__(
        self, server: str, job_id: int, ref: int | JobRef, body: bytes, tube: str | None
    ) -> None:
        self.server = server
        self.id = job_id
        self.ref = ref
        self.body = body
        self.tube = tube  # None: several tubes watched, learned from its counters
        self.state = HELD
        self.counters = UNDECIDED
        self.stats: dict[str, int | str] | None = None
        self.waited = False  # its start waited a round trip for its own counters
        self.info: JobInfo | None = None
        self.duration: float | None = None  # handler run time
        self.delete_written = False  # the kernel has its delete (maybe unanswered)
        self.next_touch = 0.0
        self.outcome: str | None = None  # deleted | released | buried | returned | lost
        self.delay: int | None = None  # released: seconds until ready again
        self.reason: str | None = None
        self.detail: str | None = None  # a failure's traceback (json log only)

    def __repr__(self) -> str:
        return f"Job({self.ref}, {self.state.value}, counters={self.counters.value})"

    @property
    def attempt(self) -> int | None:
        return None if self.stats is None else attempt_of(self.stats)

    @property
    def priority(self) -> int:
        assert self.stats is not None
        return int(self.stats["pri"])

    def start(self) -> None:
        """Its handler starts now: the heartbeat counts from here."""
        assert self.state is HELD, self
        self.state = RUNNING
        self.next_touch = time.monotonic() + HEARTBEAT_AFTER

    def known(self, stats: dict[str, int | str] | None) -> None:
        """The stats-job reply: its counters, or None (NOT_FOUND)."""
        self.stats = stats
        self.counters = KNOWN if stats is not None else GONE

    def end(self, outcome: str, reason: str | None = None, delay: int | None = None) -> None:
        assert self.state is not ENDED, self
        self.state = ENDED
        self.outcome = outcome
        self.reason = reason
        self.delay = delay
