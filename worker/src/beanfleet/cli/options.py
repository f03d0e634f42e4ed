"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from beanfleet.errors import ConfigError
from beanfleet.names import DEFAULT_SERVER, SERVER_ENV, resolve_servers

F = TypeVar("F", bound=Callable[..., Any])


def _servers(_ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> list[str]:
    # A bad address is a usage error (exit 2) for every command, the exporter included.
    try:
        return resolve_servers(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="'--server'") from None


def server_option(func: F) -> F:
    """``--server HOST:PORT`` (repeatable, or a comma list), falling back to
    $BEANFLEET_SERVER, then 127.0.0.1:11300; the command gets ``servers``, a list."""
    return click.option(
        "--server",
        "-s",
        "servers",
        metavar="HOST:PORT[,HOST:PORT...]",
        multiple=True,
        callback=_servers,
        help=f"beanstalkd address, repeatable or comma-separated "
        f"[env {SERVER_ENV}; default {DEFAULT_SERVER}]",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="print JSON")(func)
