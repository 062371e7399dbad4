"""``fundtrail alerts``: the alerts that watches raised (each once), with their drafted freeze requests."""

from __future__ import annotations

from typing import Annotated

import typer

from fundtrail.cli.case import AsOpt
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
from fundtrail.domain.assets import show_amount

app = typer.Typer(help="Alerts raised by watches.", no_args_is_help=True)


@app.command("list")
@handle_errors
def list_(
    case: Annotated[str | None, typer.Option("--case", help="Only the alerts of this case.")] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="moved, at_service, sanctioned, mixer or bridge.")
    ] = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """The alerts you may see, newest first."""
    from fundtrail.cases.context import open_operation
    from fundtrail.watch.service import alert_doc, list_alerts

    with open_operation(home, as_) as ctx:
        docs = [alert_doc(a, ctx.home) for a in list_alerts(ctx, case=case, kind=kind)]
    if fmt is OutputFormat.JSON:
        print_json(docs)
        return
    table = Table("id", "kind", "case", "where", "txid", "request", whole=("id", "case"))
    table.add_column("value", justify="right", no_wrap=True)
    for d in docs:
        where = " ".join(
            x
            for x in (
                d["entity"] or "",
                f"({d['jurisdiction']})" if d["jurisdiction"] else "",
                d["address"] or "",
            )
            if x
        )
        table.add_row(
            str(d["id"]),
            d["kind"],
            d["case"] or d["case_ref"] or "",
            where,
            d["txid"] or "",
            d["request"] or "",
            show_amount(int(d["value"]), d["chain"], "native") if d["value"] else "-",
        )
    console.print(table)


def register(root: typer.Typer) -> None:
    """Add ``alerts`` to the root application."""
    root.add_typer(app, name="alerts")
