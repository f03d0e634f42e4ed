"""Admin across several servers: one :class:`~beanfleet.admin.Admin` each, results kept
per server, a server that cannot be reached reported by name without hiding the others.

A tube exists on a server only while it has jobs or users there, so a tube unknown to some
servers is normal: it counts as empty on those.  It is an error only when no server knows it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

from beanfleet.admin.queries import Admin, TubeStats
from beanfleet.errors import BeanfleetError, ConnectError, JobNotFound, UnknownTube

T = TypeVar("T")


@dataclass
class PerServer(Generic[T]):
    """What each server answered, and why the others did not (one line each)."""

    results: dict[str, T] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def error(self) -> BeanfleetError | None:
        """One error naming every server that failed, or None."""
        if not self.failures:
            return None
        return ConnectError("; ".join(self.failures.values()))


class AdminGroup:
    """An Admin per server; close with ``with`` like Admin."""

    def __init__(self, servers: Sequence[str], *, timeout: float = 5.0, scan_budget: int) -> None:
        self.servers = list(servers)
        self.admins = {s: Admin(s, timeout=timeout, scan_budget=scan_budget) for s in servers}

    def __enter__(self) -> AdminGroup:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        for admin in self.admins.values():
            admin.close()

    def each(
        self, action: Callable[[Admin], T], *, tube: str | None = None, parallel: bool = False
    ) -> PerServer[T]:
        """``action`` on every server.  Connection failures are collected; with ``tube``,
        servers that do not know it are left out, and UnknownTube is raised if none does.

        ``parallel``: all servers at once (each Admin in its own thread), so frozen servers
        cost one timeout in all, not one each; results keep the servers' order."""

        def attempt(admin: Admin) -> tuple[T | None, ConnectError | UnknownTube | None]:
            try:
                return action(admin), None
            except (ConnectError, UnknownTube) as exc:
                return None, exc

        admins = list(self.admins.values())
        if parallel and len(admins) > 1:
            with ThreadPoolExecutor(max_workers=len(admins)) as pool:
                outcomes = list(pool.map(attempt, admins))
        else:
            outcomes = [attempt(admin) for admin in admins]
        found: PerServer[T] = PerServer()
        unknown = 0
        for server, (value, error) in zip(self.admins, outcomes, strict=True):
            if error is None:
                found.results[server] = cast(T, value)
            elif isinstance(error, ConnectError):
                found.failures[server] = str(error)
            elif tube is None:
                raise error
            else:
                unknown += 1
        if tube is not None and unknown == len(self.admins):
            raise UnknownTube(f"unknown tube {tube!r} on every server ({', '.join(self.servers)})")
        return found

    def admin_for(self, server: str) -> Admin:
        return self.admins[server]


def optional(action: Callable[[Admin], T]) -> Callable[[Admin], T | None]:
    """``action``, with JobNotFound as None (the job is not on that server)."""

    def run(admin: Admin) -> T | None:
        try:
            return action(admin)
        except JobNotFound:
            return None

    return run


def sum_tube_stats(name: str, parts: Sequence[TubeStats]) -> TubeStats:
    """One tube over all servers: counts summed, ages the oldest, paused if paused anywhere.

    The next-ready and oldest-ready ids are left out: each names a job on one server only.
    """

    def total(attr: str) -> int:
        return sum(int(getattr(p, attr)) for p in parts)

    def oldest(attr: str) -> int | None:
        ages = [getattr(p, attr) for p in parts if getattr(p, attr) is not None]
        return max(ages) if ages else None

    return TubeStats(
        name=name,
        ready=total("ready"),
        reserved=total("reserved"),
        delayed=total("delayed"),
        buried=total("buried"),
        urgent=total("urgent"),
        waiting=total("waiting"),
        watching=total("watching"),
        using=total("using"),
        paused=any(p.paused for p in parts),
        pause_time_left=max((p.pause_time_left for p in parts), default=0),
        total=total("total"),
        deletes=total("deletes"),
        pauses=total("pauses"),
        next_ready_age=oldest("next_ready_age"),
        oldest_ready_age=oldest("oldest_ready_age"),
        oldest_ready_exact=all(p.oldest_ready_exact for p in parts),
    )
