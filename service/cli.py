"""The ``samleng`` console script: every package's commands in one group.

A plain click group rather than Flask's FlaskGroup: listing the commands (``samleng --help``)
then needs no settings, and Flask's own options and the groups that extensions add to
app.cli stay out of the operator's way. A command that needs the app builds it when it runs
(with_appcontext, through the ScriptInfo that main() passes). The factory registers the same
commands on app.cli (each package's ``init_app``), for ``flask --app`` and tests.
"""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import ScriptInfo

from samleng.service import demo
from samleng.service.admin import cli as admin_cli
from samleng.service.app import create_app
from samleng.service.petitions import cli as petitions_cli
from samleng.service.platform.errors import ConfigError
from samleng.service.platform.logs import configure_logging
from samleng.service.tlog import cli as tlog_cli


def _create_app() -> Flask:
    try:
        return create_app()
    except ConfigError as exc:
        click.echo(f"samleng: {exc}", err=True)
        sys.exit(2)


cli = click.Group(
    "samleng",
    help="Samleng: anonymous petitions with verifiable counts.\n\n"
    "Settings come from SAMLENG_* variables and the instance folder's config.toml "
    "(SAMLENG_INSTANCE, by default ./instance); see README.md.",
)
for _command in (
    *petitions_cli.COMMANDS,
    *tlog_cli.COMMANDS,
    *admin_cli.COMMANDS,
    demo.demo_command,
):
    cli.add_command(_command)


def main() -> None:
    """Entry point of the ``samleng`` console script."""
    configure_logging()
    cli.main(prog_name="samleng", obj=ScriptInfo(create_app=_create_app, set_debug_flag=False))
