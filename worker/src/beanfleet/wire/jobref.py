"""Job identity across several servers: ``SERVER/ID``, and what id a user is given.

beanstalkd numbers jobs per server, so with several servers job 1 exists once on each.  A
:class:`JobRef` is a value ``(server, id)``: equal only to a JobRef with the same server and
id (never to a bare int, so equality is transitive), hashable, printed as ``SERVER/ID``, and
usable where an id number is (``%d``, ``int()``, greenstalk calls) through ``__index__``.

:func:`public_id` is the one place that decides what a user gets for a job: with one server
the bare id, as always (it prints bare, and ``job_id == 42`` keeps working); with several a
JobRef.  Nothing else looks at the server count to shape an id.

May import: the base modules (``bounds``, ``errors``, ``names``) and the standard library.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from beanfleet.bounds import MAX_JOB_ID, parse_int, shown
from beanfleet.errors import ConfigError
from beanfleet.names import canonical_server

_INT_TYPES = frozenset("bcdnoxX")


@dataclass(frozen=True, slots=True)
class JobRef:
    """A job id with the server that holds it; ``str()`` gives ``SERVER/ID``."""

    server: str
    id: int

    def __int__(self) -> int:
        return self.id

    def __index__(self) -> int:
        return self.id

    def __str__(self) -> str:
        return f"{self.server}/{self.id}"

    def __format__(self, spec: str) -> str:
        # f"{ref}" and f"{ref:>20}" are SERVER/ID; an integer type ("d", "08d", "x") formats
        # the id on its server.
        return format(self.id, spec) if spec[-1:] in _INT_TYPES else format(str(self), spec)


def public_id(servers: Sequence[str], server: str, job_id: int) -> int | JobRef:
    """The id a user is given for job ``job_id`` on ``server``: the bare id with one server
    (ids print bare, as they always have), a :class:`JobRef` with several."""
    return job_id if len(servers) == 1 else JobRef(server, job_id)


def public_ids(
    servers: Sequence[str],
    ids: list[int | None],
    placed: Sequence[tuple[str, Sequence[int]]],
) -> list[int | JobRef | None]:
    """:func:`public_id` for a bulk put: ``ids[i]`` is item ``i``'s id on the server whose
    share (``placed``: server, item indexes) held it, None if not enqueued.  One server: the
    list as it is, with no work per item (bulk puts are benchmarked)."""
    if len(servers) == 1:
        return ids  # type: ignore[return-value]  # list is invariant; the same values
    refs: list[int | JobRef | None] = [None] * len(ids)
    for server, share in placed:
        for index in share:
            job_id = ids[index]
            if job_id is not None and refs[index] is None:
                refs[index] = JobRef(server, job_id)
    return refs


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
