"""Per-host records of the jobs whose handler is running, so a crash loop costs nothing on
the success path.

Before a handler starts the worker writes ``<state dir>/running/<server>/<job id>`` (its pid;
one open/write/close, no fsync: a power loss takes the workers down with the records, and
the job's counters still count those starts).  When the handler returns, the record goes.
A record still there when the job is reserved again means a worker on this host died while
running it: only then does the worker pay a ``stats-job`` round trip to count the job's
starts (:func:`beanfleet.retry.attempt_of`) and bury a crash loop.

Every worker process on the host shares the directory, so a restarted worker (a new pid)
sees the records its predecessor left.  The server's address is part of the path because
job ids are only unique per beanstalkd.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

STATE_DIR_ENV = "BEANFLEET_STATE_DIR"
PRUNE_AGE = 24 * 3600.0  # a crashed job returns to ready at once; a day covers any backlog


def default_state_dir() -> str:
    """``$BEANFLEET_STATE_DIR``, else systemd's ``$STATE_DIRECTORY`` (StateDirectory=), else
    the working directory (supervisor's ``directory=``)."""
    chosen = os.environ.get(STATE_DIR_ENV) or os.environ.get("STATE_DIRECTORY") or ""
    # systemd passes a colon-separated list when a unit has several state directories.
    return chosen.split(":")[0] or os.getcwd()


class RunRecords:
    """The ``running`` records of one beanstalkd server on this host."""

    def __init__(self, state_dir: str | os.PathLike[str], host: str, port: int) -> None:
        server = f"{host}_{port}".replace("/", "_")  # a directory name, whatever the host
        self.directory = Path(state_dir) / "running" / server
        self.directory.mkdir(parents=True, exist_ok=True)
        self._prefix = str(self.directory) + os.sep
        self._pid = b"%d\n" % os.getpid()

    def path(self, job_id: int) -> str:
        return self._prefix + str(job_id)

    def exists(self, job_id: int) -> bool:
        """True if a worker on this host started the job and never saw its handler end."""
        return os.path.exists(self._prefix + str(job_id))

    def mark(self, job_id: int) -> None:
        path = self._prefix + str(job_id)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        try:
            fd = os.open(path, flags, 0o640)
        except FileNotFoundError:  # the directory was removed under us (a tmp cleaner)
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, flags, 0o640)
        try:
            os.write(fd, self._pid)
        finally:
            os.close(fd)

    def clear(self, job_id: int) -> None:
        # Missing: another worker pruned it, or the job had none (a crash-loop bury).
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._prefix + str(job_id))

    def job_ids(self) -> Iterator[int]:
        for entry in os.scandir(self.directory):
            if entry.name.isdigit():
                yield int(entry.name)

    def prune_old(self, max_age: float = PRUNE_AGE) -> list[int]:
        """Remove records older than ``max_age`` seconds; return the ids of the others."""
        cutoff = time.time() - max_age
        kept: list[int] = []
        for job_id in self.job_ids():
            try:
                if os.stat(self._prefix + str(job_id)).st_mtime < cutoff:
                    self.clear(job_id)
                else:
                    kept.append(job_id)
            except FileNotFoundError:
                pass
        return kept
