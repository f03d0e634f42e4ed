"""The set of servers a client talks to: one link each, where a job goes, which are resting.

A :class:`Link` is one server's pipelining connection, opened on first need with a short
handshake, its ``use`` replayed after every reconnect.  One server is a set of one: the
same links, placement and rests serve it (its placement order is itself).

Two placements:

``spread`` (the default)
    Round-robin over the servers, each producer starting at a random one so many producers
    do not all hit the first.  A refused put (draining, out of memory or binlog disk full)
    or a lost connection moves the job to the next server.

``tube``
    Each tube lives on one server, chosen by rendezvous hashing of the tube name over the
    server list: every producer with the same list picks the same server, and adding or
    removing a server moves only the tubes that hashed to it.  A tube's jobs then come out
    in its priority order, as with one server.  While that server is down its tubes go to
    their second choice (order holds again once it is back and the fallback jobs are done).

A server that failed rests for a backoff (doubling, capped, jittered) and is then tried
again; while it rests it is tried only after every other server (a last resort, so "all
down" is said only after each one was asked).  The rest is :class:`~beanfleet.wire.backoff.
Backoff`, the package's one capped, jittered doubling.

May import: greenstalk, the standard library, the rest of ``wire`` and the base modules.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import select
import socket
import time
from collections.abc import Sequence
from typing import Literal

import greenstalk

from beanfleet.errors import ConfigError
from beanfleet.wire import commands
from beanfleet.wire.backoff import Backoff
from beanfleet.wire.client import open_connection
from beanfleet.wire.connection import Connection

Placement = Literal["spread", "tube"]
PLACEMENTS: tuple[Placement, ...] = ("spread", "tube")

REST_FIRST = 0.5
REST_CAP = 15.0
HANDSHAKE_TIMEOUT = 1.0  # connect, stats and use on a new link (seconds)


def check_placement(value: str) -> Placement:
    for placement in PLACEMENTS:
        if value == placement:
            return placement
    raise ConfigError(f"invalid placement {value!r}: expected one of {', '.join(PLACEMENTS)}")


def rendezvous_order(tube: str, servers: Sequence[str]) -> list[str]:
    """``servers`` by descending hash of (server, tube): the tube's first choice first."""

    def score(server: str) -> bytes:
        return hashlib.blake2b(f"{server}\0{tube}".encode(), digest_size=8).digest()

    return sorted(servers, key=score, reverse=True)


class ServerHealth:
    """When each server may be asked again after a failure."""

    def __init__(self, servers: Sequence[str]) -> None:
        self._rest_until = dict.fromkeys(servers, 0.0)
        self._backoff = {server: Backoff(REST_FIRST, REST_CAP) for server in servers}
        self._rested: set[str] = set()  # failed since their last success (the put path's check)

    def resting(self, server: str, now: float | None = None) -> bool:
        return self._rest_until[server] > (time.monotonic() if now is None else now)

    def failed(self, server: str) -> float:
        """Rest ``server``; return for how long."""
        rest = self._backoff[server].failed()
        self._rest_until[server] = time.monotonic() + rest
        self._rested.add(server)
        return rest

    def succeeded(self, server: str) -> None:
        if server in self._rested:  # (once per put: nothing to do when all is well)
            self._rested.discard(server)
            self._rest_until[server] = 0.0
            self._backoff[server].succeeded()

    def healthy_first(self, ordered: list[str]) -> list[str]:
        """``ordered`` with the resting servers moved last, soonest back first (``ordered``
        itself when no server failed since its last success: callers do not change it)."""
        if not self._rested:
            return ordered
        now = time.monotonic()
        awake = [s for s in ordered if not self.resting(s, now)]
        asleep = sorted(
            (s for s in ordered if self.resting(s, now)), key=lambda s: self._rest_until[s]
        )
        return awake + asleep


class Placer:
    """The order in which to ask the servers for one put."""

    def __init__(self, servers: Sequence[str], placement: Placement) -> None:
        self.servers = list(servers)
        self.placement = check_placement(placement)
        self.health = ServerHealth(servers)
        self._next = random.randrange(len(self.servers))
        # Each round-robin turn's order, made once: a put asks for one per job.
        self._turns = [self.servers[i:] + self.servers[:i] for i in range(len(self.servers))]
        self._by_tube: dict[str, list[str]] = {}

    def order(self, tube: str) -> list[str]:
        """The servers to ask, in order (a list the caller must not change)."""
        if self.placement == "tube":
            ordered = self._by_tube.get(tube)
            if ordered is None:
                ordered = self._by_tube[tube] = rendezvous_order(tube, self.servers)
            return self.health.healthy_first(ordered)
        start = self._next
        self._next = (start + 1) % len(self.servers)
        return self.health.healthy_first(self._turns[start])


def _closed(sock: socket.socket) -> bool:
    """True if the idle link has been closed by the other end (or holds stray bytes)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)  # an idle link has nothing to read: EOF, reset or out of step


class Link:
    """One server's connection, the tube it uses, and its max-job-size.

    Every wait on it is bounded: the handshake (connect, ``stats``, ``use``) by
    ``min(timeout, HANDSHAKE_TIMEOUT)``, everything else by ``timeout``."""

    def __init__(self, server: str, timeout: float) -> None:
        self.server = server
        self.timeout = timeout
        self.handshake = min(timeout, HANDSHAKE_TIMEOUT)
        self.conn: Connection | None = None
        self.tube = greenstalk.DEFAULT_TUBE
        self.max_job_size = 0

    def open(self) -> Connection:
        """The open link, reopened if the server closed it while idle (restarted), so
        nothing is written on a dead link; ConnectError, OSError or greenstalk.Error if
        that fails (nothing was sent that could insert a job)."""
        conn = self.conn
        if conn is not None and not (conn.has_buffered() or _closed(conn.sock)):
            return conn
        self.drop()
        # A frozen server (SIGSTOP, a paused container) completes the connect from its
        # listen backlog and never answers: the handshake, which a live server answers at
        # once, is bounded by HANDSHAKE_TIMEOUT, so probing a frozen server after its rest
        # costs a put that much, not the whole put timeout.
        conn = open_connection(self.server, timeout=self.handshake)
        conn.sock.settimeout(self.handshake)
        self.conn = conn
        self.tube = greenstalk.DEFAULT_TUBE
        self.max_job_size = int(conn.stats()["max-job-size"])
        if self.handshake != self.timeout:  # (a syscall: not on every put)
            conn.sock.settimeout(self.timeout)  # a frozen server must not hang a put
        return conn

    def use(self, tube: str) -> None:
        """Make the open link use ``tube`` (replayed on every new link), under the
        handshake bound."""
        if self.tube == tube or self.conn is None:
            return
        conn = self.conn
        if self.handshake != self.timeout:
            conn.sock.settimeout(self.handshake)
        conn.request(commands.use(tube), b"USING")
        self.tube = tube
        if self.handshake != self.timeout:
            conn.sock.settimeout(self.timeout)

    def drop(self) -> None:
        """Close the connection (whatever was in flight is unknowable); reopened on need."""
        if self.conn is not None:
            conn, self.conn = self.conn, None
            with contextlib.suppress(OSError):
                conn.close()
