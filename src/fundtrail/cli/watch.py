"""``fundtrail watch``: watch lists (add, list, remove, share) and the watcher (``watch run``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from fundtrail.cli.case import AsOpt, ReasonOpt, emit
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
from fundtrail.cli.share import TaxiiPasswordOpt, TaxiiUserOpt
from fundtrail.errors import InputError

app = typer.Typer(
    help="Watch lists: alerts when watched funds move or reach a service.", no_args_is_help=True
)

ChainOpt = Annotated[str, typer.Option("--chain", "-c", help="Chain of the targets: btc, ltc, eth ...")]


@app.command("add")
@handle_errors
def add(
    targets: Annotated[
        list[str] | None, typer.Argument(help="Addresses or outputs (txid:n).", show_default=False)
    ] = None,
    chain: ChainOpt = "btc",
    case: Annotated[str | None, typer.Option("--case", help="The case the watch serves.")] = None,
    trace_file: Annotated[
        Path | None,
        typer.Option(
            "--trace-file", help="Watch the unspent endpoints of a trace (fundtrail trace --format json)."
        ),
    ] = None,
    evidence: Annotated[
        str | None,
        typer.Option("--evidence", help="Watch the unspent endpoints of a preserved evidence item."),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            help="Watch every address of this address's co-spend cluster (as `fundtrail cluster` stored it).",
        ),
    ] = None,
    label: Annotated[str | None, typer.Option("--label", help="A name for the watch.")] = None,
    reason: ReasonOpt = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Watch addresses, outputs, a trace's unspent endpoints or an evidence item's, or a cluster."""
    from fundtrail.cases.context import open_operation
    from fundtrail.cases.evidence import load_trace_file
    from fundtrail.watch.service import add_watch, watch_doc

    trace = load_trace_file(trace_file) if trace_file is not None else None
    with open_operation(home, as_) as ctx:
        doc = watch_doc(
            add_watch(
                ctx,
                chain,
                targets or [],
                case=case,
                label=label,
                trace=trace,
                trace_source=str(trace_file),
                evidence=evidence,
                cluster=cluster,
                reason=reason,
            )
        )
    emit(
        fmt,
        doc,
        f"watch {doc['id']}: {len(doc['targets'])} target(s) on {doc['chain']}"
        + (f" for case {doc['case']}" if doc["case"] else ""),
    )


@app.command("list")
@handle_errors
def list_(
    case: Annotated[str | None, typer.Option("--case", help="Only the watches of this case.")] = None,
    removed: Annotated[bool, typer.Option("--removed", help="Include removed watches.")] = False,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """The watches you may see."""
    from fundtrail.cases.context import open_operation
    from fundtrail.watch.service import list_watches, watch_doc

    with open_operation(home, as_) as ctx:
        docs = [watch_doc(w) for w in list_watches(ctx, case=case, include_removed=removed)]
    if fmt is OutputFormat.JSON:
        print_json(docs)
        return
    table = Table("id", "chain", "case", "source", "targets", "reached", "active", whole=("id", "case"))
    for d in docs:
        table.add_row(
            str(d["id"]),
            d["chain"],
            d["case"] or d["case_ref"] or "",
            d["source"],
            "\n".join(d["targets"][:5]) + (f"\n(+{len(d['targets']) - 5})" if len(d["targets"]) > 5 else ""),
            str(len(d["reached"])),
            "yes" if d["active"] else "no",
        )
    console.print(table)


@app.command("remove")
@handle_errors
def remove(
    watch_id: Annotated[int, typer.Argument(help="The watch id.")],
    reason: ReasonOpt = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Stop a watch (it stays listed with its alerts)."""
    from fundtrail.cases.context import open_operation
    from fundtrail.watch.service import remove_watch, watch_doc

    with open_operation(home, as_) as ctx:
        doc = watch_doc(remove_watch(ctx, watch_id, reason=reason))
    emit(fmt, doc, f"watch {doc['id']} removed")


@app.command("share")
@handle_errors
def share(
    watch_id: Annotated[int, typer.Argument(help="The watch id.")],
    agreement: Annotated[str, typer.Option("--agreement", help="The sharing agreement with the partner.")],
    transport: Annotated[
        str,
        typer.Option(
            "--transport",
            help="api: the partner's signed cooperation API; taxii: a signed STIX object in the "
            "agreement's TAXII collection (--taxii), which the partner takes with `fundtrail share pull`.",
        ),
    ] = "api",
    taxii: Annotated[
        str | None,
        typer.Option("--taxii", help="With --transport taxii: the agreement's TAXII 2.1 collection URL."),
    ] = None,
    taxii_user: TaxiiUserOpt = None,
    taxii_password: TaxiiPasswordOpt = None,
    reason: ReasonOpt = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Share a watch with a partner agency, which alerts when the funds reach a service in its country."""
    from fundtrail.cases.context import open_operation
    from fundtrail.cli.share import _target
    from fundtrail.watch.service import watch_doc
    from fundtrail.watch.sharing import share_watch

    if transport not in ("api", "taxii"):
        raise InputError(f"--transport {transport!r}: api or taxii")
    if transport == "taxii" and not taxii:
        raise InputError("--transport taxii needs --taxii, the agreement's TAXII 2.1 collection URL")
    target = _target(home, taxii, taxii_user, taxii_password) if transport == "taxii" and taxii else None
    with open_operation(home, as_) as ctx:
        doc = watch_doc(
            share_watch(ctx, watch_id, agreement, reason=reason, transport=transport, taxii=target)
        )
    emit(
        fmt,
        doc,
        f"watch {doc['id']} shared under {agreement} over {transport} "
        + (f"(partner's watch {doc['remote_ref']})" if transport == "api" else f"(STIX {doc['remote_ref']})"),
    )


@app.command("run")
@handle_errors
def run(
    source: Annotated[
        str | None,
        typer.Option(
            "--source", help="A node's JSON-RPC URL, an export folder or a file (default: only the store)."
        ),
    ] = None,
    chain: ChainOpt = "btc",
    once: Annotated[bool, typer.Option("--once", help="One cycle, then exit (the default).")] = False,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep running, one cycle every --interval.")
    ] = False,
    interval: Annotated[
        float,
        typer.Option(
            "--interval", min=0.1, help="Seconds between cycles.", envvar="FUNDTRAIL_WATCH_INTERVAL"
        ),
    ] = 10.0,
    start: Annotated[
        int | None, typer.Option("--from", help="A node: first height when the store is empty.")
    ] = None,
    webhook: Annotated[str | None, typer.Option("--webhook", help="POST alerts here (signed).")] = None,
    smtp: Annotated[
        str | None, typer.Option("--smtp", help="SMTP server HOST:PORT for alert emails.")
    ] = None,
    email_to: Annotated[
        list[str] | None, typer.Option("--email-to", help="Email alerts to this address.")
    ] = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Ingest what is new, evaluate the watches it touches, raise and deliver alerts; resumable."""
    from fundtrail.watch.delivery import DeliverySettings
    from fundtrail.watch.runner import CycleReport, Watcher, make_source
    from fundtrail.watch.runner import follow as follow_loop

    if once and follow:
        raise InputError("--once and --follow exclude each other")
    settings = DeliverySettings.from_env(
        webhook=webhook, smtp=smtp, email_to=tuple(email_to) if email_to else None
    )
    src = make_source(source, chain, start) if source else None
    watcher = Watcher(Path(home), as_, settings)

    def show(report: CycleReport) -> None:
        if fmt is OutputFormat.JSON:
            if follow:
                for alert in report.alerts:
                    console.file.write(json.dumps(alert, default=str) + "\n")
                console.file.flush()
            else:
                print_json(report.to_dict())
            return
        for alert in report.alerts:
            where = f" at {alert['entity']}" if alert["entity"] else ""
            console.print(
                f"alert {alert['id']}: {alert['kind']}{where} {alert['chain']} {alert['txid'] or ''} "
                f"(watch {alert['watch']}"
                + (f", case {alert['case']}" if alert["case"] else "")
                + (f", freeze request {alert['request']} drafted" if alert["request"] else "")
                + ")",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        if not follow:
            for chain_name, ev in report.evaluated.items():
                console.print(
                    f"{chain_name}: evaluated to block {ev['to']}, {ev['watches']} watch(es) traced, "
                    f"{len(report.alerts)} new alert(s)",
                    markup=False,
                    highlight=False,
                )

    try:
        if follow:
            follow_loop(watcher, src, interval=interval, on_cycle=show)
        else:
            show(watcher.cycle(src))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def register(root: typer.Typer) -> None:
    """Add ``watch`` to the root application."""
    root.add_typer(app, name="watch")
