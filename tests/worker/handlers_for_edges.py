"""Handlers of the issue 18 edge tests (test_edges_handlers.py): ones that would "succeed"
without running (async def, generators) and ways to hide them from a start-up check.

Each records what really ran in the ``out`` file named by the job body, as
``handlers_for_tests`` does.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterator
from typing import Any

from beanfleet.work.handlers import JobInfo
from handlers_for_tests import record


async def async_handler(data: Any, job: JobInfo) -> None:
    record(data, job)


def generator_handler(data: Any, job: JobInfo) -> Iterator[None]:
    record(data, job)
    yield None


async def async_generator_handler(data: Any, job: JobInfo) -> AsyncIterator[None]:
    record(data, job)
    yield None


class AsyncCallable:
    async def __call__(self, data: Any, job: JobInfo) -> None:
        record(data, job)


async_callable = AsyncCallable()
async_partial = functools.partial(async_handler)


# Start-up inspection cannot see through these: plain functions that return the coroutine
# or generator.
def async_behind_wrapper(data: Any, job: JobInfo) -> Any:
    return async_handler(data, job)


def generator_behind_wrapper(data: Any, job: JobInfo) -> Any:
    return generator_handler(data, job)
