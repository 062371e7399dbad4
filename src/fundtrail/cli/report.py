"""``fundtrail report``: the public recovery report (aggregates only: no personal data, no addresses)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fundtrail.cli.case import AsOpt
from fundtrail.cli.common import (
    DEFAULT_HOME,
    FormatOpt,
    HomeOpt,
    OutputFormat,
    Table,
    amount_text,
    console,
    handle_errors,
    print_json,
)

app = typer.Typer(help="Reports.", no_args_is_help=True)


@app.command("recovery")
@handle_errors
def recovery(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for the chart (recovery.png, recovery.svg).")
    ] = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Frozen, seized, forfeited and returned totals per chain, asset and jurisdiction, and a chart."""
    from fundtrail.cases.context import open_operation
    from fundtrail.cases.ledger import recovery_report, write_chart

    with open_operation(home, as_) as ctx:
        rows = recovery_report(ctx)
    charts = write_chart(rows, out) if out is not None else []
    if fmt is OutputFormat.JSON:
        print_json({"rows": [r.to_dict() for r in rows], "charts": [str(p) for p in charts]})
        return
    table = Table("kind", "chain", "asset", "jurisdiction",
                  title="Recovered crypto assets (public aggregate)")
    table.add_column("amount", justify="right", no_wrap=True)
    table.add_column("cases", justify="right")
    table.add_column("entries", justify="right")
    for r in rows:
        table.add_row(r.kind, r.chain, r.asset, r.jurisdiction, amount_text(r.amount, r.chain, r.asset),
                      str(r.cases), str(r.entries))
    console.print(table)
    for p in charts:
        console.print(f"chart: {p}", markup=False)


def register(root: typer.Typer) -> None:
    """Add ``report`` to the root application."""
    root.add_typer(app, name="report")
