"""beanfleet: worker pools, producer API, admin CLI and metrics for beanstalkd."""

from beanfleet.errors import (
    BeanfleetError,
    BodyError,
    ConfigError,
    ConnectError,
    JobNotFound,
    JobTooBig,
    PermanentFailure,
    RetryLater,
    ServerDraining,
    UnknownTube,
)

__all__ = [
    "BeanfleetError",
    "BodyError",
    "ConfigError",
    "ConnectError",
    "JobNotFound",
    "JobTooBig",
    "PermanentFailure",
    "RetryLater",
    "ServerDraining",
    "UnknownTube",
]
