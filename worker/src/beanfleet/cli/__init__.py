"""The ``beanfleet`` command: one click group (:func:`main`, the console script's entry
point ``beanfleet.cli:main``); each command family is a module of this package (``work``,
``produce``, ``admin``, ``exporter``, ``metrics_endpoint``, ``render``; shared options in
``options``).

Owns argument parsing and output: the only package that imports ``click`` for commands and
formats what users read.  May import every package below it: ``metrics``, ``fleet``
(``render``), ``work``, ``produce``, ``admin``, ``wire`` and the base modules.  Nothing
imports ``cli``.

Layers, top to bottom (each imports only the layers below it; modules joined by ``|``
do not import each other): ``cli`` → ``metrics | fleet`` → ``work | produce | admin`` →
``wire`` → ``names | priorities | display`` → ``bounds`` → ``errors``.  The contracts
are in ``.importlinter`` (``make lint`` runs ``lint-imports``).
"""

from __future__ import annotations

import functools
import select
import sys
from collections.abc import Sequence
from typing import Any

import click
import greenstalk

from beanfleet.cli import admin, exporter, metrics_endpoint, produce, render, work
from beanfleet.errors import BeanfleetError


class _Group(click.Group):
    """Every error is one line on stderr: exit 2 for usage errors, 1 for runtime errors."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        run = functools.partial(
            super().main, args, prog_name, complete_var, standalone_mode=False, **extra
        )
        if not standalone_mode:
            return run()
        try:
            result: Any = run()
        except click.UsageError as exc:
            # click's default prints the usage block too; operators asked for one line.
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            click.echo(f"beanfleet: error: {exc.format_message()}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"beanfleet: error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("beanfleet: aborted", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BeanfleetError as exc:
            _fail(str(exc))
        except greenstalk.Error as exc:
            _fail(f"beanstalkd replied {type(exc).__name__}: {exc}")
        except BrokenPipeError:
            if _stdout_closed():
                # The reader of our output left (`beanfleet stats | true`): not the
                # server's fault.  click's main exits 1 quietly on EPIPE, like a C tool.
                raise
            _fail("lost connection to beanstalkd: Broken pipe")
        except ConnectionError as exc:
            _fail(f"lost connection to beanstalkd: {exc}")


def _stdout_closed() -> bool:
    """True when stdout is a pipe (or socket) whose reading end is closed."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        events = poller.poll(0)
    except (OSError, ValueError):
        return False
    return any(mask & (select.POLLERR | select.POLLHUP) for _, mask in events)


def _fail(message: str) -> None:
    click.echo(f"beanfleet: error: {message}", err=True)
    sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="beanfleet")
def main() -> None:
    """Worker pools, producer and admin tools for the beanstalkd work queue."""


for _module in (work, produce, admin, exporter, metrics_endpoint, render):
    for _command in _module.COMMANDS:
        main.add_command(_command)
