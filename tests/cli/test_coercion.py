"""The CLI's quick conversion of option values gives exactly what Typer's own (pydantic) conversion gives.

:class:`fundtrail.cli.main.QuickCoercion` converts plain values without pydantic and leaves the rest to
Typer; here every parameter of every command converts a set of values both ways, and the results (value
and type, or the error and its message) must be the same.
"""

from __future__ import annotations

import importlib
from enum import Enum
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
import typer
import typer.main
from typer import _coercion, core

from fundtrail.cli.main import COMMAND_MODULES, QuickCoercion, app


def _commands() -> list[tuple[str, Any]]:
    """(path, click command) for every command and group the CLI defines, the root included."""
    found: list[tuple[str, Any]] = [("fundtrail", typer.main.get_command(app))]

    def walk(prefix: str, command: Any) -> None:
        found.append((prefix, command))
        for name, sub in getattr(command, "commands", {}).items():
            walk(f"{prefix} {name}", sub)

    for module in COMMAND_MODULES:
        scratch = typer.Typer()
        importlib.import_module(module).register(scratch)
        for name, command in typer.main.get_group(scratch).commands.items():
            walk(name, command)
    return found


def _samples(annotation: Any) -> list[Any]:
    """Values a parameter of this type may be given: plain ones and ones Typer refuses or converts."""
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        one = _samples(item)
        return [(), tuple(one[:2]), list(one[:3]), (one[0], "not a value"), "a text, not a list"]
    common: list[Any] = [None, "", " ", "x", "-", "7", "-3", "0.5", " 7", "7 ", "1e3", "+4", "0x10", "1_000",
                         "٣", "12345678901234567890", "a\x00b", 7, 2.5, True, b"bytes"]
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        members = list(annotation)
        return [*common, *members, *(m.value for m in members), *(str(m.value).upper() for m in members),
                *(str(m.value).title() for m in members)]
    if annotation is Path:
        return [*common, Path("a/b"), "a/b", "/tmp", "~/x", "-"]
    return [*common, "-1", "0", "1", "5", "1.0", "-0.25", "100000", "3.14159", False, -1, 0.0, 1.5]


def _outcome(runtime: Any, value: Any, param: Any, ctx: Any) -> tuple[Any, ...]:
    try:
        result = runtime.coerce(value, param=param, ctx=ctx)
    except Exception as error:  # noqa: BLE001 - any error must be the same error
        return ("error", type(error).__name__, str(getattr(error, "message", error)))
    return ("ok", type(result).__name__, result)


@pytest.mark.parametrize(("path", "command"), _commands(), ids=lambda x: x if isinstance(x, str) else "")
def test_quick_and_typer_conversions_agree_on_every_parameter(path: str, command: Any) -> None:
    ctx = typer.Context(command)
    params = list(command.params)
    help_option = command.get_help_option(ctx)
    if help_option is not None:
        params.append(help_option)
    assert params, path
    for param in params:
        descriptor = param.type_descriptor
        quick = QuickCoercion(descriptor, _coercion.build_runtime_param)
        full = _coercion.build_runtime_param(descriptor)
        for value in [*_samples(descriptor.annotation), param.default]:
            assert _outcome(quick, value, param, ctx) == _outcome(full, value, param, ctx), (
                path, param.name, value)


def test_typer_builds_quick_conversions() -> None:
    """The hook is in place: the CLI's parameters convert through QuickCoercion."""
    root = typer.main.get_command(app)
    version = next(p for p in root.params if p.name == "version")
    assert isinstance(core.build_runtime_param(version.type_descriptor), QuickCoercion)


def test_plain_values_do_not_build_typers_converter() -> None:
    """A text, a number in digits, a choice and a path convert without Typer's converter (so without
    pydantic); a value Typer refuses goes to it, with its message."""
    built: list[Any] = []

    def full(descriptor: Any) -> Any:
        built.append(descriptor)
        return _coercion.build_runtime_param(descriptor)

    scratch = typer.Typer()
    importlib.import_module("fundtrail.cli.trace").register(scratch)
    trace = typer.main.get_group(scratch).commands["trace"]
    ctx = typer.Context(trace)
    by_name = {p.name: p for p in trace.params}
    for name, value, expected in (("max_hops", "4", 4), ("chain", "ltc", "ltc"), ("home", "h", Path("h")),
                                  ("min_confidence", "0.25", 0.25), ("seeds", ("a", "b"), ["a", "b"])):
        param = by_name[name]
        assert QuickCoercion(param.type_descriptor, full).coerce(value, param, ctx) == expected
    policy = by_name["policy"]
    assert QuickCoercion(policy.type_descriptor, full).coerce("poison", policy, ctx).value == "poison"
    assert built == []
    hops = by_name["max_hops"]
    with pytest.raises(Exception, match="valid integer"):
        QuickCoercion(hops.type_descriptor, full).coerce("four", hops, ctx)
    assert len(built) == 1
