"""Server addresses and tube names: parsing and validation, in one place."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from beanfleet.errors import ConfigError

DEFAULT_SERVER = "127.0.0.1:11300"
SERVER_ENV = "BEANFLEET_SERVER"

# beanstalkd's own rule (protocol.txt): 1-200 bytes of these characters, no leading hyphen.
_TUBE_RE = re.compile(r"^[A-Za-z0-9+/;.$_()][A-Za-z0-9\-+/;.$_()]{0,199}$")


def resolve_server(value: str | None) -> str:
    """The option's value, else ``$BEANFLEET_SERVER``, else the default."""
    return value or os.environ.get(SERVER_ENV) or DEFAULT_SERVER


def parse_servers(value: str) -> list[str]:
    """``a:11300,b:11300`` to its addresses, each checked; a repeated one is an error
    (it would count twice in every sum and get twice the jobs)."""
    servers = [part.strip() for part in value.split(",")]
    if not all(servers):
        raise ConfigError(f"invalid server list {value!r}: an empty entry")
    for server in servers:
        parse_server(server)
    repeated = sorted({s for s in servers if servers.count(s) > 1})
    if repeated:
        raise ConfigError(f"invalid server list {value!r}: {', '.join(repeated)} given twice")
    return servers


def resolve_servers(values: str | Iterable[str] | None) -> list[str]:
    """Options (each may be a comma list), else ``$BEANFLEET_SERVER``, else the default."""
    given = [values] if isinstance(values, str) else list(values or ())
    if not given:
        given = [os.environ.get(SERVER_ENV) or DEFAULT_SERVER]
    return parse_servers(",".join(given))


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
