"""Server addresses and tube names: parsing and validation, in one place.

An address is written ``HOST:PORT``, ``[V6]:PORT`` for IPv6.  Every address is returned in
one canonical spelling (IPv4 as a dotted quad, so ``127.1`` is ``127.0.0.1``; IPv6
compressed, in brackets; the port without leading zeros; host names lower-case), so the
same server spelled two ways is one server: in a list, in ``SERVER/ID`` job ids, in labels.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Iterable

from beanfleet.bounds import parse_int, shown
from beanfleet.errors import ConfigError

DEFAULT_SERVER = "127.0.0.1:11300"
SERVER_ENV = "BEANFLEET_SERVER"

# beanstalkd's own rule (protocol.txt): 1-200 bytes of these characters, no leading hyphen.
_TUBE_RE = re.compile(r"^[A-Za-z0-9+/;.$_()][A-Za-z0-9\-+/;.$_()]{0,199}$")

# A host name (RFC 1123 labels; "_" too, which some internal DNS zones use).
_LABEL_RE = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
# The numeric IPv4 forms inet_aton (and so getaddrinfo) takes: 1-4 parts, decimal, octal or
# hex ("127.1", "0x7f.0.0.1").  Checked first: glibc's inet_aton ignores trailing junk.
_IPV4_RE = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}$", re.IGNORECASE)


def resolve_server(value: str | None) -> str:
    """The option's value, else ``$BEANFLEET_SERVER``, else the default."""
    return value or os.environ.get(SERVER_ENV) or DEFAULT_SERVER


def parse_servers(value: str, *, resolve: bool = False) -> list[str]:
    """``a:11300,b:11300`` to its addresses, each checked and in canonical spelling; a
    repeated server is an error (it would count twice in every sum and get twice the jobs).

    With ``resolve``, host names are looked up too, so ``localhost:11300`` and
    ``127.0.0.1:11300`` are found to be the same server (a name that does not resolve is
    compared by name: that server's own connection reports it)."""
    parts = [part.strip() for part in value.split(",")]
    if not all(parts):
        raise ConfigError(f"invalid server list {shown(value)}: an empty entry")
    servers = [canonical_server(part) for part in parts]
    seen: dict[object, str] = {}
    repeated: list[str] = []
    for given, server in zip(parts, servers, strict=True):
        keys = _identity(server, resolve and len(servers) > 1)
        first = next((seen[key] for key in keys if key in seen), None)
        if first is not None:
            same = given if first == given else f"{first} and {given}"
            repeated.append(f"{same} given twice" if first == given else f"{same} are one server")
            continue
        seen.update(dict.fromkeys(keys, given))
    if repeated:
        reasons = "; ".join(dict.fromkeys(repeated))
        raise ConfigError(f"invalid server list {shown(value)}: {reasons}")
    return servers


def resolve_servers(values: str | Iterable[str] | None) -> list[str]:
    """Options (each may be a comma list), else ``$BEANFLEET_SERVER``, else the default;
    the same server named two ways (``localhost`` and ``127.0.0.1``) is an error."""
    given = [values] if isinstance(values, str) else list(values or ())
    if not given:
        given = [os.environ.get(SERVER_ENV) or DEFAULT_SERVER]
    return parse_servers(",".join(given), resolve=True)


def parse_server(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) to a canonical (host, port) pair.

    ConfigError for anything that is not a well-formed address, so a typo is a usage error
    rather than a failed connection; an IPv6 address without brackets is refused
    (``::1:11300`` could be host ``::1`` port 11300, or host ``::1:11300`` without a port)."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"invalid server address {shown(value)}: expected HOST:PORT")
    port = parse_port(port_text, f"server address {shown(value)}")
    return _canonical_host(host, value), port


def parse_port(text: str, what: str, *, low: int = 1) -> int:
    """A TCP port ``low``..65535 in decimal (leading zeros allowed, any number of digits);
    ConfigError naming ``what`` (e.g. "server address 'h:p'") otherwise."""
    if not (text.isascii() and text.isdigit()):
        raise ConfigError(f"invalid {what}: expected HOST:PORT")
    try:
        return parse_int(text, "port", low=low, high=65535)
    except ConfigError:
        raise ConfigError(f"invalid {what}: port out of range ({low}..65535)") from None


def canonical_server(value: str) -> str:
    """``value`` as ``HOST:PORT`` in the canonical spelling (see the module docstring)."""
    host, port = parse_server(value)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _canonical_host(host: str, value: str) -> str:
    def bad(reason: str) -> ConfigError:
        return ConfigError(f"invalid server address {shown(value)}: {reason}")

    if host.startswith("[") or host.endswith("]"):
        try:
            if not (host.startswith("[") and host.endswith("]")):
                raise ValueError(host)
            return str(ipaddress.IPv6Address(host[1:-1]))
        except ValueError:
            raise bad("expected [IPV6]:PORT") from None
    if ":" in host:
        port = value.rpartition(":")[2]
        raise bad(f"an IPv6 address needs brackets, e.g. [{host}]:{port}")
    if _IPV4_RE.match(host):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            raise bad("not a valid IPv4 address") from None
    if host.rsplit(".", 1)[-1].isdigit():  # no host name ends in a number
        raise bad("not a valid IPv4 address")
    name = host.removesuffix(".")
    if len(name) > 253 or not all(_LABEL_RE.match(label) for label in name.split(".")):
        raise bad(f"{shown(host)} is not a host name or IP address")
    return name.lower()


def _identity(server: str, resolve: bool) -> list[object]:
    """What makes two canonical addresses one server: the address itself and, when asked,
    every (IP, port) a host name resolves to."""
    keys: list[object] = [server]
    host, port = parse_server(server)
    numeric = ":" in host or _IPV4_RE.match(host)
    if resolve and not numeric:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return keys
        keys += [(info[4][0], port) for info in infos]
    elif numeric:
        keys.append((host, port))
    return keys


def check_tube(name: str) -> str:
    """Return ``name`` if it is a valid beanstalkd tube name, else raise ConfigError."""
    if not _TUBE_RE.match(name):
        raise ConfigError(
            f"invalid tube name {shown(name)}: 1-200 characters of letters, digits and "
            "-+/;.$_(), not starting with '-'"
        )
    return name


# The one spelling of each name's rule, as pattern text (the fleet's schema and its checks
# use these; Ansible's side asks the fleet model, so nothing else copies them).
# A tube name: beanstalkd's rule, the pattern check_tube uses.
TUBE_PATTERN = _TUBE_RE.pattern
# A handler, MODULE:FUNCTION, each a dotted Python name in ASCII (the worker's own parser,
# beanfleet.work.handlers.HandlerSpec, accepts at least these).
_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
HANDLER_PATTERN = rf"^{_DOTTED}:{_DOTTED}$"
