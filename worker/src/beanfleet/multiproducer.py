"""Putting jobs on several beanstalkd servers: placement, failover, "maybe inserted".

:class:`beanfleet.producer.Producer` hands its work here when it has more than one server.
Each server has one pipelining connection (opened on first need, its ``use`` replayed after
every reconnect).  Where a job goes is :mod:`beanfleet.placement`'s choice.

A put is moved to another server only when it certainly did not enter the first one: the
connection could not be opened or was found closed before the put was sent (a server
killed while the link was idle), the command could not be written in full, or the server
refused it (DRAINING, OUT_OF_MEMORY).  A connection lost after the put was written and
before its reply leaves the job maybe inserted (beanstalkd may have logged it to its binlog
and died before answering): that is an error, :class:`~beanfleet.errors.MaybeInserted`,
unless the producer was made with ``at_least_once=True``, which puts it again elsewhere
(and may so run it twice).
"""

from __future__ import annotations

import contextlib
import select
import socket
from collections import deque
from collections.abc import Sequence

import greenstalk

from beanfleet.client import describe_os_error, open_connection
from beanfleet.errors import (
    AllServersDown,
    BeanfleetError,
    ConnectError,
    JobTooBig,
    MaybeInserted,
    ServerFull,
)
from beanfleet.jobref import JobRef
from beanfleet.placement import Placement, Placer
from beanfleet.protocol import CRLF, Connection

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

    def __init__(self, server: str, timeout: float) -> None:
        self.server = server
        self.timeout = timeout
        self.conn: Connection | None = None
        self.tube = greenstalk.DEFAULT_TUBE
        self.max_job_size = 0

    def ready(self, tube: str) -> Connection:
        """The open link, using ``tube``; ConnectError/OSError if that fails (nothing sent
        that could insert a job)."""
        conn = self.conn
        handshake = min(self.timeout, HANDSHAKE_TIMEOUT)
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
        if shortened:  # (settimeout is a syscall: not on every put)
            conn.sock.settimeout(self.timeout)  # a frozen server must not hang a put
        return conn

    def drop(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            with contextlib.suppress(OSError):
                conn.close()


class ServersProducer:
    """Puts on several servers; ids come back as :class:`~beanfleet.jobref.JobRef`."""

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
        refuses or loses goes to the servers not yet tried."""
        head = b"put %d %d %d " % (pri, delay, ttr)
        results: list[JobRef | None] = [None] * len(bodies)
        pending = list(range(len(bodies)))
        reasons: list[str] = []
        maybe = 0
        tried: set[str] = set()
        while pending:
            order = [s for s in self.placer.order(tube) if s not in tried]
            if not order:
                break
            targets = order if self.placer.placement == "spread" else order[:1]
            awake = [s for s in targets if not self.placer.health.resting(s)] or targets[:1]
            share = -(-len(pending) // len(awake))
            chunks = [pending[i : i + share] for i in range(0, len(pending), share)]
            pending = []
            for server, chunk in zip(awake, chunks, strict=False):
                tried.add(server)
                link = self.links[server]
                left, lost, why = self._put_share(
                    link, tube, head, bodies, chunk, results, batch_size
                )
                if why is not None:
                    reasons.append(why)
                if lost and not self.at_least_once:
                    maybe += len(lost)
                else:
                    left = lost + left
                pending.extend(left)
            pending.sort()
        done = [ref for ref in results if ref is not None]
        if len(done) == len(bodies):
            return done
        summary = f"{len(done)} of {len(bodies)} jobs were enqueued"
        if maybe:
            raise MaybeInserted(
                f"{summary}, {maybe} maybe inserted (connection lost before their replies; "
                f"not put again): {'; '.join(reasons)}",
                reasons[0].partition(": ")[0] if reasons else "",
            )
        raise AllServersDown(_none_took(f"every job ({summary})", reasons))

    def _put_share(
        self,
        link: ServerLink,
        tube: str,
        head: bytes,
        bodies: list[bytes],
        share: list[int],
        results: list[JobRef | None],
        batch_size: int,
    ) -> tuple[list[int], list[int], str | None]:
        """Put ``share`` (indexes into ``bodies``) on ``link``'s server, filling
        ``results``.  Returns (not inserted, maybe inserted, why the server stopped)."""
        try:
            conn = link.ready(tube)
        except ConnectError as exc:
            return share, [], self._failed(link, str(exc).rpartition(": ")[2])
        except (OSError, greenstalk.Error) as exc:
            return share, [], self._failed(link, _why(exc))
        for index in share:
            if len(bodies[index]) > link.max_job_size:
                raise JobTooBig(len(bodies[index]), link.max_job_size, index)
        server = link.server
        refused: bytes | None = None
        in_flight: deque[list[int]] = deque()  # batches written, replies not read yet

        def collect() -> None:
            nonlocal refused
            part = in_flight[0]
            for index, line in zip(part, conn.read_lines(len(part)), strict=True):
                if line.startswith(b"INSERTED "):
                    results[index] = JobRef(server, int(line[9:]))
                elif refused is None:
                    refused = line.partition(b" ")[0]
            in_flight.popleft()

        try:
            # Two batches in flight: one batch's replies are read while beanstalkd works on
            # the next (the scheme of the one-server put_many).
            for start in range(0, len(share), batch_size):
                part = share[start : start + batch_size]
                conn.sock.sendall(
                    b"".join(b"%s%d\r\n%s\r\n" % (head, len(bodies[i]), bodies[i]) for i in part)
                )
                in_flight.append(part)
                if len(in_flight) > 1:
                    collect()
                if refused is not None:
                    break
            while in_flight:
                collect()
        except OSError as exc:
            why = self._failed(link, f"connection lost ({_why(exc)})")
            lost = [i for part in in_flight for i in part]
            written = {i for i in lost}
            left = [i for i in share if results[i] is None and i not in written]
            return left, lost, why
        left = [i for i in share if results[i] is None]
        if refused is not None:
            text = _REFUSALS.get(refused, f"refused with {refused.decode(errors='replace')}")
            return left, [], self._failed(link, text)
        self.placer.health.succeeded(server)
        return [], [], None


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    return f"replied {type(exc).__name__}"


def _none_took(what: str, reasons: list[str]) -> str:
    return f"no beanstalkd server took {what}: {'; '.join(reasons) or 'no server tried'}"
