"""``fundtrail scenario``: generate worlds with ground truth (demo, exercises, accuracy and scale
benchmarks)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fundtrail.cli.common import (
    FormatOpt,
    OutputFormat,
    Table,
    chain_tables,
    console,
    handle_errors,
    print_json,
    progress,
)

app = typer.Typer(help="Generated worlds with ground truth.", no_args_is_help=True)

SIZES = ("small", "medium", "large")
"""The named world sizes (those of fundtrail.scenarios.world.SIZES, as tests/cli/test_startup.py checks),
here so that `--help` need not import the generator."""
SizeOpt = Annotated[
    str, typer.Option("--size", "-s", help=f"{', '.join(SIZES)} or a number of transactions.")
]
SeedOpt = Annotated[
    int, typer.Option("--seed", help="Seed: the same seed and size give byte-identical files.")
]


@app.command("generate")
@handle_errors
def generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the world into.")],
    seed: SeedOpt = 1,
    size: SizeOpt = "small",
    gzip: Annotated[bool, typer.Option("--gzip", help="Compress transactions and address owners.")] = False,
    chain: Annotated[str, typer.Option("--chain", "-c", help="Chain whose addresses to use.")] = "btc",
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Generate a world: bitcoin-etl transactions, TagPacks with an ActorPack, and the ground truth."""
    chain_tables()
    from fundtrail.scenarios.world import WorldConfig, generate_world

    config = WorldConfig.for_size(size, seed, chain=chain, compress=gzip)
    total = 100 + config.active_blocks
    with progress(f"world seed {seed} ({config.size})", total=total) as advance:
        done = [0]

        def on_progress(blocks: int, _total: int) -> None:
            advance(blocks - done[0])
            done[0] = blocks

        summary = generate_world(config, out, on_progress=on_progress)
    if fmt is OutputFormat.JSON:
        print_json(summary.to_dict())
        return
    console.print(
        f"[bold]world[/] seed {seed}, size {config.size}: {summary.transactions:,} transactions in "
        f"{summary.blocks} blocks ({summary.heights[0]}-{summary.heights[1]}), "
        f"{summary.addresses:,} addresses, {summary.entities:,} entities, {summary.seconds:.1f}s"
    )
    console.print("CoinJoins: " + ", ".join(f"{k} {v}" for k, v in summary.coinjoins.items()))
    table = Table(
        "typology", "victims", "proceeds BTC", "cash-outs", "cashed out BTC", "exchanges (jurisdictions)"
    )
    for t in summary.typologies:
        pairs = sorted({(c.exchange_name, c.jurisdiction or "?") for c in t.cash_outs})
        table.add_row(
            f"{t.id} ({t.label})" + ("" if t.complete else " [unfinished]"),
            str(len(t.victims)),
            f"{t.proceeds / 1e8:.8f}",
            str(len(t.cash_outs)),
            f"{t.cashed_out / 1e8:.8f}",
            ", ".join(f"{n} ({j})" for n, j in pairs),
        )
    console.print(table)
    for name, path in summary.files.items():
        console.print(f"{name}: {path}", highlight=False)


def register(root: typer.Typer) -> None:
    """Add ``scenario`` to the root application."""
    root.add_typer(app, name="scenario")
