"""Helpers for the admin tests: put, bury and run the CLI."""

from __future__ import annotations

import greenstalk
from beanfleet.cli import main
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
