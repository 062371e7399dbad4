"""``fundtrail evaluate``: measured accuracy of clustering, CoinJoin detection and tracing on generated
worlds."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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

if TYPE_CHECKING:
    from fundtrail.scenarios.evaluate import Evaluation


@handle_errors
def evaluate_command(
    worlds: Annotated[int, typer.Option("--worlds", "-n", help="How many worlds to generate and score.")] = 5,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the first world (the next ones count up).")
    ] = 1,
    size: Annotated[
        str, typer.Option("--size", "-s", help="small, medium or a number of transactions.")
    ] = "small",
    with_change: Annotated[
        bool,
        typer.Option(
            "--with-change/--no-with-change", help="Also score clustering joined by change outputs."
        ),
    ] = True,
    keep: Annotated[
        Path | None, typer.Option("--keep", help="Keep the generated worlds in this folder.")
    ] = None,
    cross_chain: Annotated[
        bool,
        typer.Option(
            "--cross-chain",
            help="Score cross-chain worlds instead: conversion rules, pool heuristics, cash-out recall.",
        ),
    ] = False,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Generate worlds with ground truth and report precision and recall of FundTrail's heuristics."""
    chain_tables()
    from fundtrail.scenarios.evaluate import evaluate

    if cross_chain:
        from fundtrail.scenarios.crosschain import evaluate_cross_chain

        found = evaluate_cross_chain(worlds, seed, size)
        if fmt is OutputFormat.JSON:
            print_json(found)
            return
        console.print(f"[bold]{worlds} cross-chain worlds[/], size {size}, seeds {seed}..{seed + worlds - 1} "
                      f"({found['seconds']:.0f}s)", highlight=False)
        table = Table("metric", "mean", "std", "min", "max")
        for name, s in found["metrics"].items():
            table.add_row(name, f"{s['mean']:.3f}", f"{s['std']:.3f}", f"{s['min']:.3f}", f"{s['max']:.3f}")
        console.print(table)
        return
    with progress(f"evaluating {worlds} worlds", total=worlds) as advance:
        result = evaluate(
            worlds,
            seed,
            size,
            with_change=with_change,
            keep=keep,
            on_progress=lambda done, total, scores: advance(1),
        )
    if fmt is OutputFormat.JSON:
        print_json(result.to_dict())
        return
    render(result)


def render(result: Evaluation) -> None:
    """Print the table of scores: mean, standard deviation, minimum and maximum over the worlds."""
    seeds = [w.seed for w in result.worlds]
    console.print(
        f"[bold]{len(seeds)} worlds[/], size {result.size}, seeds {seeds[0]}..{seeds[-1]} "
        f"({result.seconds:.0f}s)",
        highlight=False,
    )
    table = Table("metric", "mean", "std", "min", "max")
    for name, s in result.summary().items():
        table.add_row(name, f"{s.mean:.3f}", f"{s.std:.3f}", f"{s.min:.3f}", f"{s.max:.3f}")
    console.print(table)


def register(root: typer.Typer) -> None:
    """Add ``evaluate`` to the root application."""
    root.command("evaluate")(evaluate_command)
