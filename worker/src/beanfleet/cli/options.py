"""Options shared by several commands: ``--server``, ``--json``, ``--listen``, and the
builders of a bounded number (:class:`Count`, :class:`Number`, :func:`number_option`), a
choice and a directory option, so each command states only its flags, ranges and help.

May import: the base modules, :mod:`beanfleet.metrics.http` (the listen address) and click.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from beanfleet.bounds import check_number, parse_int, shown
from beanfleet.errors import ConfigError
from beanfleet.metrics.http import parse_listen
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


def options(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """Several option decorators as one, listed (and shown by ``--help``) in this order."""

    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


def number_option(
    flag: str,
    kind: click.ParamType[Any, Any],
    default: float | None,
    help: str,
    *,
    metavar: str | None = None,
    callback: Callable[[click.Context, click.Parameter, Any], Any] | None = None,
) -> Callable[[F], F]:
    """A bounded number (``kind``: :class:`Count` or :class:`Number`); ``--help`` shows the
    default when there is one."""
    return click.option(
        flag,
        type=kind,
        default=default,
        show_default=default is not None,
        metavar=metavar,
        callback=callback,
        help=help,
    )


def choice_option(flag: str, choices: tuple[str, ...], default: str, help: str) -> Callable[[F], F]:
    """One of ``choices``, the default shown by ``--help``."""
    return click.option(
        flag, type=click.Choice(choices), default=default, show_default=True, help=help
    )


def dir_option(flag: str, help: str, *, envvar: str | None = None) -> Callable[[F], F]:
    """A directory (``DIR``, not a file), unset by default."""
    return click.option(
        flag,
        type=click.Path(file_okay=False),
        default=None,
        envvar=envvar,
        metavar="DIR",
        help=help,
    )


# The command-line faces of bounds' checks: a bad value is a usage error (exit 2).


class Count(click.ParamType[int, Any]):
    """A command-line integer in ``[low, high]`` (:func:`parse_int`; a usage error, exit 2)."""

    name = "integer"

    def __init__(self, what: str, *, low: int, high: int) -> None:
        self.what = what
        self.low, self.high = low, high

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # a default, checked like a typed value
        try:
            return parse_int(str(value), self.what, low=self.low, high=self.high)
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


class Number(click.ParamType[float, Any]):
    """A command-line number: parsed as a float, then :func:`check_number` (exit 2)."""

    name = "number"

    def __init__(self, what: str, *, low: float, high: float, low_open: bool = False) -> None:
        self.what = what
        self.low, self.high, self.low_open = low, high, low_open

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{shown(value)} is not a number", param, ctx)
        try:
            return check_number(
                number, self.what, low=self.low, high=self.high, low_open=self.low_open
            )
        except ConfigError as exc:
            self.fail(str(exc).replace(shown(number), shown(value)), param, ctx)


def listen_option(default: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The ``--listen ADDR:PORT`` option; a malformed address is a usage error (exit 2)."""

    def check(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
        try:
            parse_listen(value)
        except ConfigError as exc:
            raise click.BadParameter(str(exc)) from None
        return value

    return click.option(
        "--listen",
        default=default,
        show_default=True,
        callback=check,
        metavar="ADDR:PORT",
        help="where to serve /metrics",
    )
