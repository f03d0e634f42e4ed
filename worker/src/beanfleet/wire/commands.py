"""The bytes of every beanstalkd command the package sends, one function per command.

greenstalk builds its own commands for the one-round-trip calls; everything that pipelines
(the worker's loop, prefetch, bulk puts, id scans) writes through :class:`Connection` with
these, so no other module spells a command.  Each function returns the whole line with its
``\\r\\n``; a ``put`` also carries its body.  Numbers are formatted with ``%d``, so an int
subclass (a job reference) is written as its plain id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

CRLF = b"\r\n"


def put(priority: int, delay: int, ttr: int, body: bytes) -> bytes:
    return b"put %d %d %d %d\r\n%s\r\n" % (priority, delay, ttr, len(body), body)


def put_head(priority: int, delay: int, ttr: int) -> bytes:
    """``put PRI DELAY TTR `` without the size: a batch writer adds ``%d\\r\\nBODY\\r\\n``."""
    return b"put %d %d %d " % (priority, delay, ttr)


def use(tube: str) -> bytes:
    return b"use %s\r\n" % tube.encode("ascii")


def watch(tube: str) -> bytes:
    return b"watch %s\r\n" % tube.encode("ascii")


def ignore(tube: str) -> bytes:
    return b"ignore %s\r\n" % tube.encode("ascii")


def reserve_with_timeout(seconds: int) -> bytes:
    return b"reserve-with-timeout %d\r\n" % seconds


def delete(job_id: int) -> bytes:
    return b"delete %d\r\n" % job_id


def release(job_id: int, priority: int, delay: int) -> bytes:
    return b"release %d %d %d\r\n" % (job_id, priority, delay)


def bury(job_id: int, priority: int) -> bytes:
    return b"bury %d %d\r\n" % (job_id, priority)


def touch(job_id: int) -> bytes:
    return b"touch %d\r\n" % job_id


def kick_job(job_id: int) -> bytes:
    return b"kick-job %d\r\n" % job_id


def stats_job(job_id: int) -> bytes:
    return b"stats-job %d\r\n" % job_id


def peek(job_id: int) -> bytes:
    return b"peek %d\r\n" % job_id


def stats() -> bytes:
    return b"stats\r\n"


def put_batch(head: bytes, bodies: Sequence[bytes], indexes: Iterable[int]) -> bytes:
    """The puts of ``bodies[i]`` for each ``i`` in ``indexes`` behind one :func:`put_head`:
    one write of a bulk put (one join, no function call per item: bulk puts are benchmarked)."""
    return b"".join([b"%s%d\r\n%s\r\n" % (head, len(bodies[i]), bodies[i]) for i in indexes])
