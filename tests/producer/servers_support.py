"""Helpers for the producer tests over a set of servers: a direct view of each server, and
which server holds a job."""

from __future__ import annotations

from typing import Any

import greenstalk
from beanfleet.wire.jobref import JobRef
from beanstalkd_server import Beanstalkd


def tube_count(server: Beanstalkd, tube: str) -> int:
    with greenstalk.Client(server.pair, encoding=None) as client:
        try:
            return int(client.stats_tube(tube)["current-jobs-ready"])
        except greenstalk.NotFoundError:
            return 0


def peek_body(server: Beanstalkd, job_id: int) -> Any:
    with greenstalk.Client(server.pair, encoding=None) as client:
        try:
            return client.peek(job_id).body
        except greenstalk.NotFoundError:
            return None


def server_of(job: int | JobRef, servers: list[Beanstalkd]) -> Beanstalkd:
    """The server holding ``job``: a JobRef names it; a bare id means the only server."""
    if isinstance(job, JobRef):
        return next(server for server in servers if server.address == job.server)
    assert len(servers) == 1 and type(job) is int, job
    return servers[0]


def addresses(servers: list[Beanstalkd]) -> list[str]:
    return [server.address for server in servers]
