"""Compatibility only: the worker is :class:`beanfleet.work.loop.Worker` (issue 19).

Kept for ``drills/server_down.py`` (``RECONNECT_CAP``) until it imports the new paths.
"""

from beanfleet.work.link import RECONNECT_CAP
from beanfleet.work.loop import Worker

__all__ = ["RECONNECT_CAP", "Worker"]
