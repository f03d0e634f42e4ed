"""Fixtures for the worker tests (the helpers live in worker_support.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from beanstalkd_server import Beanstalkd
from worker_support import Queue, WorkerProcess


@pytest.fixture
def queue(beanstalkd: Beanstalkd) -> Iterator[Queue]:
    q = Queue(beanstalkd)
    try:
        yield q
    finally:
        q.close()


@pytest.fixture
def spawn_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def spawn(*args: str, env: Mapping[str, str] | None = None) -> WorkerProcess:
        process = WorkerProcess(list(args), tmp_path / f"worker-{len(started)}.log", env)
        started.append(process)
        return process

    try:
        yield spawn
    finally:
        for process in started:
            process.stop()
