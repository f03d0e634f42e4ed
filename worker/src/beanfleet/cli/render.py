"""``beanfleet render``: the fleet's units and programs from FLEET.yml, offline."""

from __future__ import annotations

from pathlib import Path

import click

from beanfleet.fleet.render import render


@click.command("render")
@click.option(
    "--config",
    "config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    metavar="FLEET.yml",
    help="fleet description: the same variables as the inventory's group_vars",
)
@click.option(
    "--manager",
    type=click.Choice(["systemd", "supervisor"]),
    default=None,
    help="process manager [default: the fleet's beanfleet_manager]",
)
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="directory to write into, laid out like the hosts (OUT/etc/...)",
)
@click.option(
    "--prometheus",
    is_flag=True,
    help="render the Prometheus scrape config and alert rules instead (monitoring_enabled)",
)
def render_cmd(config: Path, manager: str | None, out: Path, prometheus: bool) -> None:
    """Render the fleet's systemd units or supervisor programs and beanstalkd settings,
    or with --prometheus its Prometheus scrape config and alert rules."""
    for path in render(config, out, manager, prometheus=prometheus):
        click.echo(path)


COMMANDS: list[click.Command] = [render_cmd]
