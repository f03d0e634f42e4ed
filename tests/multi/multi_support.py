"""Helpers for the several-servers tests: a direct view of each server, and waits."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import greenstalk
from beanstalkd_server import Beanstalkd

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, what: str) -> T:
    """Poll until ``predicate()`` is truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


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
