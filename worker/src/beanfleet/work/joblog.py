"""The worker's log: one line per job outcome plus a few lifecycle events, on stderr.

``text`` is logfmt-like (``key=value``, values with spaces quoted) for people and grep;
``json`` is one object per line for log shippers.

Job lines are written per job on the hot path, so they are cheap: no ``logging`` module,
and they are queued and written in batches by :meth:`JobLog.flush`, which the worker's
monitor thread calls every few tens of milliseconds (one write per batch instead of one
per job).  Lifecycle events are rare and written at once, after any queued job lines.

:class:`JobLog` observes the worker (:mod:`.events`): a job's line when it ends, the
started/stopped lines, and the flush on every heartbeat tick.

May import: ``work.events``, ``work.job``, ``display`` and the stdlib.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TextIO

from beanfleet.display import for_terminal, json_safe
from beanfleet.wire.jobref import JobRef
from beanfleet.work.events import Observer
from beanfleet.work.job import Job

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

_LEVELS = {"deleted": "info", "released": "warning", "buried": "error"}


@dataclass(slots=True)
class JobOutcome:
    """What happened to one reserved job."""

    job_id: int | JobRef
    tube: str | None  # None: the tube was never learned (connection lost first)
    attempt: int | None  # None: not fetched (it costs a round trip, see worker.py)
    duration: float | None  # handler run time; None when no handler ran
    outcome: str  # deleted | released | buried | returned | lost
    delay: int | None = None  # released: seconds until ready again
    reason: str | None = None
    traceback: str | None = None  # json format only; text keeps one line per job


def _json_id(value: object) -> object:
    """A job id for JSON: a number with one server, a "SERVER/ID" string (a JobRef) with
    several.  Plain JSON scalars pass as they are."""
    if value is None or type(value) in (int, float, str, bool):
        return value
    return str(value)


def _text_value(value: object) -> str:
    text = str(value)
    # A reason can quote a job's bytes (a handler's ValueError(data)): never raw on stderr.
    if not text or any(c in text for c in ' "=\n\t') or for_terminal(text) != text:
        return json_safe(json.dumps(text, ensure_ascii=False))
    return text


class JobLog(Observer):
    def __init__(self, fmt: LogFormat = "text", stream: TextIO | None = None) -> None:
        if fmt not in LOG_FORMATS:
            raise ValueError(f"unknown log format {fmt!r}")
        self.fmt = fmt
        self._stream = stream
        self._queue: deque[str] = deque()  # append/popleft are atomic: no lock per line
        self._write_lock = threading.Lock()
        # (millisecond, text) and (second, text): one attribute each, swapped atomically
        # (two threads log).  Busy workers log many lines per millisecond.
        self._milli: tuple[int, str] = (-1, "")
        self._second: tuple[int, str] = (-1, "")

    @property
    def stream(self) -> TextIO:
        # Resolved late so a test harness that swaps sys.stderr gets the lines.
        return self._stream if self._stream is not None else sys.stderr

    def _timestamp(self) -> str:
        milli = int(time.time() * 1000)
        cached_milli, stamp = self._milli
        if milli == cached_milli:
            return stamp
        second, text = self._second
        if milli // 1000 != second:  # strftime once per second
            second = milli // 1000
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        stamp = f"{text}.{milli % 1000:03d}Z"
        self._milli = (milli, stamp)
        return stamp

    def deleted(
        self, job_id: int | JobRef, tube: str, attempt: int | None, duration: float
    ) -> None:
        """The hot path: same line as ``job()`` for a deleted job, at a third of the cost.

        Tube names cannot hold spaces, quotes, ``=`` or backslashes (beanstalkd's charset),
        so they go into both formats without quoting or escaping.
        """
        if self.fmt == "json":
            job = job_id if type(job_id) is int else f'"{job_id}"'  # SERVER/ID: a string
            self._queue.append(
                f'{{"ts": "{self._timestamp()}", "level": "info", "event": "job", '
                f'"job": {job}, "tube": "{tube}", '
                f'"attempt": {"null" if attempt is None else attempt}, '
                f'"duration": {round(duration, 6)}, "outcome": "deleted"}}'
            )
        else:
            self._queue.append(
                f"{self._timestamp()} info job={job_id} tube={tube} "
                f"attempt={'?' if attempt is None else attempt} "
                f"duration={duration:.3f}s outcome=deleted"
            )

    def job(self, result: JobOutcome) -> None:
        """Queue the line for one job outcome (written by the next :meth:`flush`)."""
        self._queue.append(self.format_job(result))

    def format_job(self, result: JobOutcome) -> str:
        level = _LEVELS.get(result.outcome, "warning")
        if self.fmt == "json":
            record: dict[str, object] = {
                "ts": self._timestamp(),
                "level": level,
                "event": "job",
                "job": _json_id(result.job_id),
                "tube": result.tube,
                "attempt": result.attempt,
                "duration": None if result.duration is None else round(result.duration, 6),
                "outcome": result.outcome,
            }
            if result.delay is not None:
                record["delay"] = result.delay
            if result.reason is not None:
                record["reason"] = result.reason
            if result.traceback is not None:
                record["traceback"] = result.traceback
            return json_safe(json.dumps(record, ensure_ascii=False))
        attempt = "?" if result.attempt is None else result.attempt
        line = (
            f"{self._timestamp()} {level} job={result.job_id} "
            f"tube={_text_value(result.tube or '?')} attempt={attempt}"
        )
        if result.duration is not None:
            line += f" duration={result.duration:.3f}s"
        line += f" outcome={result.outcome}"
        if result.delay is not None:
            line += f" delay={result.delay}s"
        if result.reason is not None:
            line += f" reason={_text_value(result.reason)}"
        return line

    # -- as an observer of the worker ---------------------------------------------------------

    def worker_started(self, tubes: Sequence[str], servers: Sequence[str]) -> None:
        # The one place the started line differs by the server count (output formatting).
        several = f", servers {', '.join(servers)}" if len(servers) > 1 else ""
        self.event(
            "started",
            f"worker started, tubes {', '.join(tubes)}{several}",
            pid=os.getpid(),
            server=",".join(servers),
        )

    def job_finished(self, job: Job) -> None:
        info = job.info
        if job.outcome == "deleted" and job.reason is None and info is not None:
            assert job.duration is not None
            self.deleted(job.ref, info.tube, info.known_attempt, job.duration)
            return
        self._queue.append(
            self.format_job(
                JobOutcome(
                    job.ref,
                    job.tube,
                    job.attempt,
                    job.duration,
                    job.outcome or "lost",
                    job.delay,
                    job.reason,
                    job.detail,
                )
            )
        )

    def tick(self) -> None:
        self.flush()

    def worker_stopped(self, reason: str, jobs: int, *, recycled: bool, unfinished: bool) -> None:
        self.flush()
        self.event("stopped", f"worker exiting: {reason}", jobs=jobs)

    def on_event(self, name: str, message: str, level: str, fields: dict[str, Any]) -> None:
        self.event(name, message, level, **fields)

    def event(self, event: str, message: str, level: str = "info", **fields: object) -> None:
        """A lifecycle line (started, connected, connection lost, ...), written at once."""
        if self.fmt == "json":
            record: dict[str, object] = {
                "ts": self._timestamp(),
                "level": level,
                "event": event,
                "message": message,
            }
            record.update({key: _json_id(value) for key, value in fields.items()})
            line = json_safe(json.dumps(record, ensure_ascii=False, default=str))
        else:
            extra = "".join(f" {key}={_text_value(value)}" for key, value in fields.items())
            text = _text_value(message)
            line = f"{self._timestamp()} {level} event={event}{extra} message={text}"
        self._queue.append(line)
        self.flush()

    def flush(self) -> None:
        """Write every queued line (one write) and flush the stream."""
        with self._write_lock:
            queue = self._queue
            # popleft per line (not a swap of the deque): safe while the main thread appends.
            lines = [queue.popleft() for _ in range(len(queue))]
            if not lines:
                return
            # A closed or broken stderr (EPIPE) must not kill the worker or stop its exit.
            with contextlib.suppress(OSError, ValueError):
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
