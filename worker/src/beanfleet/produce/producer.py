"""Putting JSON jobs into beanstalkd: one at a time, scheduled, or in pipelined bulk.

Bodies are JSON with compact separators, UTF-8.  A :class:`Producer` holds one link per
server (use it as a context manager); the module-level :func:`put`, :func:`schedule_at` and
:func:`put_many` open one for the call, which is fine for a few jobs and wasteful for many.

One server is a set of one: the same put loop, bulk writer and connection rule serve one
server and several.  Where a job goes is :mod:`beanfleet.wire.servers`'s choice (its order
of one server is that server).  A put is moved to the next server only when it certainly
did not enter the first one: the link could not be opened or was found closed before the
put was sent, the command could not be written in full, or the server refused it
(DRAINING, OUT_OF_MEMORY).  A connection lost after the put was written and before its
reply leaves the job maybe inserted (beanstalkd may have logged it to its binlog and died
before answering): that is :class:`~beanfleet.errors.MaybeInserted`, unless the producer was
made with ``at_least_once=True``, which puts it again on the next server (and may so run it
twice).  When no server took a job, the error is the lone server's own (``ConnectError``,
``ServerDraining``, ``ServerFull``) or, with several, ``AllServersDown`` naming each
(:func:`beanfleet.produce.batch.none_took`).  Ids are :func:`beanfleet.wire.jobref.public_id`'s:
bare with one server, ``SERVER/ID`` with several.

A Producer is not thread-safe: give each thread its own.

May import: ``wire`` and the base modules.
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
from beanfleet.produce.batch import (
    Batch,
    Failure,
    buried,
    none_took,
    refusal,
    refused_with,
    share_failure,
    write_share,
)
from beanfleet.wire import commands
from beanfleet.wire.client import Closing, connect_error, describe_os_error
from beanfleet.wire.jobref import JobRef, public_id, public_ids
from beanfleet.wire.servers import Link, Placement, Placer

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


class Producer(Closing):
    """Puts jobs on beanstalkd; reconnects on the next call after a broken link.

    ``servers`` (or a comma list in ``server`` or ``$BEANFLEET_SERVER``) names the servers;
    with several the jobs are spread over them: ``placement`` is ``"spread"`` or ``"tube"``
    (:mod:`beanfleet.wire.servers`), ids come back as :class:`~beanfleet.wire.jobref.JobRef`
    (``SERVER/ID``; with one server they are plain ints), and ``at_least_once`` puts a job
    whose reply was lost with its connection again on another server instead of raising
    :class:`~beanfleet.errors.MaybeInserted`.

    The constructor connects to every server (a wrong address fails here, not at the first
    put) and raises only if none answers: with one server its ``ConnectError``
    ("cannot connect to beanstalkd at HOST:PORT: connection refused"), with several
    ``AllServersDown``; a server down at that time rests and is tried again later.

    Each server's max-job-size is read (``stats``) once per connection, so an oversized body
    fails with :class:`JobTooBig` before it is sent.  Every wait on a server (connect,
    ``stats``, ``use``, a put's reply, a bulk put's writes and replies) is bounded by
    ``timeout`` seconds (a new link's handshake by at most one second), so a frozen server
    costs a call that much and an error naming it.
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
        # Every network wait is bounded by it: 0 would make the sockets non-blocking.
        check_number(timeout, "timeout", low=0, high=MAX_SECONDS, low_open=True)
        self.placer = Placer(chosen, placement)
        self.servers = chosen
        self.server = ",".join(chosen)
        self.timeout = timeout
        self.at_least_once = at_least_once
        self.links = {name: Link(name, timeout) for name in chosen}
        failures: list[Failure] = []
        for link in self.links.values():  # fail fast: a wrong address should not wait
            try:
                link.open()
            except (ConnectError, OSError, greenstalk.Error) as exc:
                failures.append(self._failed(link, exc))
        if len(failures) == len(self.links):
            raise none_took("no beanstalkd server answered", failures)

    def close(self) -> None:
        for link in self.links.values():
            link.drop()

    def _failed(self, link: Link, exc: BaseException) -> Failure:
        """``link``'s server could not be used (nothing was sent that could insert a job):
        drop the link, rest the server, and say why."""
        link.drop()
        self.placer.health.failed(link.server)
        if isinstance(exc, ConnectError):
            return Failure(link.server, str(exc).rpartition(": ")[2], exc)
        if isinstance(exc, OSError):
            return Failure(link.server, describe_os_error(exc), connect_error(link.server, exc))
        name = type(exc).__name__
        error = BeanfleetError(
            f"beanstalkd at {link.server} refused the connection's setup: {name}"
        )
        return Failure(link.server, f"replied {name}", error)

    def _refused(self, failure: Failure) -> Failure:
        """A server refused a put another may take: rest it (its link stays in step)."""
        self.placer.health.failed(failure.server)
        return failure

    # -- server facts -----------------------------------------------------------------------

    @property
    def max_job_size(self) -> int:
        """The smallest max-job-size of the servers reached (a job must fit any), read once
        per connection."""
        return min(link.max_job_size for link in self.links.values() if link.max_job_size)

    # -- putting -----------------------------------------------------------------------------

    def put(
        self,
        tube: str,
        data: Any,
        *,
        priority: Priority = DEFAULT_PRIORITY,
        delay: Seconds = 0,
        ttr: Seconds = DEFAULT_TTR,
    ) -> int | JobRef:
        """Put one job; return its id (a :class:`~beanfleet.wire.jobref.JobRef` with
        several servers).

        :class:`~beanfleet.errors.MaybeInserted` (a ConnectError) if the connection broke
        or the server did not answer within the timeout after the put was written: the job
        may be in the server."""
        check_tube(tube)
        pri = parse_priority(priority)
        delay_s = whole_seconds(delay, "delay")
        ttr_s = parse_ttr(ttr)
        body = encode_body(data)
        command = commands.put(pri, delay_s, ttr_s, body)
        failures: list[Failure] = []
        for server in self.placer.order(tube):
            link = self.links[server]
            try:
                conn = link.open()
                if len(body) > link.max_job_size:  # before `use`: a refused job touches no tube
                    raise JobTooBig(len(body), link.max_job_size)
                if link.tube != tube:
                    link.use(tube)
                conn.write(command)
            except (ConnectError, OSError, greenstalk.Error) as exc:  # not written in full
                failures.append(self._failed(link, exc))
                continue
            try:
                status, values = conn.read_reply()
            except OSError as exc:
                lost = self._failed(link, exc)
                error = MaybeInserted(
                    f"put to beanstalkd at {server}: connection lost before the reply "
                    f"({lost.why}): the job may have been inserted there; not put again "
                    "(at-least-once was not asked for)",
                    server,
                )
                if not self.at_least_once:
                    raise error from exc
                why = f"connection lost before the reply ({lost.why}), maybe inserted"
                failures.append(Failure(server, why + ", put again elsewhere", error))
                continue
            if status == b"INSERTED":
                self.placer.health.succeeded(server)
                return public_id(self.servers, server, int(values[0]))
            refused = refusal(server, status)
            if refused is not None:
                failures.append(self._refused(refused))
                continue
            if status == b"BURIED":  # in, but the server could not queue it: out of memory
                raise buried(server, public_id(self.servers, server, int(values[0]))).error
            if status == b"JOB_TOO_BIG":
                raise JobTooBig(len(body), link.max_job_size)
            raise refused_with(server, status)
        raise none_took("no beanstalkd server took the job", failures)

    def schedule_at(
        self,
        tube: str,
        data: Any,
        when: datetime | float,
        *,
        priority: Priority = DEFAULT_PRIORITY,
        ttr: Seconds = DEFAULT_TTR,
    ) -> int | JobRef:
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
    ) -> list[int | JobRef]:
        """Put every item as a job, pipelined on one connection per server; return the ids
        in order.

        Every item is encoded before anything is sent, and checked against the limit of
        the server its share goes to, so a bad item (:class:`BodyError`, :class:`JobTooBig`,
        both naming its index) enqueues nothing (with several servers of different limits, a
        share may have gone in first: then :class:`PartialPut`).  The items are split over
        the servers the placement names; a share a server refuses (draining, out of memory)
        or loses midway goes to the servers that have not failed in this call, until every
        item is in or every server failed.  If some items could not be placed,
        :class:`~beanfleet.errors.PartialPut` gives the id of every item enqueued, the items
        whose reply was lost (maybe inserted) and those not enqueued; any other error means
        that no item was enqueued.
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
        batch = Batch(commands.put_head(pri, delay_s, ttr_s), bodies, batch_size)
        try:
            self._place(tube, batch)
        except JobTooBig as exc:  # a server with a smaller max-job-size, met midway
            if batch.maybe or any(job is not None for job in batch.ids):
                raise PartialPut(self._public(batch), batch.maybe, exc) from exc
            raise
        if batch.ids.count(None):
            raise batch.stopped(self._public(batch))
        return self._public(batch)  # type: ignore[return-value]  # every item has its id

    def _public(self, batch: Batch) -> list[int | JobRef | None]:
        return public_ids(self.servers, batch.ids, batch.placed)

    def _place(self, tube: str, batch: Batch) -> None:
        """Split the pending items over the servers in placement order, one share each,
        until every item is in or every server failed in this call."""
        while batch.pending:
            order = [s for s in self.placer.order(tube) if s not in batch.failed]
            if not order:
                return
            targets = order if self.placer.placement == "spread" else order[:1]
            awake = [s for s in targets if not self.placer.health.resting(s)] or targets[:1]
            pending, batch.pending = batch.pending, []
            size = -(-len(pending) // len(awake))
            for start, server in zip(range(0, len(pending), size), awake, strict=False):
                share = pending[start : start + size]
                left, lost = self._put_share(self.links[server], tube, batch, share)
                if lost and not self.at_least_once:
                    batch.maybe.extend(lost)
                    batch.maybe_server = batch.maybe_server or server
                else:
                    left = lost + left
                batch.pending.extend(left)
            batch.pending.sort()

    def _put_share(
        self, link: Link, tube: str, batch: Batch, share: list[int]
    ) -> tuple[list[int], list[int]]:
        """Put ``share`` (indexes into the batch's bodies) on ``link``'s server, filling the
        batch's ids.  Returns (not inserted, maybe inserted)."""
        try:
            conn = link.open()
            limit = link.max_job_size
            if max(map(batch.sizes.__getitem__, share)) > limit:  # before `use`, as put does
                index = next(i for i in share if batch.sizes[i] > limit)
                raise JobTooBig(batch.sizes[index], limit, index)
            link.use(tube)
        except (ConnectError, OSError, greenstalk.Error) as exc:
            batch.fail(self._failed(link, exc))
            return share, []
        written = write_share(conn, batch.head, batch.bodies, share, batch.size, batch.ids)
        if written.error is None and written.refused is None:
            batch.placed.append((link.server, share))
            self.placer.health.succeeded(link.server)
            return [], []
        # Only these are on this server: the rest may go to another before the ids are read.
        batch.placed.append((link.server, [i for i in share if batch.ids[i] is not None]))
        lost = set(written.lost)
        left = [i for i in share if batch.ids[i] is None and i not in lost]
        if written.error is not None:
            why = describe_os_error(written.error)
            error = ConnectError(f"connection to beanstalkd at {link.server} lost ({why})")
            link.drop()
            self.placer.health.failed(link.server)
            batch.fail(Failure(link.server, f"connection lost ({why})", error))
            return left, written.lost
        index, status = written.refused  # type: ignore[misc]  # refused is set
        job = batch.ids[index]  # BURIED <id>: in the server, though not queued
        label = None if job is None else public_id(self.servers, link.server, job)
        failure = share_failure(link.server, status, label, batch.sizes[index], limit, index)
        batch.fail(self._refused(failure))
        return left, []


# -- one-call helpers -------------------------------------------------------------------------


def put(
    tube: str,
    data: Any,
    *,
    server: str | None = None,
    priority: Priority = DEFAULT_PRIORITY,
    delay: Seconds = 0,
    ttr: Seconds = DEFAULT_TTR,
) -> int | JobRef:
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
) -> int | JobRef:
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
) -> list[int | JobRef]:
    """Bulk put on a fresh connection; see :meth:`Producer.put_many`."""
    with Producer(server) as producer:
        return producer.put_many(
            tube, items, priority=priority, delay=delay, ttr=ttr, batch_size=batch_size
        )
