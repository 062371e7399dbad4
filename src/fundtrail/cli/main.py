"""The ``fundtrail`` application: registers one sub-command module per noun."""

from __future__ import annotations

import importlib
import logging
import os

import typer

from fundtrail import __version__

app = typer.Typer(name="fundtrail", no_args_is_help=True, add_completion=False,
                  help="Trace, freeze, seize and return crypto assets that fund cybercrime.",
                  pretty_exceptions_enable=False)

# Each module defines `register(app)`, adding its commands or sub-apps. One line per noun.
COMMAND_MODULES = [
    "fundtrail.cli.ingest",
    "fundtrail.cli.lookup",
    "fundtrail.cli.store",
    "fundtrail.cli.tags",
    "fundtrail.cli.sanctions",
    "fundtrail.cli.cluster",
    "fundtrail.cli.conversions",
    "fundtrail.cli.trace",
    "fundtrail.cli.scenario",
    "fundtrail.cli.demo",
    "fundtrail.cli.evaluate",
    "fundtrail.cli.serve",
    "fundtrail.cli.token",
    "fundtrail.cli.case",
    "fundtrail.cli.evidence",
    "fundtrail.cli.request",
    "fundtrail.cli.ledger",
    "fundtrail.cli.report",
    "fundtrail.cli.audit",
    "fundtrail.cli.retention",
    "fundtrail.cli.db",
    "fundtrail.cli.user",
    "fundtrail.cli.agreement",
    "fundtrail.cli.agency",
    "fundtrail.cli.share",
    "fundtrail.cli.reference",
    "fundtrail.cli.watch",
    "fundtrail.cli.alerts",
    "fundtrail.cli.exercise",
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fundtrail {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit."),
         verbose: bool = typer.Option(False, "--verbose", "-v",
                                      help="Log progress details to stderr.")) -> None:
    """FundTrail: trace funds, judge risk, act on cases, cooperate across borders."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def run() -> None:
    """Console-script entry point."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
