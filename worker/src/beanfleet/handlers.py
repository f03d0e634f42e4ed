"""Temporary: ``fleet.py`` still imports ``HandlerSpec`` from here (issue 19, phase 1).

The code lives in :mod:`beanfleet.work.handlers` (stdlib only, like :mod:`beanfleet.names`).
Removed when ``fleet/`` lands and imports it from there; nothing else may import this module.
"""

from beanfleet.work.handlers import HandlerSpec

__all__ = ["HandlerSpec"]
