"""``fundtrail store``: what the chain store holds, and its Parquet export/import."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fundtrail.cli.common import (
    DEFAULT_HOME,
    FormatOpt,
    HomeOpt,
    OutputFormat,
    Table,
    console,
    handle_errors,
    print_json,
)

app = typer.Typer(help="The chain store: summary, Parquet export and import.", no_args_is_help=True)


@app.command("show")
@handle_errors
def show(home: HomeOpt = DEFAULT_HOME, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """Per chain: blocks, height range, transactions, outputs, inputs, transfers, addresses."""
    from fundtrail.store import ChainStore

    with ChainStore.open_home(home) as store:
        rows = store.summary()
    if fmt is OutputFormat.JSON:
        print_json({"home": str(home), "chains": rows})
        return
    table = Table(title=f"chain store {home / 'chain.duckdb'}")
    cols = ("chain", "blocks", "min_height", "max_height", "txs", "outputs", "inputs", "transfers",
            "addresses")
    for c in cols:
        table.add_column(c, justify="left" if c == "chain" else "right")
    for r in rows:
        table.add_row(*(str(r[c]) for c in cols))
    console.print(table)


@app.command("export")
@handle_errors
def export(directory: Annotated[Path, typer.Argument(help="Folder to write <table>.parquet into.")],
           home: HomeOpt = DEFAULT_HOME, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """Write every table of the chain store as Parquet."""
    from fundtrail.store import ChainStore

    with ChainStore.open_home(home) as store:
        counts = store.export_parquet(directory)
    print_json(counts) if fmt is OutputFormat.JSON else console.print(counts)


@app.command("import")
@handle_errors
def import_(directory: Annotated[Path, typer.Argument(help="Folder of a Parquet export.")],
            home: HomeOpt = DEFAULT_HOME, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """Load a Parquet export (blocks already stored are skipped)."""
    from fundtrail.store import ChainStore

    with ChainStore.open_home(home) as store:
        counts = store.import_parquet(directory)
    print_json(counts) if fmt is OutputFormat.JSON else console.print(counts)


def register(root: typer.Typer) -> None:
    """Add ``store`` to the root application."""
    root.add_typer(app, name="store")
