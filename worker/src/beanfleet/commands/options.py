"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from beanfleet.address import DEFAULT_SERVER, SERVER_ENV, parse_server, resolve_server
from beanfleet.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


def _server(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str:
    # A bad address is a usage error (exit 2) for every command, the exporter included.
    server = resolve_server(value)
    try:
        parse_server(server)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="'--server'") from None
    return server


def server_option(func: F) -> F:
    """``--server HOST:PORT``, falling back to $BEANFLEET_SERVER, then 127.0.0.1:11300."""
    return click.option(
        "--server",
        "-s",
        metavar="HOST:PORT",
        default=None,
        callback=_server,
        help=f"beanstalkd address [env {SERVER_ENV}; default {DEFAULT_SERVER}]",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="print JSON")(func)
