"""beanfleet: worker pools, producer API, admin CLI and metrics for beanstalkd.

The producer API (:mod:`beanfleet.produce`) and :class:`~beanfleet.wire.jobref.JobRef` (the
id a Producer over several servers returns) are imported on first use, so ``beanfleet.fleet``
(which the controller's Ansible imports) does not pull in greenstalk.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from beanfleet.errors import (
    BeanfleetError,
    BodyError,
    ConfigError,
    ConnectError,
    JobNotFound,
    JobTimeout,
    JobTooBig,
    PartialPut,
    PermanentFailure,
    RetryLater,
    ServerDraining,
    ServerFull,
    UnknownTube,
)
from beanfleet.priorities import PRIORITIES

if TYPE_CHECKING:
    from beanfleet.produce import Producer, put, put_many, schedule_at
    from beanfleet.wire.jobref import JobRef

_PRODUCER_NAMES = ("Producer", "put", "put_many", "schedule_at")


def __getattr__(name: str) -> Any:
    if name in _PRODUCER_NAMES:
        from beanfleet import produce  # noqa: PLC0415 - lazy: greenstalk on first use

        return getattr(produce, name)
    if name == "JobRef":
        from beanfleet.wire.jobref import JobRef  # noqa: PLC0415 - lazy, as the producer

        return JobRef
    raise AttributeError(f"module 'beanfleet' has no attribute {name!r}")


__all__ = [
    "PRIORITIES",
    "BeanfleetError",
    "BodyError",
    "ConfigError",
    "ConnectError",
    "JobNotFound",
    "JobRef",
    "JobTimeout",
    "JobTooBig",
    "PartialPut",
    "PermanentFailure",
    "Producer",
    "RetryLater",
    "ServerDraining",
    "ServerFull",
    "UnknownTube",
    "put",
    "put_many",
    "schedule_at",
]
