"""beanfleet: worker pools, producer API, admin CLI and metrics for beanstalkd.

The producer API is imported on first use, so ``beanfleet.fleet`` (which the controller's
Ansible imports) does not pull in greenstalk.
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
    from beanfleet.produce.producer import Producer, put, put_many, schedule_at

_PRODUCER_NAMES = ("Producer", "put", "put_many", "schedule_at")


def __getattr__(name: str) -> Any:
    if name in _PRODUCER_NAMES:
        from beanfleet.produce import producer  # noqa: PLC0415 - lazy: greenstalk on first use

        return getattr(producer, name)
    raise AttributeError(f"module 'beanfleet' has no attribute {name!r}")


__all__ = [
    "PRIORITIES",
    "BeanfleetError",
    "BodyError",
    "ConfigError",
    "ConnectError",
    "JobNotFound",
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
