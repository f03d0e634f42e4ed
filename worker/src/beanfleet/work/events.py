"""How the job log, the per-host run records and the worker metrics observe the worker: one
small protocol of no-op hooks (like dramatiq's middleware), and the fan-out that calls them.

May import: ``work.job`` (the type of what the hooks see) and the stdlib.  Nothing here knows
who observes: ``beanfleet work`` (:mod:`beanfleet.cli.work`) wires the observers, and
``metrics/`` implements one without ``work/`` importing it.

Hooks run on the worker's threads: ``tick`` on the heartbeat thread, the others on the main
thread (``on_event`` on either).  They must be cheap (``job_started``/``job_finished`` run per
job) and must not raise, except where said.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from beanfleet.work.job import Job


class Observer:
    """Override the hooks you need; the others cost nothing (:class:`Observers` skips them)."""

    def attach(self, events: Observers) -> None:
        """Called once when the worker is made, with the fan-out (to report events)."""

    def worker_started(self, tubes: Sequence[str], servers: Sequence[str]) -> None:
        pass

    def connected(self, server: str) -> None:
        """A new connection to ``server`` watches the tubes (the first, or after a loss)."""

    def wants_counters(self, job: Job) -> bool:
        """Must ``job``'s counters (stats-job) be known before it starts?  Asked once per job,
        when the worker first sees it; any observer's True asks them."""
        return False

    def job_started(self, job: Job) -> None:
        """``job``'s handler is about to be called (its counters are known, or not needed)."""

    def job_finished(self, job: Job) -> None:
        """``job`` ended (``job.outcome``): once per reserved job, started or not."""

    def on_event(self, name: str, message: str, level: str, fields: dict[str, Any]) -> None:
        """A lifecycle line (connected, connection-lost, deadline-soon, stopping, ...)."""

    def tick(self) -> None:
        """Every few tens of milliseconds, from the heartbeat thread (flush what is queued).
        May raise: the heartbeat logs a failing observer once and goes on."""

    def worker_stopped(self, reason: str, jobs: int, *, recycled: bool, unfinished: bool) -> None:
        """The loop is over (``unfinished``: it left with a started job's outcome unsent)."""


def _overridden(observers: Sequence[Observer], hook: str) -> tuple[Callable[..., Any], ...]:
    base = getattr(Observer, hook)
    return tuple(
        getattr(observer, hook)
        for observer in observers
        if getattr(type(observer), hook, base) is not base
    )


class Observers:
    """The fan-out: per hook, the bound methods that are overridden, resolved once."""

    def __init__(self, observers: Sequence[Observer]) -> None:
        self.members = tuple(observers)
        self._started = _overridden(self.members, "worker_started")
        self._connected = _overridden(self.members, "connected")
        self._wants = _overridden(self.members, "wants_counters")
        self.starting = _overridden(self.members, "job_started")  # called per job
        self.finished = _overridden(self.members, "job_finished")  # called per job
        self._event = _overridden(self.members, "on_event")
        self.ticks = _overridden(self.members, "tick")
        self._stopped = _overridden(self.members, "worker_stopped")
        if len(self._wants) <= 1:  # the common case, on the hot path: one call, not two
            self.wants_counters = self._wants[0] if self._wants else self._no_counters  # type: ignore[method-assign]
        for observer in self.members:
            observer.attach(self)

    def worker_started(self, tubes: Sequence[str], servers: Sequence[str]) -> None:
        for hook in self._started:
            hook(tubes, servers)

    def connected(self, server: str) -> None:
        for hook in self._connected:
            hook(server)

    def wants_counters(self, job: Job) -> bool:
        # Every observer is asked (no short cut): the metrics' sample must see each job.
        wanted = False
        for hook in self._wants:
            wanted = hook(job) or wanted
        return wanted

    def _no_counters(self, job: Job) -> bool:
        return False

    def job_started(self, job: Job) -> None:
        for hook in self.starting:
            hook(job)

    def job_finished(self, job: Job) -> None:
        for hook in self.finished:
            hook(job)

    def event(self, name: str, message: str, level: str = "info", **fields: Any) -> None:
        for hook in self._event:
            hook(name, message, level, fields)

    def worker_stopped(self, reason: str, jobs: int, *, recycled: bool, unfinished: bool) -> None:
        for hook in self._stopped:
            hook(reason, jobs, recycled=recycled, unfinished=unfinished)
