"""Fixtures for the admin tests."""

from __future__ import annotations

from collections.abc import Iterator

import greenstalk
import pytest
from beanstalkd_server import Beanstalkd


@pytest.fixture
def client(beanstalkd: Beanstalkd) -> Iterator[greenstalk.Client[bytes]]:
    with greenstalk.Client(beanstalkd.pair, encoding=None) as c:
        yield c
