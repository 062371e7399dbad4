"""``fundtrail demo``: build the demo agency in a home and show where the ransom of its case went."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fundtrail.cli.common import (
    DEFAULT_HOME,
    FormatOpt,
    HomeOpt,
    OutputFormat,
    Table,
    chain_tables,
    console,
    handle_errors,
    print_json,
)
from fundtrail.scenarios.steps import DEFAULT_SEED, DEFAULT_SIZE, DemoStep, StepResult, StepStatus

if TYPE_CHECKING:
    from fundtrail.scenarios.demo import DemoRun

_MARK = {
    StepStatus.DONE: "[green]done[/]",
    StepStatus.SKIPPED: "[yellow]skipped[/]",
    StepStatus.FAILED: "[red]failed[/]",
}


@handle_errors
def demo(
    home: HomeOpt = DEFAULT_HOME,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generated world.")] = DEFAULT_SEED,
    size: Annotated[
        str, typer.Option("--size", help="World size: small, medium or a number of transactions.")
    ] = DEFAULT_SIZE,
    shared_data: Annotated[
        Path | None,
        typer.Option(
            "--shared-data",
            help="Public data folder with the sanctions lists (default: $FUNDTRAIL_SHARED_DATA "
            "or ./shared/data when present).",
        ),
    ] = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Build the demo world, run a sample investigation, and print where the ransom went."""
    chain_tables()
    from fundtrail.scenarios.demo import run_demo
    from fundtrail.scenarios.world import parse_size

    parse_size(size)  # a bad size is bad input (exit 2), not a failed step
    human = fmt is OutputFormat.HUMAN

    def on_step(step: DemoStep, result: StepResult | None) -> None:
        if not human:
            return
        if result is None:
            console.print(f"[bold]{step.title}[/] ...", highlight=False)
            return
        console.print(
            f"  {_MARK[result.status]} ({result.seconds:.1f}s): {result.message}",
            highlight=False,
            markup=True,
        )

    run = run_demo(home, seed=seed, size=size, shared_data=shared_data, on_step=on_step)
    if not human:
        print_json(run.to_dict())
    else:
        _render(run)
    if not run.ok:
        raise typer.Exit(1)


def _render(run: DemoRun) -> None:
    from fundtrail.scenarios.demo import btc

    summary = run.summary
    console.print()
    if summary is None:
        console.print("[yellow]No trace yet:[/] the layers it needs are not all there (see the steps above).")
    else:
        case = summary["case"]
        console.print(
            f"[bold]Where the ransom went[/]: {case['label']} ransomware, {case['victims']} victims paid "
            f"{btc(case['paid'])} BTC to {len(case['seeds'])} addresses (trace policy {summary['policy']})",
            highlight=False,
        )
        table = Table("exchange", "jurisdiction", "tainted BTC", "tainted sats")
        table.add_column("deposit addresses", overflow="fold")
        for x in summary["exchanges"]:
            table.add_row(
                x["name"],
                x["jurisdiction"] or "?",
                btc(x["tainted_value"]),
                f"{x['tainted_value']:,}",
                "\n".join(x["addresses"]),
            )
        console.print(table)
        console.print(
            "Cash-out exchanges: "
            + (
                ", ".join(f"{x['name']} ({x['jurisdiction'] or '?'})" for x in summary["exchanges"])
                or "none reached"
            ),
            highlight=False,
        )
        if summary["coinjoins"]:
            console.print(f"CoinJoins met: {len(summary['coinjoins'])} (the trace stops there)")
            for c in summary["coinjoins"][:5]:
                console.print(
                    f"  {c['txid']}  {btc(c['tainted_value'])} BTC after {c['hops']} hops", highlight=False
                )
            if len(summary["coinjoins"]) > 5:
                rest = summary["coinjoins"][5:]
                console.print(
                    f"  and {len(rest)} more with {btc(sum(c['tainted_value'] for c in rest))} BTC "
                    "(all in the report)",
                    highlight=False,
                )
        else:
            console.print("CoinJoins met: none")
        for s in summary["services"]:
            console.print(
                f"Other service: {s['name']} ({s['category']}) {btc(s['tainted_value'])} BTC", highlight=False
            )
        console.print(f"Not spent yet: {btc(summary['unspent'])} BTC", highlight=False)
        gt = summary["ground_truth"]
        console.print(
            f"Ground truth: {gt['found']} of {gt['deposit_addresses']} cash-out deposit addresses found; "
            "cash-outs at " + ", ".join(f"{x['name']} ({x['jurisdiction']})" for x in gt["exchanges"]),
            highlight=False,
        )
    for name, path in run.files.items():
        console.print(f"{name.replace('_', ' ')}: {path}", highlight=False)
    for hint in run.hints:
        console.print(hint, highlight=False)
    if not run.ok:
        console.print("[red]Some steps failed[/] (see above); the rest of the demo ran.")
    else:
        console.print(f"Demo agency ready in {run.home}.", highlight=False)


def register(root: typer.Typer) -> None:
    """Add ``demo`` to the root application."""
    root.command("demo")(demo)
