"""Shared fixtures: a real beanstalkd per test, with its binlog in the test's temp dir."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from beanstalkd_server import Beanstalkd


@pytest.fixture
def beanstalkd(tmp_path: Path) -> Iterator[Beanstalkd]:
    server = Beanstalkd(binlog_dir=tmp_path / "binlog")
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def server_address(beanstalkd: Beanstalkd) -> str:
    return beanstalkd.address
