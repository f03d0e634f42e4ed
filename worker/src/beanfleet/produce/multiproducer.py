"""Putting jobs on several beanstalkd servers: placement, failover, "maybe inserted".

:class:`beanfleet.produce.producer.Producer` hands its work here when it has more than one server.
Each server has one pipelining connection (opened on first need, its ``use`` replayed after
every reconnect).  Where a job goes is :mod:`beanfleet.wire.servers`'s choice.

A put is moved to another server only when it certainly did not enter the first one: the
connection could not be opened or was found closed before the put was sent (a server
killed while the link was idle), the command could not be written in full, or the server
refused it (DRAINING, OUT_OF_MEMORY).  A connection lost after the put was written and
before its reply leaves the job maybe inserted (beanstalkd may have logged it to its binlog
and died before answering): that is an error, :class:`~beanfleet.errors.MaybeInserted`,
unless the producer was made with ``at_least_once=True``, which puts it again elsewhere
(and may so run it twice).

A bulk put (:meth:`ServersProducer.put_many`) splits its items over the servers; the share
of a server that refuses it or breaks midway goes to the servers that have not failed in
the same call, those that took their own share included.  When some items still could not
be placed, :class:`~beanfleet.errors.PartialPut` gives the id of each item enqueued, those
maybe inserted (replies lost with a connection) and those not enqueued.
"""

from __future__ import annotations

import contextlib
import select
import socket
from collections import deque
from collections.abc import Sequence
from typing import NamedTuple

import greenstalk

from beanfleet.errors import (
    AllServersDown,
    BeanfleetError,
    ConnectError,
    JobTooBig,
    MaybeInserted,
    PartialPut,
    ServerFull,
)
from beanfleet.wire.client import describe_os_error, open_connection
from beanfleet.wire.connection import CRLF, Connection
from beanfleet.wire.jobref import JobRef
from beanfleet.wire.servers import Placement, Placer

HANDSHAKE_TIMEOUT = 1.0  # connect, stats and use on a new link (seconds)

_REFUSALS = {
    b"DRAINING": "draining",
    b"OUT_OF_MEMORY": "refused with OUT_OF_MEMORY (binlog disk full or out of memory)",
    b"INTERNAL_ERROR": "refused with INTERNAL_ERROR",
}


def _closed(sock: socket.socket) -> bool:
    """True if the idle link has been closed by the other end (or holds stray bytes)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)  # an idle link has nothing to read: EOF, reset or out of step


class ServerLink:
    """One server's connection, the tube it uses, and its max-job-size."""

    def __init__(self, server: str, timeout: float, handshake: float = HANDSHAKE_TIMEOUT) -> None:
        self.server = server
        self.timeout = timeout
        self.handshake = min(timeout, handshake)
        self.conn: Connection | None = None
        self.tube = greenstalk.DEFAULT_TUBE
        self.max_job_size = 0

    def ready(self, tube: str) -> Connection:
        """The open link, using ``tube``; ConnectError/OSError if that fails (nothing sent
        that could insert a job)."""
        conn = self.conn
        handshake = self.handshake
        shortened = False
        if conn is not None and (conn.has_buffered() or _closed(conn.sock)):
            self.drop()
            conn = None
        if conn is None:
            # A frozen server (SIGSTOP, a paused container) completes the connect from its
            # listen backlog and never answers: the handshake, which a live server answers at
            # once, is bounded by HANDSHAKE_TIMEOUT, so probing a frozen server after its
            # rest costs each put that much, not the whole put timeout.
            conn = open_connection(self.server, timeout=handshake)
            conn.sock.settimeout(handshake)
            self.conn = conn
            self.tube = greenstalk.DEFAULT_TUBE
            self.max_job_size = int(conn.stats()["max-job-size"])
            shortened = True
        if self.tube != tube:
            if not shortened:
                conn.sock.settimeout(handshake)
                shortened = True
            conn.call(b"use " + tube.encode("ascii"), b"USING")  # replayed on every new link
            self.tube = tube
        if shortened and handshake != self.timeout:  # (a syscall: not on every put)
            conn.sock.settimeout(self.timeout)  # a frozen server must not hang a put
        return conn

    def drop(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            with contextlib.suppress(OSError):
                conn.close()


class ServersProducer:
    """Puts on several servers; ids come back as :class:`~beanfleet.wire.jobref.JobRef`."""

    def __init__(
        self,
        servers: Sequence[str],
        *,
        timeout: float,
        placement: Placement,
        at_least_once: bool,
    ) -> None:
        self.servers = list(servers)
        self.placer = Placer(self.servers, placement)
        self.at_least_once = at_least_once
        self.links = {server: ServerLink(server, timeout) for server in self.servers}

    def close(self) -> None:
        for link in self.links.values():
            link.drop()

    @property
    def max_job_size(self) -> int:
        """The smallest max-job-size of the servers reached so far (a job must fit any)."""
        known = [link.max_job_size for link in self.links.values() if link.max_job_size]
        return min(known) if known else 0

    def _failed(self, link: ServerLink, why: str) -> str:
        link.drop()
        self.placer.health.failed(link.server)
        return f"{link.server}: {why}"

    # -- one job -------------------------------------------------------------------------

    def put(self, tube: str, body: bytes, pri: int, delay: int, ttr: int) -> JobRef:
        command = Connection.put_command(body, pri, delay, ttr) + CRLF
        reasons: list[str] = []
        maybe: list[str] = []
        for server in self.placer.order(tube):
            link = self.links[server]
            try:
                conn = link.ready(tube)
            except ConnectError as exc:
                reasons.append(self._failed(link, str(exc).rpartition(": ")[2]))
                continue
            except (OSError, greenstalk.Error) as exc:
                reasons.append(self._failed(link, _why(exc)))
                continue
            if len(body) > link.max_job_size:
                raise JobTooBig(len(body), link.max_job_size)
            try:
                conn.sock.sendall(command)
            except OSError as exc:  # not written in full: beanstalkd cannot have the job
                reasons.append(self._failed(link, describe_os_error(exc)))
                continue
            try:
                status, values = conn.read_reply()
            except OSError as exc:
                why = self._failed(link, f"connection lost before the reply ({_why(exc)})")
                if not self.at_least_once:
                    raise MaybeInserted(
                        f"put to beanstalkd at {why}: the job may have been inserted there; "
                        "not put again (at-least-once was not asked for)",
                        server,
                    ) from exc
                maybe.append(server)
                reasons.append(why + ", maybe inserted, put again elsewhere")
                continue
            if status == b"INSERTED":
                self.placer.health.succeeded(server)
                return JobRef(server, int(values[0]))
            if status in _REFUSALS:
                reasons.append(self._failed(link, _REFUSALS[status]))
                continue
            if status == b"BURIED":  # in, but the server could not queue it: out of memory
                ref = JobRef(server, int(values[0]))
                raise ServerFull(f"beanstalkd at {server} buried the new job {ref}: out of memory")
            if status == b"JOB_TOO_BIG":
                raise JobTooBig(len(body), link.max_job_size)
            raise BeanfleetError(
                f"beanstalkd at {server} refused the put with {status.decode(errors='replace')}"
            )
        raise AllServersDown(_none_took("the job", reasons))

    # -- many jobs -----------------------------------------------------------------------

    def put_many(
        self, tube: str, bodies: list[bytes], pri: int, delay: int, ttr: int, batch_size: int
    ) -> list[JobRef]:
        """Pipelined per server: the items are split over the servers the placement
        names, each share written in batches on its server's link; a share a server
        refuses or loses goes to the servers that have not failed in this call (those
        that took their share included), until every item is in or every server failed.

        :class:`~beanfleet.errors.PartialPut` says which items went in when some did not."""
        head = b"put %d %d %d " % (pri, delay, ttr)
        raw: list[int | None] = [None] * len(bodies)  # ids as the servers answered them
        refs: list[JobRef | None] = [None] * len(bodies)
        pending = list(range(len(bodies)))
        reasons: list[str] = []
        maybe: list[int] = []
        maybe_server = ""
        failed: set[str] = set()
        try:
            while pending:
                order = [s for s in self.placer.order(tube) if s not in failed]
                if not order:
                    break
                targets = order if self.placer.placement == "spread" else order[:1]
                awake = [s for s in targets if not self.placer.health.resting(s)] or targets[:1]
                share = -(-len(pending) // len(awake))
                chunks = [pending[i : i + share] for i in range(0, len(pending), share)]
                pending = []
                for server, chunk in zip(awake, chunks, strict=False):
                    link = self.links[server]
                    left, lost, why = self._put_share(
                        link, tube, head, bodies, chunk, raw, batch_size
                    )
                    for index in chunk:
                        job_id = raw[index]
                        if job_id is not None and refs[index] is None:
                            refs[index] = JobRef(server, job_id)
                    if why is not None:
                        failed.add(server)
                        reasons.append(why)
                    if lost and not self.at_least_once:
                        maybe.extend(lost)
                        maybe_server = maybe_server or server
                    else:
                        left = lost + left
                    pending.extend(left)
                pending.sort()
        except JobTooBig as exc:  # a server with a smaller max-job-size, met midway
            if maybe or any(ref is not None for ref in refs):
                raise PartialPut(refs, maybe, exc) from exc
            raise
        done = sum(ref is not None for ref in refs)
        if done == len(bodies):
            return refs  # type: ignore[return-value]  # every item has its id
        if not done and not maybe:
            summary = f"0 of {len(bodies)} jobs were enqueued"
            raise AllServersDown(_none_took(f"every job ({summary})", reasons))
        reason: BeanfleetError
        if pending:
            reason = AllServersDown(_none_took("every job", reasons))
        else:
            reason = MaybeInserted("; ".join(reasons), maybe_server)
        raise PartialPut(refs, maybe, reason) from reason

    def _put_share(
        self,
        link: ServerLink,
        tube: str,
        head: bytes,
        bodies: list[bytes],
        share: list[int],
        ids: list[int | None],
        batch_size: int,
    ) -> tuple[list[int], list[int], str | None]:
        """Put ``share`` (indexes into ``bodies``) on ``link``'s server, filling ``ids``.
        Returns (not inserted, maybe inserted, why the server stopped)."""
        try:
            conn = link.ready(tube)
        except ConnectError as exc:
            return share, [], self._failed(link, str(exc).rpartition(": ")[2])
        except (OSError, greenstalk.Error) as exc:
            return share, [], self._failed(link, _why(exc))
        for index in share:
            if len(bodies[index]) > link.max_job_size:
                raise JobTooBig(len(bodies[index]), link.max_job_size, index)
        outcome = pipeline_puts(conn, head, bodies, share, batch_size, ids)
        lost = set(outcome.lost)
        left = [i for i in share if ids[i] is None and i not in lost]
        if outcome.error is not None:
            why = self._failed(link, f"connection lost ({_why(outcome.error)})")
            return left, outcome.lost, why
        if outcome.refused is not None:
            status = outcome.refused[1]
            text = _REFUSALS.get(status) or (
                "took a job but buried it (out of memory)"
                if status == b"BURIED"
                else f"refused with {status.decode(errors='replace')}"
            )
            return left, [], self._failed(link, text)
        self.placer.health.succeeded(link.server)
        return [], [], None


class Pipelined(NamedTuple):
    """How a pipelined share ended (its inserted ids are in the caller's list)."""

    refused: tuple[int, bytes] | None  # the first item beanstalkd refused, and its reply
    lost: list[int]  # written, reply lost with the connection: maybe inserted
    error: OSError | None  # what broke the connection


def pipeline_puts(
    conn: Connection,
    head: bytes,
    bodies: list[bytes],
    share: Sequence[int],
    batch_size: int,
    ids: list[int | None],
) -> Pipelined:
    """Write the puts of ``share`` (indexes into ``bodies``; ``head`` is ``put PRI DELAY
    TTR ``) in batches on ``conn``, setting ``ids[i]`` for each item beanstalkd took.

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
            conn.sock.sendall(
                b"".join([b"%s%d\r\n%s\r\n" % (head, len(bodies[i]), bodies[i]) for i in part])
            )
            if len(in_flight) > 1:
                collect()
            if refused is not None:
                break
        while in_flight:
            collect()
    except OSError as exc:
        return Pipelined(refused, [i for part in in_flight for i in part], exc)
    return Pipelined(refused, [], None)


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    return f"replied {type(exc).__name__}"


def _none_took(what: str, reasons: list[str]) -> str:
    return f"no beanstalkd server took {what}: {'; '.join(reasons) or 'no server tried'}"
