"""The one exception hierarchy of beanfleet.

Every error a caller can act on derives from :class:`BeanfleetError`; the CLI prints its
message as a single line and exits 1.  Handlers raise :class:`PermanentFailure` or
:class:`RetryLater` to steer what the worker does with their job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import SupportsIndex


class BeanfleetError(Exception):
    """Base class of every error beanfleet raises on purpose."""


class ConfigError(BeanfleetError):
    """An invalid setting: server address, tube name, handler spec, fleet description."""


class ConnectError(BeanfleetError):
    """beanstalkd could not be reached, or the connection broke."""


class AllServersDown(ConnectError):
    """With several servers: none of them took the job (each one's reason is in the message)."""


class MaybeInserted(ConnectError):
    """The connection broke after a put was sent and before its reply: the job may exist.

    Not put again elsewhere (that could run it twice) unless the caller asked for
    at-least-once.  ``server`` is the server it may be on.
    """

    def __init__(self, message: str, server: str) -> None:
        self.server = server
        super().__init__(message)


class JobTooBig(BeanfleetError):
    """A job body is larger than the server's max-job-size."""

    def __init__(self, size: int, limit: int | None, index: int | None = None) -> None:
        self.size = size
        self.limit = limit
        self.index = index  # position in a bulk put, so the caller can find the culprit
        limit_text = f"{limit} bytes" if limit is not None else "its limit"
        where = f"item {index}: " if index is not None else ""
        super().__init__(f"{where}job body is {size} bytes, server max-job-size is {limit_text}")


class ServerDraining(BeanfleetError):
    """The server is in drain mode and refuses new jobs."""


class ServerFull(BeanfleetError):
    """beanstalkd refused a job for lack of memory or binlog space (OUT_OF_MEMORY)."""


class BodyError(BeanfleetError):
    """A job body that is not valid JSON (or cannot be encoded as JSON).

    ``index`` is the item's position in a bulk put (None for a single put), so the caller
    (``beanfleet put -``) can name the culprit in its own terms."""

    def __init__(self, message: str, index: int | None = None) -> None:
        self.index = index
        super().__init__(message)


class PartialPut(BeanfleetError):
    """A bulk put stopped after some of its items were enqueued: exactly which ones, so a
    retry puts none of them twice.

    ``ids[i]`` is item ``i``'s job id (a ``JobRef`` with several servers), None if it was
    not enqueued.  ``placed`` lists the indexes enqueued; ``maybe_inserted`` those whose
    reply was lost with the connection (beanstalkd may hold them: look before putting them
    again); ``not_placed`` those certainly not enqueued (safe to put again).  ``reason`` is
    the error that stopped the put (also the ``__cause__``).

    Raised only when at least one item was, or may have been, enqueued: any other error
    from a bulk put means that none was.
    """

    def __init__(
        self,
        ids: Sequence[SupportsIndex | None],
        maybe_inserted: Sequence[int],
        reason: BeanfleetError,
    ) -> None:
        self.ids = list(ids)
        self.maybe_inserted = sorted(maybe_inserted)
        maybe = set(self.maybe_inserted)
        self.placed = [i for i, job in enumerate(self.ids) if job is not None]
        self.not_placed = [i for i, job in enumerate(self.ids) if job is None and i not in maybe]
        self.reason = reason
        super().__init__(f"{self.summary()}: {reason}")

    def summary(self, what: str = "items", numbers: Sequence[int] | None = None) -> str:
        """How many went in, may have, did not, each with its items as ranges; ``numbers``
        maps an index to the caller's own number for it (e.g. its input line)."""
        parts = [
            f"{len(self.placed)} of {len(self.ids)} jobs were enqueued"
            + _listed(self.placed, what, numbers)
        ]
        if self.maybe_inserted:
            parts.append(
                f"{len(self.maybe_inserted)} maybe inserted"
                + _listed(
                    self.maybe_inserted,
                    what,
                    numbers,
                    "replies lost with the connection, not put again",
                )
            )
        if self.not_placed:
            parts.append(
                f"{len(self.not_placed)} not enqueued" + _listed(self.not_placed, what, numbers)
            )
        return "; ".join(parts)


def _listed(
    indexes: Sequence[int], what: str, numbers: Sequence[int] | None, note: str = ""
) -> str:
    """' (items 0-4, 9)': runs of consecutive indexes, shown by their numbers."""
    if not indexes:
        return ""
    shown = numbers if numbers is not None else range(max(indexes) + 1)
    runs: list[str] = []
    first = last = indexes[0]
    for index in [*indexes[1:], -1]:
        if index == last + 1:
            last = index
            continue
        low, high = shown[first], shown[last]
        runs.append(f"{low}-{high}" if high != low else f"{low}")
        first = last = index
    return f" ({what} {', '.join(runs)}{'; ' + note if note else ''})"


class UnknownTube(BeanfleetError):
    """A tube the server does not know (no jobs and no watchers)."""


class JobNotFound(BeanfleetError):
    """No job with that id, or not in the state the command needs."""


class HandlerFailure(Exception):
    """Base of the exceptions a handler raises to steer its job.

    Not a :class:`BeanfleetError`: these are signals from user code, not errors of beanfleet.
    """


class PermanentFailure(HandlerFailure):
    """Raise from a handler to bury the job at once: retrying cannot help."""


class RetryLater(HandlerFailure):
    """Raise from a handler to retry the job after ``delay`` seconds (counts as an attempt)."""

    def __init__(self, delay: float, reason: str = "") -> None:
        self.delay = max(0.0, float(delay))
        super().__init__(reason or f"retry in {self.delay:g}s")


class JobTimeout(BaseException):
    """Raised inside a handler when it runs longer than the worker's ``--timeout``.

    A BaseException, like KeyboardInterrupt, so a handler's ``except Exception`` does not
    swallow it; catch it explicitly to clean up, then re-raise.  It counts as a failed
    attempt.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"timeout after {seconds:g}s")
