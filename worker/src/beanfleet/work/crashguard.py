"""Per-host records of the job each worker process started last, so catching a crash loop
costs no round trip on the success path.

Each worker owns one small file, ``<state dir>/running/<server>/<pid>``, open for its whole
life.  Before a handler starts it overwrites the file in place with the job's id: one
``pwrite`` of a fixed-width line, no create, unlink or fsync (a per-job file cost more in
file-system metadata than the ``stats-job`` round trip it replaces).  A worker that exits
normally removes its file; one that dies leaves it, naming the job it was running (so does
one that an exception ends with a job unfinished).

A worker reads the other workers' files when it starts and again at most every
``RESCAN`` seconds, and treats their job ids as suspects.  Only a suspect job pays a
``stats-job`` before it starts, to count its reservations that ended with no outcome
(:func:`beanfleet.work.outcome.unfinished_of`) and bury a crash loop; only a suspect job can be
buried that way, whatever else asked its counters.  A record is the one evidence that a job
*started* on a worker that may have died: a job held by prefetch (reserved, not started)
goes back the same way when its worker dies, and no record names it.  A live worker's file
names the job it runs (reserved by it: nobody else gets it) or its last one (finished): at
worst one extra ``stats-job`` for a retry of it.
Every worker process on the host shares the directory, so a restarted worker (a new pid)
sees what its predecessor left; the server's address is part of the path because job ids
are only unique per beanstalkd.

:class:`CrashGuard` is how the worker uses the records: an observer (:mod:`.events`) that
marks each start, asks a suspect job's counters before it starts and closes the records when
the worker stops, plus :meth:`CrashGuard.suspect` for the crash-loop rule in the loop.

May import: ``work.events``, ``wire.client`` (error text) and the stdlib.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from pathlib import Path

from beanfleet.errors import ConfigError
from beanfleet.names import parse_server
from beanfleet.wire.client import describe_os_error
from beanfleet.work.events import Observer, Observers
from beanfleet.work.job import Job

STATE_DIR_ENV = "BEANFLEET_STATE_DIR"
PRUNE_AGE = 24 * 3600.0  # a crashed job returns to ready at once; a day covers any backlog
RESCAN = 1.0  # seconds between reads of the other workers' files
_WIDTH = 20  # digits of a job id (beanstalkd ids are 64-bit)


def default_state_dir() -> str:
    """``$BEANFLEET_STATE_DIR``, else systemd's ``$STATE_DIRECTORY`` (StateDirectory=), else
    the working directory (supervisor's ``directory=``)."""
    chosen = os.environ.get(STATE_DIR_ENV) or os.environ.get("STATE_DIRECTORY") or ""
    # systemd passes a colon-separated list when a unit has several state directories.
    return chosen.split(":")[0] or os.getcwd()


def read_record(path: str | os.PathLike[str]) -> int | None:
    """The job id in a record file, or None (empty, being written, not a record)."""
    try:
        with open(path, "rb") as f:
            text = f.read(64).strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class RunRecords:
    """This worker's record and what it knows of the others' (one beanstalkd server)."""

    def __init__(self, state_dir: str | os.PathLike[str], host: str, port: int) -> None:
        server = f"{host}_{port}".replace("/", "_")  # a directory name, whatever the host
        self.directory = Path(state_dir) / "running" / server
        self.directory.mkdir(parents=True, exist_ok=True)
        self.own = self.directory / str(os.getpid())
        self.suspects: set[int] = set()
        # Read before claiming our file: a restarted worker may get its predecessor's pid
        # (containers), and that file is the evidence.
        self.scan(include_own=True)
        self._fd = os.open(self.own, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o640)

    def scan(self, include_own: bool = False) -> None:
        suspects: set[int] = set()
        own = "" if include_own else str(self.own)
        for entry in os.scandir(self.directory):
            if entry.name.isdigit() and entry.path != own:
                job_id = read_record(entry.path)
                if job_id is not None:
                    suspects.add(job_id)
        self.suspects = suspects
        self._next_scan = time.monotonic() + RESCAN

    def suspect(self, job_id: int) -> bool:
        """True if another worker on this host started the job and may have died in it."""
        if time.monotonic() >= self._next_scan:
            self.scan()
        return int(job_id) in self.suspects  # the records hold ids on this server

    def mark(self, job_id: int) -> None:
        os.pwrite(self._fd, b"%*d\n" % (_WIDTH, job_id), 0)

    def clear(self, job_id: int) -> None:
        """The job was buried as a crash loop: no more suspicion here."""
        self.suspects.discard(int(job_id))

    def close(self, keep: bool = False) -> None:
        """A normal exit: the last job did not kill this worker, so no record is left.
        ``keep``: the worker leaves with a job it started unfinished (an exception out of
        the worker loop), so the record stays as the evidence a death would leave."""
        if self._fd < 0:
            return
        os.close(self._fd)
        self._fd = -1
        if keep:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.own)

    def prune(self, max_age: float = PRUNE_AGE) -> dict[int, list[Path]]:
        """Remove other workers' files older than ``max_age`` seconds; return the others by
        the job id they name."""
        cutoff = time.time() - max_age
        named: dict[int, list[Path]] = {}
        for entry in os.scandir(self.directory):
            if not entry.name.isdigit() or entry.path == str(self.own):
                continue
            try:
                old = entry.stat().st_mtime < cutoff
            except FileNotFoundError:
                continue
            job_id = read_record(entry.path)
            if old:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
            elif job_id is not None:  # empty: a worker that has not started a job yet
                named.setdefault(job_id, []).append(Path(entry.path))
        return named


class CrashGuard(Observer):
    """The run records of one worker process, one :class:`RunRecords` per server."""

    def __init__(self, state_dir: str | os.PathLike[str], servers: Sequence[str]) -> None:
        try:
            self.records = {
                server: RunRecords(state_dir, *parse_server(server)) for server in servers
            }
        except OSError as exc:
            raise ConfigError(f"cannot use state directory {state_dir}: {exc}") from None
        self._events: Observers | None = None

    def attach(self, events: Observers) -> None:
        self._events = events

    def suspect(self, job: Job) -> bool:
        """Another worker on this host started ``job`` and may have died in it."""
        return self.records[job.server].suspect(job.id)

    def wants_counters(self, job: Job) -> bool:
        return self.records[job.server].suspect(job.id)

    def clear(self, job: Job) -> None:
        """``job`` was buried as a crash loop: no more suspicion here."""
        self.records[job.server].clear(job.id)

    def prune(self, server: str) -> dict[int, list[Path]]:
        return self.records[server].prune()

    def gone(self, server: str, job_id: int, paths: Sequence[Path]) -> None:
        """beanstalkd no longer has the job the records at ``paths`` name."""
        self.records[server].clear(job_id)
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def job_started(self, job: Job) -> None:
        records = self.records[job.server]
        try:
            records.mark(job.id)  # a worker that dies from here on leaves it behind
        except OSError as exc:
            # The job runs all the same: only a crash loop would go unnoticed on this host
            # (the counters still count its starts once a record is found).
            if self._events is not None:
                self._events.event(
                    "record-failed",
                    f"cannot write the running record of job {job.ref} in "
                    f"{records.directory}: {describe_os_error(exc)}",
                    level="warning",
                    job=job.ref,
                )

    def worker_stopped(self, reason: str, jobs: int, *, recycled: bool, unfinished: bool) -> None:
        for records in self.records.values():
            records.close(keep=unfinished)
