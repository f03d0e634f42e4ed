"""Job identity across several servers: ``SERVER/ID``.

beanstalkd numbers jobs per server, so with several servers job 1 exists once on each.  A
:class:`JobRef` is the id a multi-server producer returns and a multi-server worker hands
its handler: still an ``int`` (the id on its server, so ``%d`` and arithmetic work as
before) that prints as ``SERVER/ID`` and never equals the same number on another server.
With one server nothing changes: ids are plain ints and print as numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

from beanfleet.bounds import MAX_JOB_ID, parse_int, shown
from beanfleet.errors import ConfigError
from beanfleet.names import canonical_server


class JobRef(int):
    """A job id with the server that holds it; ``str()`` gives ``SERVER/ID``."""

    server: str

    def __new__(cls, server: str, job_id: int) -> Self:
        ref = super().__new__(cls, job_id)
        ref.server = server
        return ref

    @property
    def id(self) -> int:
        return int(self)

    def __str__(self) -> str:
        return f"{self.server}/{int(self)}"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec) if not spec or spec[-1:] == "s" else format(int(self), spec)

    def __repr__(self) -> str:
        return f"JobRef({self.server!r}, {int(self)})"

    def __eq__(self, other: object) -> bool:
        # Job 1 on server a is not job 1 on server b; a plain int compares by number, so a
        # set of ids read from one server's records still finds the job.
        if isinstance(other, JobRef):
            return self.server == other.server and int(self) == int(other)
        return int(self) == other

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return int.__hash__(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (JobRef, (self.server, int(self)))


def parse_job_id(text: str) -> tuple[str | None, int]:
    """``ID`` or ``SERVER/ID`` to (server in canonical spelling, or None; id); ConfigError
    if malformed or beyond beanstalkd's 64-bit ids."""
    server, sep, number = text.strip().rpartition("/")
    if not (number.isascii() and number.isdigit()):
        raise ConfigError(f"invalid job id {shown(text)}: expected ID or SERVER/ID (ID >= 1)")
    job_id = parse_int(number, "job id", low=1, high=MAX_JOB_ID)
    if not sep:
        return None, job_id
    return canonical_server(server), job_id


def locate_job(text: str, servers: Sequence[str]) -> tuple[str, int]:
    """The server and id a job id names; a bare id is enough only with one server."""
    server, job_id = parse_job_id(text)
    if server is None:
        if len(servers) > 1:
            raise ConfigError(
                f"job id {job_id} is ambiguous with {len(servers)} servers: give SERVER/ID "
                f"(e.g. {servers[0]}/{job_id})"
            )
        return servers[0], job_id
    if server not in servers:
        raise ConfigError(
            f"job {text} is on server {server}, which is not one of {', '.join(servers)}"
        )
    return server, job_id


def job_label(server: str, job_id: int, several: bool) -> int:
    """The id as users see it: a :class:`JobRef` with several servers, else the plain id."""
    return JobRef(server, job_id) if several else job_id
