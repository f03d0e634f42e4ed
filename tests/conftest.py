"""Shared fixtures: a real beanstalkd per test, with its binlog in the test's temp dir."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from beanstalkd_server import Beanstalkd


def _serve(binlog_dir: Path) -> Iterator[Beanstalkd]:
    """One beanstalkd for the test's length; killed after it (thawed first: a test may have
    frozen it)."""
    server = Beanstalkd(binlog_dir=binlog_dir)
    server.start()
    try:
        yield server
    finally:
        server.thaw()
        server.kill()


@pytest.fixture
def beanstalkd(tmp_path: Path) -> Iterator[Beanstalkd]:
    yield from _serve(tmp_path / "binlog")


@pytest.fixture
def second(tmp_path: Path) -> Iterator[Beanstalkd]:
    """Another beanstalkd beside ``beanstalkd``, with its own binlog (a worker or an exporter
    serving two servers)."""
    yield from _serve(tmp_path / "binlog-second")


@pytest.fixture
def server_address(beanstalkd: Beanstalkd) -> str:
    return beanstalkd.address


@pytest.fixture(params=[1, 2], ids=["one-server", "two-servers"])
def servers(
    request: pytest.FixtureRequest, beanstalkd: Beanstalkd, second: Beanstalkd
) -> list[Beanstalkd]:
    """The same test with one server and with two: one server is a set of one, not another
    code path.  (The second server is started either way; a one-server run ignores it.)"""
    return [beanstalkd, second][: request.param]


@pytest.fixture
def server_list(servers: list[Beanstalkd]) -> str:
    """``servers`` as a ``--server`` / ``BEANFLEET_SERVER`` value."""
    return ",".join(server.address for server in servers)
