"""``beanfleet exporter``: serve beanstalkd's stats as Prometheus metrics over HTTP."""

from __future__ import annotations

import socket
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import click
from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import CollectorRegistry

from beanfleet.commands.options import server_option
from beanfleet.errors import BeanfleetError, ConfigError
from beanfleet.metrics import BeanstalkdCollector
from beanfleet.multimetrics import ServersCollector

DEFAULT_LISTEN = "0.0.0.0:9650"


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or ``:PORT`` (all interfaces); port 0 picks a free one."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
        raise ConfigError(f"invalid listen address {value!r}: expected HOST:PORT")
    # An exporter is scraped from other hosts, so ":PORT" means every interface.
    host = host.removeprefix("[").removesuffix("]") or "0.0.0.0"  # noqa: S104
    return host, int(port_text)


def _listen_param(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        parse_listen(value)  # a malformed address is a usage error (exit 2)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would drown stderr; errors still reach the scraper."""


class _Server6(ThreadingWSGIServer):
    address_family = socket.AF_INET6


@click.command("exporter")
@server_option
@click.option(
    "--listen",
    default=DEFAULT_LISTEN,
    show_default=True,
    callback=_listen_param,
    metavar="ADDR:PORT",
    help="where to serve /metrics",
)
@click.option(
    "--scan-limit",
    type=click.IntRange(min=0),
    default=100_000,
    show_default=True,
    help="most job ids examined per scrape to find oldest ready jobs",
)
def exporter_command(servers: list[str], listen: str, scan_limit: int) -> None:
    """Serve Prometheus metrics of a beanstalkd server, queried on every scrape.

    beanfleet_up is 0 (and the scrape still succeeds) while beanstalkd is unreachable.
    With several servers every series has a server label (none with one server, as before).
    """
    host, port = parse_listen(listen)
    server = ",".join(servers)
    collector: BeanstalkdCollector | ServersCollector
    if len(servers) == 1:
        collector = BeanstalkdCollector(server, scan_limit=scan_limit)
    else:
        collector = ServersCollector(servers, scan_limit=scan_limit)
    registry = CollectorRegistry(auto_describe=False)  # only ours: no process/GC metrics
    registry.register(collector)
    app = make_wsgi_app(registry)
    server_class = _Server6 if ":" in host else ThreadingWSGIServer
    try:
        httpd = make_server(host, port, app, server_class, handler_class=_QuietHandler)
    except OSError as exc:
        raise BeanfleetError(f"cannot listen on {listen}: {exc.strerror or exc}") from exc
    shown = f"[{host}]" if ":" in host else host
    click.echo(
        f"serving metrics of beanstalkd {server} on http://{shown}:{httpd.server_port}/metrics",
        err=True,
    )
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
        if isinstance(collector, ServersCollector):
            collector.close()
        else:
            collector.admin.close()


COMMANDS: list[click.Command] = [exporter_command]
