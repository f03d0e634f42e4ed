"""Fixtures for the producer tests: a greenstalk client and helpers to read jobs back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import greenstalk
import pytest
from beanstalkd_server import Beanstalkd


@pytest.fixture
def inspector(beanstalkd: Beanstalkd) -> Iterator[greenstalk.Client[bytes]]:
    """A raw-bytes client for looking at what the producer enqueued."""
    with greenstalk.Client(beanstalkd.pair, encoding=None) as client:
        yield client


@pytest.fixture
def small_server(tmp_path: Path) -> Iterator[Beanstalkd]:
    """A beanstalkd whose max-job-size is 100 bytes."""
    server = Beanstalkd(binlog_dir=tmp_path / "small-binlog", max_job_size=100)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def pair(beanstalkd: Beanstalkd, second: Beanstalkd) -> tuple[Beanstalkd, Beanstalkd]:
    """Two servers, for the tests that need a second one to go to (failover)."""
    return beanstalkd, second
