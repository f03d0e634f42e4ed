"""beanfleet: worker pools, producer API, admin CLI and metrics for beanstalkd."""

from beanfleet.errors import (
    BeanfleetError,
    BodyError,
    ConfigError,
    ConnectError,
    JobNotFound,
    JobTimeout,
    JobTooBig,
    PermanentFailure,
    RetryLater,
    ServerDraining,
    ServerFull,
    UnknownTube,
)
from beanfleet.priorities import PRIORITIES
from beanfleet.producer import Producer, put, put_many, schedule_at

__all__ = [
    "PRIORITIES",
    "BeanfleetError",
    "BodyError",
    "ConfigError",
    "ConnectError",
    "JobNotFound",
    "JobTimeout",
    "JobTooBig",
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
