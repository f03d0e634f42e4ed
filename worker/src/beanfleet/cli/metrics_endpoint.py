"""``beanfleet metrics-endpoint``: serve the worker metrics of this host's processes."""

from __future__ import annotations

import click
from prometheus_client import make_wsgi_app

from beanfleet.cli.options import listen_option
from beanfleet.metrics.endpoint import make_registry
from beanfleet.metrics.http import serve
from beanfleet.metrics.worker import METRICS_DIR_ENV

DEFAULT_LISTEN = "0.0.0.0:9651"


@click.command("metrics-endpoint")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    required=True,
    envvar=METRICS_DIR_ENV,
    metavar="DIR",
    help=f"the workers' metrics directory (their --metrics-dir; env {METRICS_DIR_ENV})",
)
@listen_option(DEFAULT_LISTEN)
def metrics_endpoint(directory: str, listen: str) -> None:
    """Serve the summed metrics of every worker of this host (beanfleet work --metrics-dir).

    Files of workers that are gone are tidied before each scrape: their processes gauge
    disappears, their counts stay.
    """
    try:
        registry = make_registry(directory)
    except OSError as exc:
        raise click.ClickException(f"cannot use metrics directory {directory}: {exc}") from None
    serve(make_wsgi_app(registry), listen, f"worker metrics of {directory}")


COMMANDS: list[click.Command] = [metrics_endpoint]
