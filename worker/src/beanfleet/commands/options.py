"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from beanfleet.address import DEFAULT_SERVER, SERVER_ENV, resolve_server

F = TypeVar("F", bound=Callable[..., Any])


def server_option(func: F) -> F:
    """``--server HOST:PORT``, falling back to $BEANFLEET_SERVER, then 127.0.0.1:11300."""
    return click.option(
        "--server",
        "-s",
        metavar="HOST:PORT",
        default=None,
        callback=lambda _ctx, _param, value: resolve_server(value),
        help=f"beanstalkd address [env {SERVER_ENV}; default {DEFAULT_SERVER}]",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="print JSON")(func)
