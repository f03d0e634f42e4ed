"""Two real beanstalkd processes per test, each with its own binlog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from beanstalkd_server import Beanstalkd


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Beanstalkd, Beanstalkd]]:
    first = Beanstalkd(binlog_dir=tmp_path / "binlog-a")
    second = Beanstalkd(binlog_dir=tmp_path / "binlog-b")
    first.start()
    second.start()
    try:
        yield first, second
    finally:
        for server in (first, second):
            server.thaw()  # a test may have frozen it
            server.kill()
