"""Serving a WSGI app for Prometheus scrapes: the ``--listen`` address and the HTTP server
shared by ``beanfleet exporter`` and ``beanfleet metrics-endpoint``."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client.exposition import ThreadingWSGIServer

from beanfleet.bounds import shown
from beanfleet.errors import BeanfleetError, ConfigError
from beanfleet.names import parse_port


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or ``:PORT`` (all interfaces); port 0 picks a free one."""
    host, sep, port_text = value.rpartition(":")
    what = f"listen address {shown(value)}"
    if not sep:
        raise ConfigError(f"invalid {what}: expected HOST:PORT")
    port = parse_port(port_text, what, low=0)
    # A metrics endpoint is scraped from other hosts, so ":PORT" means every interface.
    host = host.removeprefix("[").removesuffix("]") or "0.0.0.0"  # noqa: S104
    return host, port


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would drown stderr; errors still reach the scraper."""


class _Server(ThreadingWSGIServer):
    # socketserver's listen backlog is 5: a burst of scrapers (several Prometheus, a
    # federation, curl loops) arriving while the process is busy had their connections
    # dropped.  The kernel caps this at net.core.somaxconn.
    request_queue_size = socket.SOMAXCONN


class _Server6(_Server):
    address_family = socket.AF_INET6


def serve(app: Callable[..., Any], listen: str, what: str) -> None:
    """Serve ``app`` on ``listen`` until interrupted; says where on stderr (``what`` names
    the metrics: "metrics of beanstalkd HOST:PORT")."""
    host, port = parse_listen(listen)
    server_class = _Server6 if ":" in host else _Server
    try:
        httpd = make_server(host, port, app, server_class, handler_class=_QuietHandler)
    except OSError as exc:
        raise BeanfleetError(f"cannot listen on {listen}: {exc.strerror or exc}") from exc
    shown = f"[{host}]" if ":" in host else host
    print(
        f"serving {what} on http://{shown}:{httpd.server_port}/metrics", file=sys.stderr, flush=True
    )
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
