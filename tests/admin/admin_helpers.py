"""Helpers for the admin tests: put, bury and run the CLI."""

from __future__ import annotations

import greenstalk
from beanfleet.cli import main
from beanstalkd_server import Beanstalkd
from click.testing import CliRunner


def put(client: greenstalk.Client[bytes], tube: str, body: bytes, priority: int = 1024) -> int:
    client.use(tube)
    return client.put(body, priority=priority)


def bury(client: greenstalk.Client[bytes], job_id: int) -> None:
    """Reserve exactly this job and bury it."""
    job = client.reserve_job(job_id)
    client.bury(job)


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def put_on(server: Beanstalkd, tube: str, body: bytes) -> int:
    with greenstalk.Client(server.pair, encoding=None, use=tube) as client:
        return client.put(body)


def bury_on(server: Beanstalkd, tube: str, body: bytes = b"{}") -> int:
    """Put a job on ``server`` and bury it."""
    job_id = put_on(server, tube, body)
    with greenstalk.Client(server.pair, encoding=None, watch=tube) as client:
        client.bury(client.reserve_job(job_id))
    return job_id


def tube_count(server: Beanstalkd, tube: str, state: str = "ready") -> int:
    with greenstalk.Client(server.pair, encoding=None) as client:
        try:
            return int(client.stats_tube(tube)[f"current-jobs-{state}"])  # type: ignore[literal-required]
        except greenstalk.NotFoundError:
            return 0


def peek_body(server: Beanstalkd, job_id: int) -> bytes | None:
    with greenstalk.Client(server.pair, encoding=None) as client:
        try:
            return client.peek(job_id).body
        except greenstalk.NotFoundError:
            return None
