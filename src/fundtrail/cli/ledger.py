"""``fundtrail ledger``: the recovery ledger of a case (frozen, seized, forfeited, returned)."""

from __future__ import annotations

from typing import Annotated

import typer

from fundtrail.cli.case import AsOpt, CaseArg, emit
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

app = typer.Typer(help="The recovery ledger: exact amounts with their legal basis.", no_args_is_help=True)


@app.command("add")
@handle_errors
def add(
    number: CaseArg,
    kind: Annotated[str, typer.Option("--kind", help="frozen, seized, forfeited or returned.")],
    amount: Annotated[str, typer.Option("--amount", help="Exact amount in base units (satoshi, wei).")],
    chain: Annotated[str, typer.Option("--chain", "-c", help="Chain of the asset.")] = "btc",
    asset: Annotated[str, typer.Option("--asset", help="native or the token contract.")] = "native",
    jurisdiction: Annotated[
        str | None, typer.Option("--jurisdiction", help="Where (default the case's).")
    ] = None,
    holder: Annotated[str | None, typer.Option("--holder", help="Who holds it (e.g. the exchange).")] = None,
    request: Annotated[str | None, typer.Option("--request", help="The request behind it.")] = None,
    court_order: Annotated[
        str | None, typer.Option("--court-order", help="The court order behind it.")
    ] = None,
    note: Annotated[str | None, typer.Option("--note")] = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Record an amount; --request or --court-order gives its legal basis (one is required)."""
    from fundtrail.cases.context import open_operation
    from fundtrail.cases.ledger import entry_doc, record_entry

    with open_operation(home, as_) as ctx:
        doc = entry_doc(
            record_entry(
                ctx,
                number,
                kind,
                chain,
                amount,
                asset=asset,
                jurisdiction=jurisdiction,
                holder=holder,
                request=request,
                court_order=court_order,
                note=note,
            )
        )
    emit(
        fmt,
        doc,
        f"ledger entry {doc['id']}: {doc['kind']} "
        f"{amount_text(doc['amount'], doc['chain'], doc['asset'])} "
        f"({doc['chain']} {doc['asset']}) "
        f"on {doc['case']}",
    )


@app.command("list")
@handle_errors
def list_(
    number: CaseArg, home: HomeOpt = DEFAULT_HOME, as_: AsOpt = None, fmt: FormatOpt = OutputFormat.HUMAN
) -> None:
    """A case's ledger."""
    from fundtrail.cases.context import open_operation
    from fundtrail.cases.ledger import entry_doc, list_entries

    with open_operation(home, as_) as ctx:
        docs = [entry_doc(e) for e in list_entries(ctx, number)]
    if fmt is OutputFormat.JSON:
        print_json(docs)
        return
    table = Table("id", "kind", "chain", "asset", "jurisdiction", "basis", whole=("basis",))
    table.add_column("amount", justify="right", no_wrap=True)
    for d in docs:
        table.add_row(
            str(d["id"]),
            d["kind"],
            d["chain"],
            d["asset"],
            d["jurisdiction"],
            d["request"] or d["court_order"] or "",
            amount_text(d["amount"], d["chain"], d["asset"]),
        )
    console.print(table)


def register(root: typer.Typer) -> None:
    """Add ``ledger`` to the root application."""
    root.add_typer(app, name="ledger")
