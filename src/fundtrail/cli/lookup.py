"""``fundtrail address`` and ``fundtrail tx``: look-ups on the chain store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from fundtrail.cli.common import DEFAULT_HOME, FormatOpt, HomeOpt, OutputFormat, console, handle_errors, print_json
from fundtrail.store import ChainStore
from fundtrail.store.lookups import address_activity, transaction_detail

ChainOpt = Annotated[str, typer.Option("--chain", "-c", help="Chain name (btc, ltc, eth ...).")]

# Extra sections that later layers (clusters, tags, risk) add to the address document.
ADDRESS_ENRICHERS: list[Any] = []
# Options of the running `fundtrail address` command that enrichers may read (e.g. "indicators").
ADDRESS_OPTIONS: dict[str, Any] = {}
# Functions `render(doc)` printing extra sections in human output, after the balance table.
ADDRESS_RENDERERS: list[Any] = []


def _when(ts: int | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def address(addr: Annotated[str, typer.Argument(help="The address to look up.")],
            chain: ChainOpt = "btc", home: HomeOpt = DEFAULT_HOME,
            fmt: FormatOpt = OutputFormat.HUMAN,
            indicators: Annotated[Path | None, typer.Option(
                "--indicators", help="Risk indicator catalogue (YAML) overriding or extending the default.")
                                  ] = None) -> None:
    """Balance, received, sent, first/last seen and transaction count of an address."""
    ADDRESS_OPTIONS.clear()
    ADDRESS_OPTIONS["indicators"] = indicators
    with ChainStore.open_home(home) as store:
        doc = address_activity(store, chain, addr)
        for enrich in ADDRESS_ENRICHERS:
            enrich(store, home, doc)
    if fmt is OutputFormat.JSON:
        print_json(doc)
        return
    table = Table(title=f"{doc['chain']} {doc['address']}", show_header=True)
    for col in ("asset", "received", "sent", "balance"):
        table.add_column(col, justify="right" if col != "asset" else "left")
    for a in doc["assets"]:
        table.add_row(a["asset"], a["received"], a["sent"], a["balance"])
    console.print(table)
    console.print(f"transactions: {doc['tx_count']}   first seen: {_when(doc['first_seen'])}   "
                  f"last seen: {_when(doc['last_seen'])}")
    for render in ADDRESS_RENDERERS:
        render(doc)


def tx(txid: Annotated[str, typer.Argument(help="Transaction id (hash).")],
       chain: ChainOpt = "btc", home: HomeOpt = DEFAULT_HOME,
       fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """A transaction with its inputs and outputs, or transfers."""
    with ChainStore.open_home(home) as store:
        doc = transaction_detail(store, chain, txid)
    if fmt is OutputFormat.JSON:
        print_json(doc)
        return
    console.print(f"[bold]{doc['txid']}[/] ({doc['chain']}) block {doc['height']} {doc['block_hash'] or ''}")
    console.print(f"time {_when(doc['time'])}   fee {doc['fee'] if doc['fee'] is not None else '-'}")
    if "outputs" in doc:
        table = Table("side", "n", "address", "value", "type / spends")
        for i in doc["inputs"]:
            table.add_row("in", str(i["n"]), i["address"] or "?", i["value"] or "?", f"{i['prev_txid']}:{i['prev_n']}")
        for o in doc["outputs"]:
            table.add_row("out", str(o["n"]), o["address"] or "-", o["value"], o["script_type"])
    else:
        table = Table("kind", "index", "asset", "from", "to", "value")
        for t in doc["transfers"]:
            table.add_row(t["kind"], str(t["index"]), t["asset"], t["from"] or "-", t["to"] or "-", t["value"])
    console.print(table)


def register(root: typer.Typer) -> None:
    """Add ``address`` and ``tx`` to the root application."""
    root.command("address")(handle_errors(address))
    root.command("tx")(handle_errors(tx))
