"""Putting JSON jobs into beanstalkd: one at a time, scheduled, or in pipelined bulk.

Bodies are JSON with compact separators, UTF-8.  A :class:`Producer` holds its connections
(use it as a context manager); the module-level :func:`put`, :func:`schedule_at` and
:func:`put_many` open one for the call, which is fine for a few jobs and wasteful for many.

A Producer is not thread-safe: give each thread its own.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import greenstalk

from beanfleet.bounds import check_number
from beanfleet.errors import (
    BeanfleetError,
    BodyError,
    ConfigError,
    ConnectError,
    JobTooBig,
    MaybeInserted,
    PartialPut,
    ServerDraining,
    ServerFull,
)
from beanfleet.names import check_tube, resolve_servers
from beanfleet.priorities import (
    DEFAULT_PRIORITY,
    DEFAULT_TTR,
    MAX_SECONDS,
    Priority,
    Seconds,
    parse_priority,
    parse_ttr,
    whole_seconds,
)
from beanfleet.produce.multiproducer import ServerLink, ServersProducer, pipeline_puts
from beanfleet.wire.client import ServerLinks, connect_error, describe_os_error
from beanfleet.wire.connection import CRLF, Connection
from beanfleet.wire.servers import Placement, check_placement

# One encoder for every body: json.dumps would build a new encoder per call for these options.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)

# Puts per write in put_many.  Two batches are in flight at once, and beanstalkd stops reading
# a connection whose replies it cannot write, so replies for two batches (at most ~31 bytes
# each) must fit the socket buffers: 2 x 1000 x 31 bytes is far below them.
DEFAULT_BATCH = 1000
MAX_BATCH = 1000


def encode_body(data: Any, index: int | None = None) -> bytes:
    """``data`` as a compact UTF-8 JSON body; :class:`BodyError` if it is not JSON data."""
    try:
        return _ENCODER.encode(data).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        where = f"item {index}: " if index is not None else ""
        raise BodyError(f"{where}job data is not JSON-serialisable: {exc}", index) from exc


def delay_until(when: datetime | float, now: float | None = None) -> int:
    """Whole seconds from now until ``when``; 0 if it is in the past.

    ``when`` is epoch seconds or a timezone-aware datetime.  Naive datetimes are refused:
    whether they mean local time or UTC depends on the machine, and a job scheduled an hour
    off is a bug nobody notices until it bites.
    """
    if isinstance(when, datetime):
        if when.tzinfo is None or when.utcoffset() is None:
            raise ConfigError(
                f"naive datetime {when.isoformat()}: pass an aware datetime "
                "(e.g. datetime.now(timezone.utc) + timedelta(hours=1)) or epoch seconds"
            )
        target = when.timestamp()
    elif isinstance(when, bool) or not isinstance(when, int | float) or not math.isfinite(when):
        raise ConfigError(f"invalid schedule time {when!r}: expected a datetime or epoch seconds")
    else:
        target = float(when)
    seconds = target - (time.time() if now is None else now)
    if seconds > MAX_SECONDS:
        raise ConfigError(f"schedule time {when!r} is more than {MAX_SECONDS} seconds away")
    return max(0, math.ceil(seconds))


class Producer(ServerLinks):
    """Puts jobs on beanstalkd; reconnects on the next call after a broken link.

    The server's max-job-size is read (``stats``) once per connection, so an oversized body
    fails with :class:`JobTooBig` before it is sent.  Every wait on a server (connect,
    ``stats``, ``use``, a put's reply, a bulk put's writes and replies) is bounded by
    ``timeout`` seconds, so a frozen server costs a call that much and an error naming it.

    ``servers`` (or a comma list in ``server`` or ``$BEANFLEET_SERVER``) with more than one
    address spreads the jobs over them (:mod:`beanfleet.produce.multiproducer`): ``placement`` is
    ``"spread"`` or ``"tube"`` (:mod:`beanfleet.wire.servers`), ids come back as
    :class:`~beanfleet.wire.jobref.JobRef` (``SERVER/ID``), and ``at_least_once`` puts a job
    whose reply was lost with its connection again on another server instead of raising
    :class:`~beanfleet.errors.MaybeInserted`.  With one server these options change nothing.
    """

    def __init__(
        self,
        server: str | None = None,
        *,
        servers: Sequence[str] | None = None,
        timeout: float = 5.0,
        placement: Placement = "spread",
        at_least_once: bool = False,
    ) -> None:
        if servers is not None and not isinstance(servers, str):
            servers = list(servers)
            if not servers:
                # An empty list falling back to $BEANFLEET_SERVER or the default would put
                # jobs on a server the caller never named.
                raise ConfigError("servers=[] names no server: give at least one HOST:PORT")
        chosen = resolve_servers(servers if servers else server)
        check_placement(placement)
        # Every network wait is bounded by it: 0 would make the sockets non-blocking.
        check_number(timeout, "timeout", low=0, high=MAX_SECONDS, low_open=True)
        self.servers = chosen
        self.server = chosen[0] if len(chosen) == 1 else ",".join(chosen)
        self.timeout = timeout
        self._many: ServersProducer | None = None
        if len(chosen) > 1:
            self._many = ServersProducer(
                chosen, timeout=timeout, placement=placement, at_least_once=at_least_once
            )
            return  # connections open on the first put: one down server must not stop us
        # One server: one pipelining link for put and put_many, every wait on it (connect,
        # stats, use, put) bounded by ``timeout``, so a frozen server cannot hang a put.
        self._link = ServerLink(self.server, timeout, handshake=timeout)
        self._ready(greenstalk.DEFAULT_TUBE)  # fail fast: a wrong address should not wait

    # -- connections -------------------------------------------------------------------------

    def close(self) -> None:
        super().close()
        if self._many is not None:
            self._many.close()
        else:
            self._link.drop()

    def _ready(self, tube: str) -> Connection:
        """The link to the one server, using ``tube``: reopened if the server closed it
        while idle (restarted), so nothing is written on a dead link."""
        try:
            return self._link.ready(tube)
        except OSError as exc:
            raise self._link_lost(exc) from exc
        except greenstalk.Error as exc:
            self._link.drop()
            raise BeanfleetError(
                f"beanstalkd at {self.server} refused the connection's setup: {type(exc).__name__}"
            ) from exc

    def _link_lost(self, exc: OSError) -> BeanfleetError:
        # Whatever was in flight is unknowable now; start clean on the next call.
        self._link.drop()
        return connect_error(self.server, exc)

    # -- server facts -----------------------------------------------------------------------

    @property
    def max_job_size(self) -> int:
        """The server's max-job-size in bytes, read once per connection (several servers:
        the smallest of those reached so far, 0 before the first put)."""
        if self._many is not None:
            return self._many.max_job_size
        if self._link.conn is None:
            self._ready(self._link.tube)
        return self._link.max_job_size

    # -- putting -----------------------------------------------------------------------------

    def put(
        self,
        tube: str,
        data: Any,
        *,
        priority: Priority = DEFAULT_PRIORITY,
        delay: Seconds = 0,
        ttr: Seconds = DEFAULT_TTR,
    ) -> int:
        """Put one job; return its id.

        :class:`~beanfleet.errors.MaybeInserted` (a ConnectError) if the connection broke
        or the server did not answer within the timeout after the put was written: the job
        may be in the server."""
        check_tube(tube)
        pri = parse_priority(priority)
        delay_s = whole_seconds(delay, "delay")
        ttr_s = parse_ttr(ttr)
        body = encode_body(data)
        if self._many is not None:
            return self._many.put(tube, body, pri, delay_s, ttr_s)
        if len(body) > self.max_job_size:  # before `use`: a refused job touches no tube
            raise JobTooBig(len(body), self._link.max_job_size)
        conn = self._ready(tube)
        try:
            conn.sock.sendall(Connection.put_command(body, pri, delay_s, ttr_s) + CRLF)
        except OSError as exc:  # not written in full: beanstalkd cannot have the job
            raise self._link_lost(exc) from exc
        try:
            status, values = conn.read_reply()
        except OSError as exc:
            self._link.drop()
            raise MaybeInserted(
                f"put to beanstalkd at {self.server}: no reply ({describe_os_error(exc)}): "
                "the job may have been inserted",
                self.server,
            ) from exc
        if status == b"INSERTED":
            return int(values[0])
        raise self._refused(status, values, body)

    def _refused(self, status: bytes, values: list[bytes], body: bytes) -> BeanfleetError:
        """The error for a put beanstalkd answered with anything but INSERTED."""
        if status == b"DRAINING":
            return self._draining()
        if status == b"JOB_TOO_BIG":
            return JobTooBig(len(body), self._link.max_job_size)
        if status in (b"OUT_OF_MEMORY", b"INTERNAL_ERROR"):
            return ServerFull(f"{self._full(status.decode())}; the job was not enqueued")
        if status == b"BURIED":  # in, but the server could not queue it: out of memory
            job = values[0].decode("ascii", "replace") if values else "?"
            return ServerFull(
                f"beanstalkd at {self.server} buried the new job {job}: out of memory"
            )
        return BeanfleetError(
            f"beanstalkd at {self.server} refused the put with {status.decode('ascii', 'replace')}"
        )

    def schedule_at(
        self,
        tube: str,
        data: Any,
        when: datetime | float,
        *,
        priority: Priority = DEFAULT_PRIORITY,
        ttr: Seconds = DEFAULT_TTR,
    ) -> int:
        """Put one job that becomes ready at ``when`` (see :func:`delay_until`); return its id."""
        return self.put(tube, data, priority=priority, delay=delay_until(when), ttr=ttr)

    def put_many(
        self,
        tube: str,
        items: Iterable[Any],
        *,
        priority: Priority = DEFAULT_PRIORITY,
        delay: Seconds = 0,
        ttr: Seconds = DEFAULT_TTR,
        batch_size: int = DEFAULT_BATCH,
    ) -> list[int]:
        """Put every item as a job, pipelined on one connection (one per server); return
        the ids in order.

        Every item is encoded and size-checked before anything is sent, so a bad item
        (:class:`BodyError`, :class:`JobTooBig`, both naming its index) enqueues nothing.
        If the server refuses a put midway (draining, out of memory) or the connection
        breaks or times out, :class:`~beanfleet.errors.PartialPut` gives the id of every
        item enqueued, the items whose reply was lost (maybe inserted) and those not
        enqueued; any other error means that no item was enqueued.
        """
        check_tube(tube)
        pri = parse_priority(priority)
        delay_s = whole_seconds(delay, "delay")
        ttr_s = parse_ttr(ttr)
        if not 1 <= batch_size <= MAX_BATCH:
            raise ConfigError(f"invalid batch size {batch_size}: must be 1..{MAX_BATCH}")
        bodies = [encode_body(item, index) for index, item in enumerate(items)]
        if not bodies:
            return []
        if self._many is not None:
            return list(self._many.put_many(tube, bodies, pri, delay_s, ttr_s, batch_size))
        limit = self.max_job_size
        for index, body in enumerate(bodies):
            if len(body) > limit:
                raise JobTooBig(len(body), limit, index)
        conn = self._ready(tube)
        head = b"put %d %d %d " % (pri, delay_s, ttr_s)
        ids: list[int | None] = [None] * len(bodies)
        outcome = pipeline_puts(conn, head, bodies, range(len(bodies)), batch_size, ids)
        if outcome.error is None and outcome.refused is None:
            return ids  # type: ignore[return-value]  # every item has its id
        reason: BeanfleetError
        if outcome.error is not None:
            self._link.drop()
            why = describe_os_error(outcome.error)
            reason = ConnectError(f"connection to beanstalkd at {self.server} lost ({why})")
        else:
            assert outcome.refused is not None
            index, status = outcome.refused
            buried = ids[index]  # BURIED <id>: in the server, though not queued
            reason = self._refused(status, [b"%d" % buried] if buried else [], bodies[index])
        if outcome.lost or any(job is not None for job in ids):
            raise PartialPut(ids, outcome.lost, reason) from reason
        if isinstance(reason, JobTooBig):
            raise reason
        # Nothing went in: the caller may put every item again.
        raise type(reason)(f"{reason} (0 of {len(bodies)} jobs were enqueued)") from reason

    def _full(self, reply: str) -> ServerFull:
        # beanstalkd 1.12 answers OUT_OF_MEMORY when its binlog cannot grow (disk full).
        return ServerFull(
            f"beanstalkd at {self.server} refused the job with {reply}: "
            "binlog disk full or server out of memory"
        )

    def _draining(self) -> ServerDraining:
        return ServerDraining(f"beanstalkd at {self.server} is draining and accepts no new jobs")


# -- one-call helpers -------------------------------------------------------------------------


def put(
    tube: str,
    data: Any,
    *,
    server: str | None = None,
    priority: Priority = DEFAULT_PRIORITY,
    delay: Seconds = 0,
    ttr: Seconds = DEFAULT_TTR,
) -> int:
    """Put one job on a fresh connection; return its id."""
    with Producer(server) as producer:
        return producer.put(tube, data, priority=priority, delay=delay, ttr=ttr)


def schedule_at(
    tube: str,
    data: Any,
    when: datetime | float,
    *,
    server: str | None = None,
    priority: Priority = DEFAULT_PRIORITY,
    ttr: Seconds = DEFAULT_TTR,
) -> int:
    """Put one job that becomes ready at ``when``, on a fresh connection; return its id."""
    with Producer(server) as producer:
        return producer.schedule_at(tube, data, when, priority=priority, ttr=ttr)


def put_many(
    tube: str,
    items: Iterable[Any],
    *,
    server: str | None = None,
    priority: Priority = DEFAULT_PRIORITY,
    delay: Seconds = 0,
    ttr: Seconds = DEFAULT_TTR,
    batch_size: int = DEFAULT_BATCH,
) -> list[int]:
    """Bulk put on a fresh connection; see :meth:`Producer.put_many`."""
    with Producer(server) as producer:
        return producer.put_many(
            tube, items, priority=priority, delay=delay, ttr=ttr, batch_size=batch_size
        )
