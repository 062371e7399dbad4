"""``fundtrail conversions``: swaps, bridges and pools detected in the chain store."""

from __future__ import annotations

from typing import Annotated, Any

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
from fundtrail.domain.chains import get_chain
from fundtrail.domain.conversions import ConversionKind

app = typer.Typer(
    help="List (or recompute with --detect) swaps, bridges and pools.", invoke_without_command=True
)


@app.callback()
@handle_errors
def conversions(
    chain: Annotated[
        str | None, typer.Option("--chain", "-c", help="Only conversions in or out of this chain.")
    ] = None,
    kind: Annotated[ConversionKind | None, typer.Option("--kind", help="swap, bridge or pool.")] = None,
    min_confidence: Annotated[
        float, typer.Option("--min-confidence", min=0.0, max=1.0, help="Least confidence listed.")
    ] = 0.0,
    detect: Annotated[
        bool, typer.Option("--detect", help="Recompute every conversion in the store first.")
    ] = False,
    home: HomeOpt = DEFAULT_HOME,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Conversions (kind, rule, confidence, candidates, in and out legs); --detect recomputes them."""
    from fundtrail.analysis.conversions import detect_conversions, list_conversions
    from fundtrail.store import ChainStore

    name = get_chain(chain).name if chain is not None else None
    doc: dict[str, Any] = {"chain": name}
    with ChainStore.open_home(home, read_only=not detect) as store:
        if detect:
            doc["detection"] = detect_conversions(store).to_dict()
        found = list_conversions(store, name, kind, min_confidence)
    doc["conversions"] = [c.to_dict() for c in found]
    if fmt is OutputFormat.JSON:
        print_json(doc)
        return
    if detect:
        d = doc["detection"]
        console.print(
            f"{d['total']} conversions detected; {sum(d['skipped'].values())} inputs skipped"
            + "".join(f", {n} {reason}" for reason, n in d["skipped"].items()),
            markup=False,
        )
    table = Table("kind", "rule", "confidence", "in", "out", title="conversions")
    for c in found:
        table.add_row(
            c.kind.value,
            c.rule,
            f"{c.confidence:.2f} ({c.candidates})",
            f"{c.in_.chain} {c.in_.txid} {c.in_.address} {c.in_.asset} {c.in_.value}",
            f"{c.out.chain} {c.out.txid} {c.out.address} {c.out.asset} {c.out.value}",
        )
    console.print(table)


def register(root: typer.Typer) -> None:
    """Add ``conversions`` to the root application."""
    root.add_typer(app, name="conversions")
