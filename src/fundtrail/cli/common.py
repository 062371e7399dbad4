"""Shared CLI pieces: the home directory, output format, rendering, progress and error mapping."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from enum import Enum
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from fundtrail.errors import FundTrailError, exit_code

console = Console()
err_console = Console(stderr=True)


class OutputFormat(str, Enum):
    """How a command prints its result."""

    HUMAN = "human"
    JSON = "json"


def default_home() -> Path:
    """``$FUNDTRAIL_HOME``, else ``./.fundtrail``."""
    return Path(os.environ.get("FUNDTRAIL_HOME") or ".fundtrail")


DEFAULT_HOME = Path(".fundtrail")
HomeOpt = Annotated[Path, typer.Option("--home", envvar="FUNDTRAIL_HOME", show_default=False,
                                       help="FundTrail home directory (default $FUNDTRAIL_HOME, else ./.fundtrail).")]
FormatOpt = Annotated[OutputFormat, typer.Option("--format", "-f", help="human (default) or json.")]


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(int(value)) if value == value.to_integral_value() else str(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"cannot render {type(value).__name__} as JSON")


def print_json(document: Any) -> None:
    """Print one JSON document on stdout."""
    sys.stdout.write(json.dumps(document, default=_json_default, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    """Turn FundTrail errors into one line on stderr and the contract's exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except FundTrailError as error:
            err_console.print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(exit_code(error)) from None
        except FileNotFoundError as error:
            err_console.print(f"error: {error.filename}: no such file or directory", markup=False,
                              highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


@contextmanager
def progress(description: str, total: float | None = None, *, enabled: bool = True) -> Iterator[
        Callable[[float], None]]:
    """A rich progress bar on stderr; yields ``advance(n)``. Hidden when stderr is not a terminal."""
    if not enabled or not err_console.is_terminal:
        yield lambda n: None
        return
    columns = [SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=err_console, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
