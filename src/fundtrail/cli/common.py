"""Shared CLI pieces: the home directory, output format, rendering, progress and error mapping."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from decimal import Decimal
from enum import Enum, StrEnum
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import rich.table
import typer
from rich.console import Console

from fundtrail.domain.assets import show_amount
from fundtrail.domain.chains import NATIVE_ASSET
from fundtrail.errors import FundTrailError, exit_code

console = Console()
err_console = Console(stderr=True, emoji=False)


class OutputFormat(StrEnum):
    """How a command prints its result."""

    HUMAN = "human"
    JSON = "json"


def default_home() -> Path:
    """``$FUNDTRAIL_HOME``, else ``./.fundtrail``."""
    return Path(os.environ.get("FUNDTRAIL_HOME") or ".fundtrail")


DEFAULT_HOME = Path(".fundtrail")
HomeOpt = Annotated[Path, typer.Option(
    "--home", envvar="FUNDTRAIL_HOME", show_default=False,
    help="FundTrail home directory (default $FUNDTRAIL_HOME, else ./.fundtrail).")]
FormatOpt = Annotated[OutputFormat, typer.Option("--format", "-f", help="human (default) or json.")]


class Table(rich.table.Table):
    """A rich table whose cells fold onto more lines instead of being cut: no identifier (an address, a
    txid, a case or request number, a date) is ever shortened to fit a narrow terminal.

    Columns named in ``whole`` (short keys: dates, case and request numbers, amounts) are never even
    split across lines; keep them few, so that the table still fits 80 columns.
    """

    def __init__(self, *headers: Any, whole: Collection[str] = (), **kwargs: Any) -> None:
        self._whole = frozenset(whole)
        super().__init__(*headers, **kwargs)

    def add_column(self, header: Any = "", *args: Any, **kwargs: Any) -> None:
        """Add a column that folds rather than truncates (unless told otherwise)."""
        kwargs.setdefault("overflow", "fold")
        if header in self._whole:
            kwargs.setdefault("no_wrap", True)
        super().add_column(header, *args, **kwargs)


def amount_text(value: int | str | None, chain: str, asset: str | None = NATIVE_ASSET) -> str:
    """Base units (an int or the exact string of a JSON document) in the asset's unit, for human output."""
    if value is None or value == "" or value == "?":
        return "?" if value == "?" else "-"
    return show_amount(int(value), chain, asset or NATIVE_ASSET)


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


def chain_tables() -> None:
    """Import the modules that keep tables in the chain store, before a command's workflow opens one.

    A chain store creates the tables registered so far when it opens
    (:func:`fundtrail.store.schema.register_table`), and each module registers its own on import. A
    workflow that opens the store and only later imports a module that writes to its table (the demo's
    TagPack and sanctions steps, sharing's pack import, retention's pack deletion) needs them registered
    first. Commands call this in their body, never at import, so that their help stays light.
    """
    import fundtrail.analysis.change
    import fundtrail.analysis.clustering
    import fundtrail.analysis.coinjoin
    import fundtrail.analysis.conversions
    import fundtrail.intel.attribution
    import fundtrail.intel.sanctions
    import fundtrail.intel.tagpacks  # noqa: F401


F = TypeVar("F", bound=Callable[..., Any])


def _write_conflict(error: BaseException) -> bool:
    """Whether ``error`` is DuckDB's write-write conflict between two transactions (without importing
    DuckDB, which commands that never open the store do not load)."""
    kind = type(error)
    return kind.__name__ == "TransactionException" and kind.__module__.lstrip("_").startswith("duckdb")


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
        except IsADirectoryError as error:
            err_console.print(f"error: {error.filename}: is a folder, where a file is expected", markup=False,
                              highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except NotADirectoryError as error:
            err_console.print(f"error: {error.filename}: is a file, where a folder is expected", markup=False,
                              highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except Exception as error:
            if not _write_conflict(error):
                raise
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            err_console.print("error: another process changed the same rows of the chain store at the same "
                              f"time ({first}); this command's last step was rolled back and nothing of it "
                              "is stored: run it again",
                              markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


@contextmanager
def progress(description: str, total: float | None = None, *, enabled: bool = True) -> Iterator[
        Callable[[float], None]]:
    """A rich progress bar on stderr; yields ``advance(n)``. Hidden when stderr is not a terminal."""
    if not enabled or not err_console.is_terminal:
        yield lambda n: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = [SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=err_console, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
