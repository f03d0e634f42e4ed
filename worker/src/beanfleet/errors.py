"""The one exception hierarchy of beanfleet.

Every error a caller can act on derives from :class:`BeanfleetError`; the CLI prints its
message as a single line and exits 1.  Handlers raise :class:`PermanentFailure` or
:class:`RetryLater` to steer what the worker does with their job.
"""

from __future__ import annotations


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
    """A job body that is not valid JSON (or cannot be encoded as JSON)."""


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
