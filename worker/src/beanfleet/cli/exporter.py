"""``beanfleet exporter``: serve beanstalkd's stats as Prometheus metrics over HTTP.

One collector over the servers given (1..N); whether series carry a ``server`` label is
:func:`beanfleet.cli.format.label_servers`'s to say.  May import: ``metrics``, :mod:`.options`,
:mod:`.format`, the base modules and click.
"""

from __future__ import annotations

import click
from prometheus_client import make_wsgi_app

from beanfleet.bounds import MAX_COUNT
from beanfleet.cli.format import label_servers
from beanfleet.cli.options import (
    Count,
    Number,
    dir_option,
    listen_option,
    number_option,
    server_option,
)
from beanfleet.errors import ConfigError
from beanfleet.metrics.exporter import DEFAULT_TIMEOUT, BeanstalkdCollector, make_registry
from beanfleet.metrics.http import serve

DEFAULT_LISTEN = "0.0.0.0:9650"


@click.command("exporter")
@server_option
@listen_option(DEFAULT_LISTEN)
@number_option(
    "--scan-limit",
    Count("scan limit", low=0, high=MAX_COUNT),
    100_000,
    "most job ids examined per scrape to find oldest ready jobs",
)
@dir_option(
    "--binlog-dir",
    "beanstalkd's binlog directory (-b): serve the free and total bytes of its file system",
)
@number_option(
    "--timeout",
    Number("timeout", low=0, low_open=True, high=3600),
    DEFAULT_TIMEOUT,
    "longest wait of a scrape for beanstalkd; a server that has not answered by then "
    "is beanfleet_up 0 (keep it under Prometheus' scrape timeout)",
    metavar="SECONDS",
)
def exporter_command(
    servers: list[str], listen: str, scan_limit: int, binlog_dir: str | None, timeout: float
) -> None:
    """Serve Prometheus metrics of a beanstalkd server, queried on every scrape.

    beanfleet_up is 0 (and the scrape still succeeds) while beanstalkd is unreachable or
    does not answer within --timeout.  With several servers every series has a server label
    (none with one server, as before).
    """
    labelled = label_servers(servers)
    if binlog_dir is not None and labelled:
        # The binlog's file system is the local server's (one exporter per queue host), and
        # its series carry no server label.
        raise ConfigError("--binlog-dir needs a single --server (the local beanstalkd)")
    collector = BeanstalkdCollector(
        servers,
        label_servers=labelled,
        timeout=timeout,
        scan_limit=scan_limit,
        binlog_dir=binlog_dir,
    )
    server = ",".join(servers)
    try:
        serve(make_wsgi_app(make_registry(collector)), listen, f"metrics of beanstalkd {server}")
    finally:
        collector.close()


COMMANDS: list[click.Command] = [exporter_command]
