"""The ``fundtrail`` application: one sub-command module per noun, imported only when it is used.

:data:`COMMANDS` names every top-level command with the module that registers it and the first paragraph
of its help, so that ``fundtrail --help`` and shell completion list the commands without importing any
of them. A command's module is imported (and its ``register(app)`` run) when that command is invoked or
its own help is asked for, so a command pays only for what it uses. tests/cli/test_startup.py checks
that the table names exactly the commands the modules register, with the same help.

Typer converts each option's value (given or default, ``--help`` included) through a pydantic
``TypeAdapter`` that it builds on first use, which imports pydantic (~0.1 s) on every invocation.
:func:`_install_quick_coercion` converts the values whose conversion is plain (a text, a whole number
or a decimal written in digits, a choice, a path, lists of these) as Typer would, without pydantic, and
hands anything else (and every value Typer would refuse, so that its error messages stay its own) to
Typer's converter. tests/cli/test_coercion.py checks both give the same for every option of every
command.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any, NamedTuple, get_args, get_origin

import typer
from typer import _click
from typer.core import TyperCommand, TyperGroup

from fundtrail import __version__


class Listed(NamedTuple):
    """A top-level command as ``fundtrail --help`` lists it."""

    module: str
    """The module whose ``register(app)`` adds the command."""
    help: str
    """The first paragraph of the command's help."""


COMMANDS: dict[str, Listed] = {
    "address": Listed("fundtrail.cli.lookup",
                      "Balance, received, sent, first/last seen and transaction count, cluster, tags, "
                      "sanctions, exposure\nand risk with its evidence (the address profile, "
                      ":mod:`fundtrail.analysis.profile`)."),
    "tx": Listed("fundtrail.cli.lookup", "A transaction with its inputs and outputs, or transfers."),
    "patterns": Listed("fundtrail.cli.cluster",
                       "Transactions detected as CoinJoins, Whirlpool premixes or peel-chain steps, with "
                       "rule and params."),
    "trace": Listed("fundtrail.cli.trace",
                    "Trace funds from seeds with a taint policy: endpoints (services, CoinJoins, unspent) "
                    "and flows,\nacross swaps, bridges and pools onto other assets and chains."),
    "path": Listed("fundtrail.cli.trace",
                   "Shortest value-carrying paths from one address to another (owner hops and steps)."),
    "demo": Listed("fundtrail.cli.demo",
                   "Build the demo world, run a sample investigation, and print where the ransom went."),
    "evaluate": Listed("fundtrail.cli.evaluate",
                       "Generate worlds with ground truth and report precision and recall of FundTrail's "
                       "heuristics."),
    "serve": Listed("fundtrail.cli.serve",
                    "Serve the API (OpenAPI at /openapi.json, docs at /docs) and the dashboard for the "
                    "home."),
    "ingest": Listed("fundtrail.cli.ingest", "Load chain data from files or a node into the chain store."),
    "store": Listed("fundtrail.cli.store", "The chain store: summary, Parquet export and import."),
    "tags": Listed("fundtrail.cli.tags", "Attribution tags: GraphSense TagPacks and Etherscan labels."),
    "sanctions": Listed("fundtrail.cli.sanctions", "Sanctioned-address lists: import, check, diff."),
    "cluster": Listed("fundtrail.cli.cluster",
                      "Cluster addresses (co-spend, optionally change) and show a cluster."),
    "conversions": Listed("fundtrail.cli.conversions",
                          "List (or recompute with --detect) swaps, bridges and pools."),
    "scenario": Listed("fundtrail.cli.scenario", "Generated worlds with ground truth."),
    "token": Listed("fundtrail.cli.token", "API tokens and passwords of the service's users."),
    "case": Listed("fundtrail.cli.case", "Cases: subjects, tasks, evidence, legal hold."),
    "evidence": Listed("fundtrail.cli.evidence",
                       "Evidence: signed BagIt packages and their chain of custody."),
    "request": Listed("fundtrail.cli.request", "Legal requests with deadlines, approvals and letters."),
    "ledger": Listed("fundtrail.cli.ledger", "The recovery ledger: exact amounts with their legal basis."),
    "report": Listed("fundtrail.cli.report", "Reports."),
    "audit": Listed("fundtrail.cli.audit",
                    "The audit log: a signed Merkle transparency log of every read and write."),
    "retention": Listed("fundtrail.cli.retention", "Retention periods and legal holds."),
    "db": Listed("fundtrail.cli.db", "The case database (HOME/cases.sqlite or $FUNDTRAIL_DATABASE_URL)."),
    "user": Listed("fundtrail.cli.user", "Users: username, name, role, unit, jurisdiction."),
    "agreement": Listed("fundtrail.cli.agreement",
                        "Sharing agreements: partner, legal basis, data categories, marking, retention."),
    "agency": Listed("fundtrail.cli.agency", "This agency's identity for partner agencies."),
    "share": Listed("fundtrail.cli.share",
                    "Share case data with partner agencies (STIX, FtM, TagPacks, BagIt; TAXII; PSI)."),
    "docs": Listed("fundtrail.cli.reference", "Generated documentation."),
    "watch": Listed("fundtrail.cli.watch", "Watch lists: alerts when watched funds move or reach a service."),
    "alerts": Listed("fundtrail.cli.alerts", "Alerts raised by watches."),
    "exercise": Listed("fundtrail.cli.exercise", "Exercises: sealed truth, hand-outs, scored answers."),
    "spark": Listed("fundtrail.cli.spark",
                    "Whole-chain jobs on Spark: Parquet export, exposure of every address, taint."),
}
"""Every top-level command, in the order ``fundtrail --help`` lists them."""

COMMAND_MODULES = list(dict.fromkeys(listed.module for listed in COMMANDS.values()))
"""The command modules, each defining ``register(app)``; one per noun."""


class _Commands(MutableMapping[str, _click.Command]):
    """The root's commands: every name in :data:`COMMANDS`, each module imported on first use.

    While ``listing()`` is on (the root's help, shell completion), names not yet imported give a
    placeholder with the listed help instead of importing their module.
    """

    def __init__(self, loaded: MutableMapping[str, _click.Command], settings: dict[str, Any]) -> None:
        self._loaded: dict[str, _click.Command] = dict(loaded)
        self._settings = settings
        self._listing = False

    @contextmanager
    def listing(self) -> Iterator[None]:
        """Within, names that are not imported yet give placeholders with their listed help."""
        before, self._listing = self._listing, True
        try:
            yield
        finally:
            self._listing = before

    def _load(self, module: str) -> None:
        scratch = typer.Typer(**self._settings)
        importlib.import_module(module).register(scratch)
        for name, command in typer.main.get_group(scratch).commands.items():
            self._loaded.setdefault(name, command)

    def __getitem__(self, name: str) -> _click.Command:
        if name in self._loaded:
            return self._loaded[name]
        listed = COMMANDS[name]
        if self._listing:
            return TyperCommand(name=name, help=listed.help)
        self._load(listed.module)
        return self._loaded[name]

    def __setitem__(self, name: str, command: _click.Command) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        yield from COMMANDS
        yield from (name for name in self._loaded if name not in COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS) + sum(1 for name in self._loaded if name not in COMMANDS)

    def __contains__(self, name: object) -> bool:
        return name in COMMANDS or name in self._loaded


class LazyGroup(TyperGroup):
    """The root group: lists :data:`COMMANDS` and imports a command's module only when it is used."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _Commands(self.commands, {
            "pretty_exceptions_enable": False,
            "rich_markup_mode": self.rich_markup_mode,
            "suggest_commands": self.suggest_commands,
        })

    def _listing(self) -> Any:
        commands = self.commands
        return commands.listing() if isinstance(commands, _Commands) else _nothing()

    def format_help(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        """The root's help, listing the commands without importing them."""
        with self._listing():
            super().format_help(ctx, formatter)

    def shell_complete(self, ctx: _click.Context, incomplete: str) -> list[Any]:
        """Complete a command name without importing the commands."""
        with self._listing():
            return super().shell_complete(ctx, incomplete)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


app = typer.Typer(name="fundtrail", cls=LazyGroup, no_args_is_help=True, add_completion=False,
                  help="Trace, freeze, seize and return crypto assets that fund cybercrime.",
                  pretty_exceptions_enable=False)


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


_NO = object()
"""A value the quick conversion leaves to Typer's."""
_WHOLE = re.compile(r"-?[0-9]{1,18}")
_DECIMAL = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,15})?")


class QuickCoercion:
    """Typer's conversion of one parameter's values, without pydantic where the value is plain.

    Quacks like Typer's ``RuntimeParam`` (``coerce``); Typer's own converter is built only for a value
    this one leaves to it.
    """

    def __init__(self, descriptor: Any, full: Callable[[Any], Any]) -> None:
        self.descriptor = descriptor
        self.annotation = descriptor.annotation
        self.parameter_info = descriptor.parameter_info
        self._build_full = full
        self._full: Any = None

    def full(self) -> Any:
        """Typer's own converter of this parameter."""
        if self._full is None:
            self._full = self._build_full(self.descriptor)
        return self._full

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        """The value as Typer's converter gives it."""
        multi = param.multiple or param.nargs == -1
        if value is None:  # as Typer's RuntimeParam.coerce
            return () if multi else None
        if not (multi and isinstance(value, str)):
            done = self._quick(value, param, ctx)
            if done is not _NO:
                return done
        return self.full().coerce(value, param=param, ctx=ctx)

    def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
        return self.full()._coerce_value(value, param=param, ctx=ctx)

    def _quick(self, value: Any, param: Any, ctx: Any) -> Any:
        annotation = self.annotation
        if get_origin(annotation) is list:
            (item,) = get_args(annotation) or (None,)
            if item is None or not isinstance(value, list | tuple):
                return _NO
            items = [self._leaf(item, v, param, ctx) for v in value]
            return _NO if any(i is _NO for i in items) else items
        return self._leaf(annotation, value, param, ctx)

    def _leaf(self, annotation: Any, value: Any, param: Any, ctx: Any) -> Any:
        info = self.parameter_info
        if getattr(info, "parser", None) is not None or not isinstance(annotation, type):
            return _NO
        if annotation is str:
            return value if type(value) is str else _NO
        if annotation is bool:
            return value if type(value) is bool else _NO
        if annotation is int or annotation is float:
            return self._number(annotation, value)
        if issubclass(annotation, Enum):
            from typer._param_types import coerce_cli_choice

            try:
                return coerce_cli_choice(value, choices=list(annotation), case_sensitive=info.case_sensitive,
                                         ctx=ctx)
            except ValueError:
                return _NO
        if issubclass(annotation, Path) and getattr(info, "path_type", None) is None:
            if type(value) is str and value and "\x00" not in value:
                value = annotation(value)
            if isinstance(value, annotation):
                from typer._param_types import coerce_cli_path

                return coerce_cli_path(value, info, path_type=annotation, param=param, ctx=ctx)
        return _NO

    def _number(self, annotation: type, value: Any) -> Any:
        info = self.parameter_info
        if getattr(info, "clamp", False):
            return _NO
        number: Any = _NO
        if type(value) is annotation:
            number = value
        elif type(value) is str and (_WHOLE if annotation is int else _DECIMAL).fullmatch(value):
            number = annotation(value)
        if number is _NO:
            return _NO
        low, high = getattr(info, "min", None), getattr(info, "max", None)
        if (low is not None and number < low) or (high is not None and number > high):
            return _NO
        return number


def _install_quick_coercion() -> None:
    """Make Typer build a :class:`QuickCoercion` where it would build its pydantic converter.

    Does nothing with a Typer that converts values otherwise (the hook is not there)."""
    from typer import core

    full = getattr(core, "build_runtime_param", None)
    if full is None or getattr(full, "quick", False):
        return

    def build(descriptor: Any) -> QuickCoercion:
        return QuickCoercion(descriptor, full)

    build.quick = True  # type: ignore[attr-defined]
    setattr(core, "build_runtime_param", build)  # noqa: B010  (not a name Typer exports)


_install_quick_coercion()


def run() -> None:
    """Console-script entry point."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
