"""The ``beanfleet`` command: one click group; each command lives in ``beanfleet.commands``."""

from __future__ import annotations

import sys
from typing import Any

import click
import greenstalk

from beanfleet.commands import admin, exporter, produce, render, work
from beanfleet.errors import BeanfleetError


class _Group(click.Group):
    """Turns beanfleet's and the server's errors into one line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BeanfleetError as exc:
            _fail(str(exc))
        except greenstalk.Error as exc:
            _fail(f"beanstalkd replied {type(exc).__name__}: {exc}")
        except ConnectionError as exc:
            _fail(f"lost connection to beanstalkd: {exc}")


def _fail(message: str) -> None:
    click.echo(f"beanfleet: error: {message}", err=True)
    sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="beanfleet")
def main() -> None:
    """Worker pools, producer and admin tools for the beanstalkd work queue."""


for _module in (work, produce, admin, exporter, render):
    for _command in _module.COMMANDS:
        main.add_command(_command)
