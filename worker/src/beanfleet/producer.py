"""Putting JSON jobs into beanstalkd: one at a time, scheduled, or in pipelined bulk.

Bodies are JSON with compact separators, UTF-8.  A :class:`Producer` holds its connections
(use it as a context manager); the module-level :func:`put`, :func:`schedule_at` and
:func:`put_many` open one for the call, which is fine for a few jobs and wasteful for many.

A Producer is not thread-safe: give each thread its own.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import greenstalk

from beanfleet.address import check_tube, resolve_servers
from beanfleet.client import ServerLinks, connect_error, open_client, open_connection
from beanfleet.errors import (
    BeanfleetError,
    BodyError,
    ConfigError,
    JobTooBig,
    ServerDraining,
    ServerFull,
)
from beanfleet.multiproducer import ServersProducer
from beanfleet.placement import Placement, check_placement
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
from beanfleet.protocol import Connection

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
        raise BodyError(f"{where}job data is not JSON-serialisable: {exc}") from exc


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
    fails with :class:`JobTooBig` before it is sent.

    ``servers`` (or a comma list in ``server`` or ``$BEANFLEET_SERVER``) with more than one
    address spreads the jobs over them (:mod:`beanfleet.multiproducer`): ``placement`` is
    ``"spread"`` or ``"tube"`` (:mod:`beanfleet.placement`), ids come back as
    :class:`~beanfleet.jobref.JobRef` (``SERVER/ID``), and ``at_least_once`` puts a job
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
        chosen = resolve_servers(servers if servers else server)
        check_placement(placement)
        self.servers = chosen
        self.server = chosen[0] if len(chosen) == 1 else ",".join(chosen)
        self.timeout = timeout
        self._many: ServersProducer | None = None
        self._client: greenstalk.Client[bytes] | None = None
        self._client_tube = greenstalk.DEFAULT_TUBE
        self._pipe: Connection | None = None
        self._pipe_tube = greenstalk.DEFAULT_TUBE
        self._max_job_size: int | None = None
        if len(chosen) > 1:
            self._many = ServersProducer(
                chosen, timeout=timeout, placement=placement, at_least_once=at_least_once
            )
            return  # connections open on the first put: one down server must not stop us
        self._connect_client()  # fail fast: a wrong address should not wait for the first put

    # -- connections -------------------------------------------------------------------------

    def close(self) -> None:
        super().close()
        if self._many is not None:
            self._many.close()
        self._max_job_size = None  # used again after closing: read it from the new connection

    def _connect_client(self) -> greenstalk.Client[bytes]:
        if self._client is None:
            self._client = open_client(self.server, timeout=self.timeout)
            self._client_tube = greenstalk.DEFAULT_TUBE
        return self._client

    def _drop_client(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            self._max_job_size = None  # re-read on the new connection: the server may differ
            with contextlib.suppress(OSError):  # it is being dropped because it broke
                client.close()

    def _connect_pipe(self) -> Connection:
        if self._pipe is None:
            self._pipe = open_connection(self.server, timeout=self.timeout)
            self._pipe_tube = greenstalk.DEFAULT_TUBE
        return self._pipe

    def _drop_pipe(self) -> None:
        if self._pipe is not None:
            pipe, self._pipe = self._pipe, None
            self._max_job_size = None
            pipe.close()

    def _link_lost(self, exc: OSError) -> BeanfleetError:
        # Whatever was in flight is unknowable now; start clean on the next call.
        self._drop_client()
        self._drop_pipe()
        return connect_error(self.server, exc)

    # -- server facts -----------------------------------------------------------------------

    @property
    def max_job_size(self) -> int:
        """The server's max-job-size in bytes, read once per connection (several servers:
        the smallest of those reached so far, 0 before the first put)."""
        if self._many is not None:
            return self._many.max_job_size
        if self._max_job_size is None:
            try:
                if self._pipe is not None:
                    limit = int(self._pipe.stats()["max-job-size"])
                else:
                    limit = self._connect_client().stats()["max-job-size"]
            except OSError as exc:
                raise self._link_lost(exc) from exc
            self._max_job_size = limit
        return self._max_job_size

    def _check_size(self, body: bytes) -> None:
        if len(body) > self.max_job_size:
            raise JobTooBig(len(body), self.max_job_size)

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
        """Put one job; return its id."""
        check_tube(tube)
        pri = parse_priority(priority)
        delay_s = whole_seconds(delay, "delay")
        ttr_s = parse_ttr(ttr)
        body = encode_body(data)
        if self._many is not None:
            return self._many.put(tube, body, pri, delay_s, ttr_s)
        self._check_size(body)
        try:
            client = self._connect_client()
            if self._client_tube != tube:
                client.use(tube)
                self._client_tube = tube
            return client.put(body, priority=pri, delay=delay_s, ttr=ttr_s)
        except greenstalk.DrainingError as exc:
            raise self._draining() from exc
        except greenstalk.JobTooBigError as exc:
            raise JobTooBig(len(body), self._max_job_size) from exc
        except (greenstalk.OutOfMemoryError, greenstalk.InternalError) as exc:
            raise ServerFull(f"{self._full(type(exc).__name__)}; the job was not enqueued") from exc
        except OSError as exc:
            raise self._link_lost(exc) from exc

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
        If the server refuses a put midway (draining, out of memory) the error says how many
        jobs were enqueued before it.
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
        try:
            pipe = self._connect_pipe()
            limit = self.max_job_size
            for index, body in enumerate(bodies):
                if len(body) > limit:
                    raise JobTooBig(len(body), limit, index)
            if self._pipe_tube != tube:
                pipe.call(b"use " + tube.encode("ascii"), b"USING")
                self._pipe_tube = tube
            return self._pipeline_puts(
                pipe, bodies, pri=pri, delay=delay_s, ttr=ttr_s, batch_size=batch_size
            )
        except OSError as exc:
            raise self._link_lost(exc) from exc

    def _pipeline_puts(
        self,
        pipe: Connection,
        bodies: list[bytes],
        *,
        pri: int,
        delay: int,
        ttr: int,
        batch_size: int,
    ) -> list[int]:
        head = b"put %d %d %d " % (pri, delay, ttr)
        ids: list[int] = []
        in_flight: deque[int] = deque()  # sizes of the batches sent but not yet answered
        failure: tuple[int, bytes] | None = None  # (index, status) of the first refused put

        def collect(count: int) -> None:
            nonlocal failure
            for line in pipe.read_lines(count):
                if line.startswith(b"INSERTED "):
                    ids.append(int(line[9:]))
                elif failure is None:
                    failure = (len(ids), line.partition(b" ")[0])

        for start in range(0, len(bodies), batch_size):
            batch = bodies[start : start + batch_size]
            pipe.sock.sendall(b"".join([b"%s%d\r\n%s\r\n" % (head, len(b), b) for b in batch]))
            in_flight.append(len(batch))
            # Read the previous batch's replies while beanstalkd works on this one.
            if len(in_flight) > 1:
                collect(in_flight.popleft())
            if failure is not None:
                break
        while in_flight:
            collect(in_flight.popleft())
        if failure is not None:
            raise self._bulk_failure(failure, ids, len(bodies))
        return ids

    def _bulk_failure(
        self, failure: tuple[int, bytes], ids: list[int], total: int
    ) -> BeanfleetError:
        index, status = failure
        done = f"{len(ids)} of {total} jobs were enqueued"
        if status == b"DRAINING":
            return ServerDraining(f"{self._draining()} ({done})")
        if status in (b"OUT_OF_MEMORY", b"INTERNAL_ERROR"):
            return ServerFull(f"{self._full(status.decode())} ({done})")
        return BeanfleetError(
            f"beanstalkd refused item {index} with {status.decode('ascii', 'replace')} ({done})"
        )

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
