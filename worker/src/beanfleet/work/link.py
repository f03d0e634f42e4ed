"""One server's connection as the worker holds it: connect (watch the tubes, bounded
handshake), rest after a failure (jittered doubling backoff), close writing the unsent
deletes first.  :class:`~beanfleet.work.session.Session` adds the jobs on it.

May import: ``wire`` (Connection, commands, Backoff), ``work.job``, ``work.events`` and the
base modules.

Every wait for a reply is bounded (``REPLY_LIMIT``, kernel timeouts set by
:meth:`Connection.bound_waits`): a frozen server costs that wait, then its connection.
"""

from __future__ import annotations

import contextlib
import select
import threading
import time
from collections.abc import Iterable, Sequence

import greenstalk

from beanfleet.names import parse_server
from beanfleet.wire import commands
from beanfleet.wire.backoff import Backoff
from beanfleet.wire.client import describe_os_error
from beanfleet.wire.connection import Connection
from beanfleet.work.events import Observers
from beanfleet.work.job import Job

REPLY_LIMIT = 3.0  # no reply this long (any command; a reserve: after its own wait): dead
CONNECT_TIMEOUT = 1.0  # connect and handshake: a frozen server completes the TCP connect, and
# the loop waits for this (every server shares the main thread)
RECONNECT_FIRST = 0.1
RECONNECT_CAP = 5.0


class Link:
    """A connection to one server that can be (re)made, lost and closed."""

    def __init__(
        self,
        server: str,
        tubes: Sequence[str],
        events: Observers,
        lock: threading.Lock,
        reconnect_cap: float = RECONNECT_CAP,
    ) -> None:
        self.server = server
        self.address = parse_server(server)
        self.tubes = list(tubes)
        self.events = events
        self.lock = lock  # shared with the heartbeat: held for every exchange while a job runs
        self.backoff = Backoff(RECONNECT_FIRST, reconnect_cap)
        self.retry_at = 0.0
        self.failures = 0  # connect attempts failed in a row
        self.healthy = False  # this connection answered a reserve
        self.conn: Connection | None = None
        self.broken = False  # the heartbeat found it dead while a handler ran

    def open(self) -> Connection | None:
        """One try: connect and watch the tubes; None (and rest) if that failed."""
        try:
            conn = Connection(self.address, connect_timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            self._connect_failed(describe_os_error(exc))
            return None
        try:
            watch = [commands.watch(tube) for tube in self.tubes]
            if greenstalk.DEFAULT_TUBE not in self.tubes:
                watch.append(commands.ignore(greenstalk.DEFAULT_TUBE))
            # A frozen server still completes the TCP connect from its listen backlog but
            # never answers: the handshake is bounded like the connect.
            conn.sock.settimeout(CONNECT_TIMEOUT)
            conn.sock.sendall(b"".join(watch))
            for _ in watch:
                conn.expect(b"WATCHING")
        except (OSError, greenstalk.Error) as exc:
            conn.close()
            self._connect_failed(describe_os_error(exc) if isinstance(exc, OSError) else repr(exc))
            return None
        self.adopt(conn)
        self.failures = 0
        self.healthy = False
        self.events.event(
            "connected",
            f"connected to beanstalkd at {self.server}, watching {', '.join(self.tubes)}",
        )
        self.events.connected(self.server)
        return conn

    def adopt(self, conn: Connection) -> None:
        """Use ``conn``, already connected and watching the tubes, as this link's connection
        (:meth:`open` makes one; a test may hand one in)."""
        conn.bound_waits(REPLY_LIMIT)  # every later reply: bounded (kernel timeouts)
        with self.lock:
            self.conn, self.broken = conn, False

    def _connect_failed(self, what: str) -> None:
        self.failures += 1
        delay = self.backoff.failed()
        self.retry_at = time.monotonic() + delay
        self.events.event(
            "connect-failed",
            f"cannot connect to beanstalkd at {self.server}: {what}; retrying in {delay:.1f}s",
            level="error",
            attempt=self.failures,
        )

    def connection(self) -> Connection:
        conn = self.conn
        if conn is None or self.broken:
            raise ConnectionError("connection to beanstalkd lost while the handler ran")
        return conn

    def said_lost(self, exc: BaseException) -> None:
        what = describe_os_error(exc) if isinstance(exc, OSError) else repr(exc)
        self.events.event(
            "connection-lost",
            f"lost connection to beanstalkd at {self.server}: {what}",
            level="error",
        )

    def rest(self) -> None:
        """After a loss: reconnect at once if it had answered a reserve, else back off."""
        self.retry_at = 0.0 if self.healthy else time.monotonic() + self.backoff.failed()

    def close(self, unsent: Iterable[Job] = ()) -> None:
        """Close the connection (beanstalkd puts every job reserved on it back to ready),
        first writing the deletes of ``unsent`` without waiting (the link may be dead): a
        frozen server's kernel holds the bytes and the server applies them before the close
        when it resumes; sent after a reconnect instead, a delete would find the job
        reserved by the old connection."""
        with self.lock:
            conn, self.conn = self.conn, None
        if conn is None:
            return
        unsent = [job for job in unsent if not job.delete_written]
        if unsent:
            data = b"".join(commands.delete(job.id) for job in unsent)
            with contextlib.suppress(OSError):
                conn.sock.settimeout(0)
                if conn.sock.send(data) == len(data):
                    for job in unsent:
                        job.delete_written = True
        conn.close()


def readable(conn: Connection) -> bool:
    """A reply is waiting on ``conn`` (buffered, or readable now)."""
    return conn.has_buffered() or bool(select.select([conn], [], [], 0)[0])
