"""Compatibility only: several servers are one :class:`beanfleet.work.loop.Worker` (issue 19).

Kept for ``tests/multi/test_multi_admin.py`` until it builds a ``Worker`` itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from beanfleet.work.handlers import Handler
from beanfleet.work.loop import Worker


def ServersWorker(servers: Sequence[str], handlers: dict[str, Handler], **options: Any) -> Worker:
    """The old name of a worker over several servers: now simply a :class:`Worker`."""
    return Worker(servers, handlers, **options)
