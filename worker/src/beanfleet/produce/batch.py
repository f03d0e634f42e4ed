"""The pipelined batch writer of a bulk put, and what a server that did not take a put said.

:func:`write_share` writes one server's share of a bulk put in batches, two in flight, and
reads the replies back into the caller's id list: the producer's one pipelined writer,
whatever the number of servers.

A server that did not take a put is told as a :class:`Failure`: the short reason a summary
over several servers joins, and the server's own one-line error.  :func:`none_took` turns
the failures of one call into the error the caller sees: the server's own error when one
server was asked (the errors a one-server user has always had: ``ConnectError``,
``ServerDraining``, ``ServerFull``), :class:`~beanfleet.errors.AllServersDown` naming each
one when several were.  That choice is error wording, made here only.

May import: ``wire`` and the base modules.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import NamedTuple, SupportsIndex

from beanfleet.errors import (
    AllServersDown,
    BeanfleetError,
    JobTooBig,
    MaybeInserted,
    PartialPut,
    ServerDraining,
    ServerFull,
)
from beanfleet.wire import commands
from beanfleet.wire.connection import Connection


class Failure(NamedTuple):
    """A server that did not take a put: why (short), and its own one-line error."""

    server: str
    why: str
    error: BeanfleetError


def refusal(server: str, status: bytes) -> Failure | None:
    """The failure for a put refused with ``status`` that another server may take (draining,
    out of memory, binlog disk full); None for a refusal that no other server would change."""
    if status == b"DRAINING":
        error: BeanfleetError = ServerDraining(
            f"beanstalkd at {server} is draining and accepts no new jobs"
        )
        return Failure(server, "draining", error)
    if status in (b"OUT_OF_MEMORY", b"INTERNAL_ERROR"):
        # beanstalkd 1.12 answers OUT_OF_MEMORY when its binlog cannot grow (disk full).
        reply = status.decode()
        error = ServerFull(
            f"beanstalkd at {server} refused the job with {reply}: "
            "binlog disk full or server out of memory; the job was not enqueued"
        )
        why = f"refused with {reply}" + (
            " (binlog disk full or out of memory)" if status == b"OUT_OF_MEMORY" else ""
        )
        return Failure(server, why, error)
    return None


def buried(server: str, job: object) -> Failure:
    """A put beanstalkd took but buried (out of memory): in the server, not queued."""
    why = "took a job but buried it (out of memory)"
    return Failure(
        server, why, ServerFull(f"beanstalkd at {server} buried the new job {job}: out of memory")
    )


def share_failure(
    server: str, status: bytes, job: object | None, size: int, limit: int, index: int
) -> Failure:
    """Why a server stopped a share at item ``index`` (``job``: its id if it was buried)."""
    failure = refusal(server, status)
    if failure is not None:
        return failure
    if status == b"BURIED" and job is not None:
        return buried(server, job)
    error = (
        JobTooBig(size, limit, index) if status == b"JOB_TOO_BIG" else refused_with(server, status)
    )
    return Failure(server, f"refused with {status.decode('ascii', 'replace')}", error)


def refused_with(server: str, status: bytes) -> BeanfleetError:
    """A put answered with a reply no failover explains."""
    return BeanfleetError(
        f"beanstalkd at {server} refused the put with {status.decode('ascii', 'replace')}"
    )


def told(failures: Sequence[Failure]) -> str:
    """The failures as one line: a lone server's own words, else each server's reason."""
    if len(failures) == 1:
        return str(failures[0].error)
    return "; ".join(f"{failure.server}: {failure.why}" for failure in failures)


def none_took(summary: str, failures: Sequence[Failure]) -> BeanfleetError:
    """The error when no server asked took the put: a lone server's own error (raised as
    it always was), else AllServersDown starting with ``summary`` and naming each server."""
    if len(failures) == 1:
        return failures[0].error
    return AllServersDown(f"{summary}: {told(failures) or 'no server tried'}")


def maybe_inserted(failures: Sequence[Failure], server: str) -> MaybeInserted:
    """Every item is in or maybe in: the replies lost with ``server``'s connection."""
    return MaybeInserted(told(failures), server)


class Batch:
    """One bulk put in progress: the bodies, where each item stands, and the failures."""

    def __init__(self, head: bytes, bodies: list[bytes], size: int) -> None:
        self.head = head
        self.bodies = bodies
        self.sizes = list(map(len, bodies))
        self.size = size
        self.ids: list[int | None] = [None] * len(bodies)  # as the servers answered them
        self.pending = list(range(len(bodies)))  # not yet placed, not maybe inserted
        self.placed: list[tuple[str, Sequence[int]]] = []  # (server, items it holds)
        self.maybe: list[int] = []
        self.maybe_server = ""
        self.failures: list[Failure] = []
        self.failed: set[str] = set()

    def fail(self, failure: Failure) -> None:
        self.failures.append(failure)
        self.failed.add(failure.server)

    def stopped(self, ids: Sequence[SupportsIndex | None]) -> BeanfleetError:
        """The error of a bulk put that did not place every item (``ids``: as users see
        them): the reason alone when nothing went in (the caller may put every item
        again), else :class:`~beanfleet.errors.PartialPut` saying which items did."""
        reason = none_took("no beanstalkd server took every job", self.failures)
        if not self.maybe and self.ids.count(None) == len(self.ids):
            if isinstance(reason, JobTooBig):
                return reason
            told = f"{reason} (0 of {len(self.ids)} jobs were enqueued)"
            error = type(reason)(told)
        else:
            if not self.pending:  # every item is in, or maybe in: the replies lost
                reason = maybe_inserted(self.failures, self.maybe_server)
            error = PartialPut(ids, self.maybe, reason)
        error.__cause__ = reason
        return error


class Written(NamedTuple):
    """How a share ended (its inserted ids are in the caller's list)."""

    refused: tuple[int, bytes] | None  # the first item beanstalkd refused, and its reply
    lost: list[int]  # written, reply lost with the connection: maybe inserted
    error: OSError | None  # what broke the connection


def write_share(
    conn: Connection,
    head: bytes,
    bodies: list[bytes],
    share: Sequence[int],
    batch_size: int,
    ids: list[int | None],
) -> Written:
    """Write the puts of ``share`` (indexes into ``bodies``; ``head`` is
    :func:`~beanfleet.wire.commands.put_head`) in batches on ``conn``, setting ``ids[i]`` for
    each item beanstalkd took.

    Two batches are in flight: one batch's replies are read while beanstalkd works on the
    next, so a bulk put costs no round trip per item.  Writing stops at the first refusal
    (the replies in flight are still read, so the link stays in step).  A batch counts as
    in flight from before its write: a write cut off midway may have delivered some puts.
    """
    refused: tuple[int, bytes] | None = None
    in_flight: deque[Sequence[int]] = deque()

    def collect() -> None:
        nonlocal refused
        part = in_flight[0]
        for index, line in zip(part, conn.read_lines(len(part)), strict=True):
            if line.startswith(b"INSERTED "):
                ids[index] = int(line[9:])
                continue
            status, _, value = line.partition(b" ")
            if status == b"BURIED" and value.isdigit():
                ids[index] = int(value)  # in, though buried (out of memory): not to put again
            if refused is None:
                refused = (index, status)
        in_flight.popleft()

    try:
        for start in range(0, len(share), batch_size):
            part = share[start : start + batch_size]
            in_flight.append(part)
            conn.write(commands.put_batch(head, bodies, part))
            if len(in_flight) > 1:
                collect()
            if refused is not None:
                break
        while in_flight:
            collect()
    except OSError as exc:
        return Written(refused, [i for part in in_flight for i in part], exc)
    return Written(refused, [], None)
