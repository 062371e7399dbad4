"""CLI start-up: the root lists its commands without importing them, and a command imports what it uses.

Each run is a fresh interpreter (a subprocess) that invokes the application and then reports which modules
it imported, so that the test sees exactly what a user's ``fundtrail ...`` pays for. A second group of
tests keeps the static listing in ``fundtrail.cli.main.COMMANDS`` true to the commands the modules define.
"""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from fundtrail.cli.main import COMMAND_MODULES, COMMANDS, app

HEAVY = ("sqlalchemy", "scipy", "pyarrow", "duckdb", "numpy", "fastapi", "networkx", "httpx", "cryptography",
         "fundtrail.scenarios", "fundtrail.store", "fundtrail.analysis", "fundtrail.cases", "fundtrail.audit",
         "fundtrail.sharing", "fundtrail.intel", "fundtrail.api")
"""Packages that no help page (nor ``--version``) may import."""

_PROBE = """
import json, sys
from fundtrail.cli.main import app
out, args = sys.argv[1], sys.argv[2:]
code = 0
try:
    app(args, prog_name="fundtrail", standalone_mode=False)
except SystemExit as stop:
    code = stop.code or 0
with open(out, "w", encoding="utf-8") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


def _run(tmp_path: Path, *args: str) -> tuple[str, list[str]]:
    """Run the CLI in a fresh interpreter; its stdout and the modules it had imported when done."""
    report = tmp_path / "modules.json"
    done = subprocess.run([sys.executable, "-c", _PROBE, str(report), *args], capture_output=True,
                          text=True, timeout=120, check=True, env=_env(tmp_path))
    result = json.loads(report.read_text(encoding="utf-8"))
    assert result["code"] == 0, done.stderr
    return done.stdout, result["modules"]


def _env(tmp_path: Path) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDTRAIL_")}
    env.update({"COLUMNS": "100", "FUNDTRAIL_HOME": str(tmp_path / "home")})
    return env


def _heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


def test_root_help_lists_every_command_and_imports_none(tmp_path: Path) -> None:
    out, modules = _run(tmp_path, "--help")
    for name in COMMANDS:
        assert f"│ {name} " in out, name
    assert _heavy(modules) == []
    assert [m for m in modules if m.startswith("fundtrail.cli.") and m not in (
        "fundtrail.cli.main", "fundtrail.cli.common")] == []


@pytest.mark.parametrize("args", [["trace", "--help"], ["store", "show", "--help"], ["path", "--help"],
                                  ["case", "open", "--help"], ["--version"]])
def test_help_and_version_import_nothing_heavy(tmp_path: Path, args: list[str]) -> None:
    out, modules = _run(tmp_path, *args)
    assert out.strip(), "printed nothing"
    assert _heavy(modules) == []


ALLOWED = {"demo": {"fundtrail.scenarios"}}
"""What a command's help may import beyond the light modules: the demo's step list is its own (small)
module of the scenarios package."""

@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_commands_help_imports_nothing_heavy(tmp_path: Path, name: str) -> None:
    out, modules = _run(tmp_path, name, "--help")
    assert f"Usage: fundtrail {name}" in out
    heavy = {h for h in HEAVY for m in _heavy(modules) if m == h or m.startswith(h + ".")}
    assert heavy <= ALLOWED.get(name, set()), sorted(_heavy(modules))[:20]


def test_a_command_imports_its_own_module_only(tmp_path: Path) -> None:
    out, modules = _run(tmp_path, "trace", "--help")
    assert "--max-hops" in out and "--policy" in out
    assert "fundtrail.cli.trace" in modules
    others = {m for m in COMMAND_MODULES if m != "fundtrail.cli.trace"}
    assert others & set(modules) == set()


def test_a_real_command_on_an_empty_home(tmp_path: Path) -> None:
    out, modules = _run(tmp_path, "store", "show", "--format", "json")
    assert json.loads(out) == {"home": str(tmp_path / "home"), "chains": []}
    unneeded = ("scipy", "fastapi", "sqlalchemy", "fundtrail.scenarios")
    assert [m for m in modules if m.startswith(unneeded)] == []


def test_bad_input_through_the_entry_point_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", "from fundtrail.cli.main import run; run()", "trace",
                           "1BoatSLRHtKNngkdXEeobR76b53LETtpyT", "--since", "last tuesday"],
                          capture_output=True, text=True, timeout=120, env=_env(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: --since 'last tuesday' is not an ISO 8601 date/time or Unix seconds"]


def test_an_unknown_command_is_a_usage_error_with_a_suggestion(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", "from fundtrail.cli.main import run; run()", "trac"],
                          capture_output=True, text=True, timeout=120, env=_env(tmp_path))
    assert done.returncode == 2
    assert "No such command 'trac'. Did you mean 'trace'?" in done.stderr


# ------------------------------------------------------------------- the listing cannot drift


def _registered() -> dict[str, tuple[str, typer.core.TyperCommand | typer.core.TyperGroup]]:
    """Every top-level command the modules register, with its module, as ``fundtrail.cli.main`` did
    before it listed them: each module's ``register`` on one application."""
    found: dict[str, tuple[str, typer.core.TyperCommand | typer.core.TyperGroup]] = {}
    for module in COMMAND_MODULES:
        scratch = typer.Typer()
        importlib.import_module(module).register(scratch)
        for name, command in typer.main.get_group(scratch).commands.items():
            assert name not in found, f"{name} registered by {found[name][0]} and {module}"
            found[name] = (module, command)  # type: ignore[assignment]
    return found


def test_the_listing_names_exactly_the_registered_commands_with_their_help() -> None:
    registered = _registered()
    assert set(COMMANDS) == set(registered)
    for name, listed in COMMANDS.items():
        module, command = registered[name]
        assert listed.module == module, name
        first = inspect.cleandoc(command.short_help or command.help or "").split("\n\n")[0].strip()
        assert listed.help == first, name
        assert not command.hidden and not command.deprecated, name
        assert not getattr(command, "rich_help_panel", None), name


def test_every_listed_command_resolves_through_the_root() -> None:
    root = typer.main.get_command(app)
    ctx = typer.Context(root)
    assert list(root.list_commands(ctx)) == list(COMMANDS)
    for name in COMMANDS:
        command = root.get_command(ctx, name)
        assert command is not None and command.name == name
        assert command.callback is not None or getattr(command, "commands", None), name
    assert root.get_command(ctx, "no-such-command") is None


def test_completion_lists_commands_with_their_help_without_importing_them(tmp_path: Path) -> None:
    probe = ("import json, sys, typer\n"
             "from fundtrail.cli.main import app\n"
             "root = typer.main.get_command(app)\n"
             "items = root.shell_complete(typer.Context(root), 'tr')\n"
             "print(json.dumps([[i.value, i.help] for i in items]))\n"
             "print(json.dumps(sorted(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          check=True, env=_env(tmp_path))
    items, modules = (json.loads(line) for line in done.stdout.splitlines())
    real = _registered()["trace"][1]
    assert items == [["trace", real.get_short_help_str()]]
    assert "fundtrail.cli.trace" not in modules and _heavy(modules) == []


def test_the_clis_copies_of_library_constants_are_current() -> None:
    """The few values that option help and defaults show, kept in the CLI so that `--help` imports no
    library module, are the library's."""
    from fundtrail.analysis.tracing import params
    from fundtrail.cli import exercise, sanctions, scenario, trace
    from fundtrail.intel import sanctions as sanction_lists
    from fundtrail.scenarios import exercises, world

    for name in ("DEFAULT_MAX_HOPS", "DEFAULT_MAX_STEPS", "DEFAULT_HUB_DEGREE", "DEFAULT_MIN_CONFIDENCE"):
        assert getattr(trace, name) == getattr(params, name), name
    assert sanctions.DEFAULT_LIST_NAME == sanction_lists.DEFAULT_LIST_NAME
    assert list(scenario.SIZES) == list(world.SIZES)
    assert list(exercise.TYPOLOGIES) == list(exercises.TYPOLOGIES)
    assert list(exercise.DIFFICULTIES) == list(exercises.DIFFICULTIES)
