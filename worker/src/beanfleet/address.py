"""Temporary: ``fleet.py`` still imports these names from here (issue 19, phase 1).

The code lives in :mod:`beanfleet.names`.  Removed when ``fleet/`` lands and imports
``beanfleet.names`` itself; nothing else may import this module.
"""

from beanfleet.names import parse_server, parse_servers

__all__ = ["parse_server", "parse_servers"]
