"""CLI start-up: wall time of ``fundtrail`` help pages and cheap commands, each a fresh process.

Every case runs ``--runs`` times (default 15), the cases interleaved round by round so that machine noise
hits them alike; the table gives each case's median and its ratio to the eager start-up. Target: under
0.3 s median for help and dispatch. Baselines, measured in the same run:

* ``python -c pass``: the interpreter alone;
* ``import typer``, and a one-command Typer application's ``--help``: the floor of any Typer CLI;
* eager start-up: importing every command module (``fundtrail.cli.main.COMMAND_MODULES``) and every
  fundtrail module the commands import, at module level or in their functions: what every command paid
  before the root imported a command's module only when it is used (an upper bound: some of those
  modules were imported in functions already).

    .venv/bin/python bench/bench_cli.py --runs 15
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

TARGET = 0.3
"""Seconds: the median a help page or a dispatch must stay under."""

_TYPER_APP = """
import typer
app = typer.Typer()
@app.command()
def hello(name: str = "world") -> None:
    print(name)
@app.command()
def bye() -> None:
    pass
app(["--help"])
"""

_EAGER = """
import ast, importlib, pathlib
from fundtrail.cli.main import COMMAND_MODULES
for name in COMMAND_MODULES:
    module = importlib.import_module(name)
    for node in ast.walk(ast.parse(pathlib.Path(module.__file__).read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fundtrail"):
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("fundtrail")]
        else:
            continue
        for dependency in names:
            try:
                importlib.import_module(dependency)
            except ImportError:  # a module of an extra that is not installed
                pass
"""
"""The eager start-up: every command module and every fundtrail module the commands import (at module
level or in their functions). An upper bound of what each command imported before the root became lazy:
some of those modules were imported in functions already."""


def _fundtrail() -> list[str]:
    script = Path(sys.executable).parent / "fundtrail"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from fundtrail.cli.main import run; run()"]


def cases(home: Path) -> list[tuple[str, list[str], bool]]:
    """(label, command, whether the target applies)."""
    py, ft = sys.executable, _fundtrail()
    return [
        ("python -c pass", [py, "-c", "pass"], False),
        ("python -c 'import typer'", [py, "-c", "import typer"], False),
        ("one-command Typer app --help", [py, "-c", _TYPER_APP], False),
        ("eager upper bound: all CLI imports", [py, "-c", _EAGER], False),
        ("fundtrail --version", [*ft, "--version"], True),
        ("fundtrail --help", [*ft, "--help"], True),
        ("fundtrail trace --help", [*ft, "trace", "--help"], True),
        ("fundtrail store show --help", [*ft, "store", "show", "--help"], True),
        ("fundtrail case open --help", [*ft, "case", "open", "--help"], True),
        ("fundtrail store show (empty home)", [*ft, "store", "show", "--home", str(home), "--format", "json"],
         False),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each case (at least 15 for the table)")
    args = parser.parse_args()
    runs = max(1, min(args.runs, 1000))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDTRAIL_")}
    env["COLUMNS"] = "100"
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        todo = cases(home)
        times: dict[str, list[float]] = {label: [] for label, _, _ in todo}
        for _ in range(runs):
            for label, command, _ in todo:
                start = time.perf_counter()
                done = subprocess.run(command, capture_output=True, env=env, timeout=300)
                times[label].append(time.perf_counter() - start)
                if done.returncode != 0:
                    sys.stderr.write(f"{label}: exit {done.returncode}\n{done.stderr.decode()}\n")
                    return 1
        shown = json.loads(subprocess.run(todo[-1][1], capture_output=True, env=env, check=True).stdout)
        assert shown["chains"] == [], shown
    medians = {label: statistics.median(t) for label, t in times.items()}
    eager = medians["eager upper bound: all CLI imports"]
    table = Table(title=f"CLI start-up, median of {runs} runs per case, interleaved (2 cores, shared)")
    for col in ("case", "median s", "min s", "x eager", f"under {TARGET} s"):
        table.add_column(col, justify="left" if col == "case" else "right")
    missed = 0
    for label, _, targeted in todo:
        ok = medians[label] < TARGET
        missed += targeted and not ok
        table.add_row(label, f"{medians[label]:.3f}", f"{min(times[label]):.3f}",
                      f"{medians[label] / eager:.2f}", ("yes" if ok else "NO") if targeted else "")
    console = Console()
    console.print(table)
    targeted = [label for label, _, t in todo if t]
    verdict = "met" if not missed else f"missed in {missed} of {len(targeted)} cases"
    console.print(f"target (median under {TARGET} s for help and dispatch): {verdict}", highlight=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
