"""Server addresses and tube names: parsing and validation, in one place."""

from __future__ import annotations

import os
import re

from beanfleet.errors import ConfigError

DEFAULT_SERVER = "127.0.0.1:11300"
SERVER_ENV = "BEANFLEET_SERVER"

# beanstalkd's own rule (protocol.txt): 1-200 bytes of these characters, no leading hyphen.
_TUBE_RE = re.compile(r"^[A-Za-z0-9+/;.$_()][A-Za-z0-9\-+/;.$_()]{0,199}$")


def resolve_server(value: str | None) -> str:
    """The option's value, else ``$BEANFLEET_SERVER``, else the default."""
    return value or os.environ.get(SERVER_ENV) or DEFAULT_SERVER


def parse_server(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) to a (host, port) pair."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not (port_text.isascii() and port_text.isdigit()):
        raise ConfigError(f"invalid server address {value!r}: expected HOST:PORT")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ConfigError(f"invalid server address {value!r}: port out of range")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


def check_tube(name: str) -> str:
    """Return ``name`` if it is a valid beanstalkd tube name, else raise ConfigError."""
    if not _TUBE_RE.match(name):
        raise ConfigError(
            f"invalid tube name {name!r}: 1-200 characters of letters, digits and -+/;.$_(), "
            "not starting with '-'"
        )
    return name
