"""Helpers for the several-servers tests: a direct view of each server, and waits."""

from __future__ import annotations

from typing import Any

import greenstalk
from beanstalkd_server import Beanstalkd
from waiting import wait_for  # noqa: F401 - the tests import it from here


def tube_count(server: Beanstalkd, tube: str, state: str = "ready") -> int:
    with greenstalk.Client(server.pair, encoding=None) as client:
        try:
            return int(client.stats_tube(tube)[f"current-jobs-{state}"])  # type: ignore[literal-required]
        except greenstalk.NotFoundError:
            return 0


def put_direct(server: Beanstalkd, tube: str, body: bytes) -> int:
    with greenstalk.Client(server.pair, encoding=None, use=tube) as client:
        return client.put(body)


def peek_body(server: Beanstalkd, job_id: int) -> Any:
    with greenstalk.Client(server.pair, encoding=None) as client:
        try:
            return client.peek(job_id).body
        except greenstalk.NotFoundError:
            return None
