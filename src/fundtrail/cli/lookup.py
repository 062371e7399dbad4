"""``fundtrail address`` and ``fundtrail tx``: look-ups on the chain store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

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
from fundtrail.cli.tags import render_risk_panel

ChainOpt = Annotated[str, typer.Option("--chain", "-c", help="Chain name (btc, ltc, eth ...).")]

def _when(ts: int | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def address(addr: Annotated[str, typer.Argument(help="The address to look up.")],
            chain: ChainOpt = "btc", home: HomeOpt = DEFAULT_HOME,
            fmt: FormatOpt = OutputFormat.HUMAN,
            indicators: Annotated[Path | None, typer.Option(
                "--indicators", help="Risk indicator catalogue (YAML) overriding or extending the default.")
                                  ] = None) -> None:
    """Balance, received, sent, first/last seen and transaction count, cluster, tags, sanctions, exposure
    and risk with its evidence (the address profile, :mod:`fundtrail.analysis.profile`)."""
    from fundtrail.analysis import profile
    from fundtrail.store import ChainStore

    with ChainStore.open_home(home) as store:
        doc = profile.address_document(store, home, chain, addr, indicators_file=indicators)
    if fmt is OutputFormat.JSON:
        print_json(doc)
        return
    table = Table(title=f"{doc['chain']} {doc['address']}", show_header=True)
    for col in ("asset", "received", "sent", "balance"):
        table.add_column(col, justify="right" if col != "asset" else "left")
    chain = doc["chain"]
    for a in doc["assets"]:
        table.add_row(a["asset"], *(amount_text(a[k], chain, a["asset"])
                                    for k in ("received", "sent", "balance")))
    console.print(table)
    console.print(f"transactions: {doc['tx_count']}   first seen: {_when(doc['first_seen'])}   "
                  f"last seen: {_when(doc['last_seen'])}")
    render_risk_panel(doc)


def tx(txid: Annotated[str, typer.Argument(help="Transaction id (hash).")],
       chain: ChainOpt = "btc", home: HomeOpt = DEFAULT_HOME,
       fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """A transaction with its inputs and outputs, or transfers."""
    from fundtrail.store import ChainStore
    from fundtrail.store.lookups import transaction_detail

    with ChainStore.open_home(home) as store:
        doc = transaction_detail(store, chain, txid)
    if fmt is OutputFormat.JSON:
        print_json(doc)
        return
    console.print(f"[bold]{doc['txid']}[/] ({doc['chain']}) block {doc['height']} {doc['block_hash'] or ''}")
    chain = doc["chain"]
    console.print(f"time {_when(doc['time'])}   fee {amount_text(doc['fee'], chain)}", highlight=False)
    if "outputs" in doc:
        table = Table("side", "n", "address")
        table.add_column("value", justify="right", no_wrap=True)
        table.add_column("type / spends")
        for i in doc["inputs"]:
            table.add_row("in", str(i["n"]), i["address"] or "?", amount_text(i["value"] or "?", chain),
                          f"{i['prev_txid']}:{i['prev_n']}")
        for o in doc["outputs"]:
            table.add_row("out", str(o["n"]), o["address"] or "-", amount_text(o["value"], chain),
                          o["script_type"])
    else:
        table = Table("kind", "index", "asset", "from", "to")
        table.add_column("value", justify="right")
        for t in doc["transfers"]:
            table.add_row(t["kind"], str(t["index"]), t["asset"], t["from"] or "-", t["to"] or "-",
                          amount_text(t["value"], chain, t["asset"]))
    console.print(table)


def register(root: typer.Typer) -> None:
    """Add ``address`` and ``tx`` to the root application."""
    root.command("address")(handle_errors(address))
    root.command("tx")(handle_errors(tx))
