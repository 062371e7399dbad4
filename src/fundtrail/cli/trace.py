"""``fundtrail trace`` (follow funds with a taint policy) and ``fundtrail path`` (paths between addresses)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from fundtrail.analysis.paths import find_paths
from fundtrail.analysis.tracing import trace_funds
from fundtrail.cli.common import (
    DEFAULT_HOME,
    FormatOpt,
    HomeOpt,
    OutputFormat,
    console,
    handle_errors,
    print_json,
)
from fundtrail.domain.taint import Direction, TaintPolicy
from fundtrail.errors import InputError
from fundtrail.store import ChainStore

ChainOpt = Annotated[str, typer.Option("--chain", "-c", help="Chain name (btc, ltc, eth ...).")]
MaxHopsOpt = Annotated[int, typer.Option("--max-hops", help="Stop after this many hops (transactions).")]
MinValueOpt = Annotated[int, typer.Option("--min-value", help="Do not follow less than this (base units).")]
SinceOpt = Annotated[str | None, typer.Option("--since", help="Only transactions at or after this time "
                                                               "(ISO 8601 date/time, UTC, or Unix seconds).")]
UntilOpt = Annotated[str | None, typer.Option("--until", help="Only transactions at or before this time.")]
HubOpt = Annotated[int, typer.Option("--hub-degree",
                                     help="Stop at addresses with more transactions than this.")]
SeedsArg = Annotated[list[str], typer.Argument(help="Addresses, txids or txid:n outputs to trace from.")]
PolicyOpt = Annotated[TaintPolicy, typer.Option("--policy", "-p", help="Taint policy.")]
DirectionOpt = Annotated[Direction, typer.Option("--direction", "-d",
                                                 help="forward: where funds went; backward: where from.")]
AssetOpt = Annotated[str | None, typer.Option("--asset", help="Only this asset (native or a token contract); "
                                                              "default all the seeds hold.")]
ServicesOpt = Annotated[bool, typer.Option("--stop-at-services/--no-stop-at-services",
                                           help="Stop at attributed services (exchanges ...).")]
ChangeOpt = Annotated[bool, typer.Option("--follow-change/--no-follow-change",
                                         help="Follow change outputs (funds back to the sender).")]


def parse_time(text: str | None, option: str) -> int | None:
    """Unix seconds from ISO 8601 (``2024-05-01``, ``2024-05-01T12:00:00Z``) or from digits."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InputError(f"{option} {text!r} is not an ISO 8601 date/time or Unix seconds") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


def _short(text: str | None, width: int = 20) -> str:
    if not text:
        return "-"
    return text if len(text) <= width else text[: width - 9] + "…" + text[-8:]


def trace(seeds: SeedsArg, chain: ChainOpt = "btc", policy: PolicyOpt = TaintPolicy.HAIRCUT,
          direction: DirectionOpt = Direction.FORWARD, max_hops: MaxHopsOpt = 6, min_value: MinValueOpt = 0,
          since: SinceOpt = None, until: UntilOpt = None, asset: AssetOpt = None,
          stop_at_services: ServicesOpt = True, hub_degree: HubOpt = 500, follow_change: ChangeOpt = True,
          home: HomeOpt = DEFAULT_HOME, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """Trace funds from seeds with a taint policy: endpoints (services, CoinJoins, unspent) and flows."""
    with ChainStore.open_home(home) as store:
        result = trace_funds(store, chain, list(seeds), direction=direction.value, policy=policy.value,
                             max_hops=max_hops, min_value=min_value, since=parse_time(since, "--since"),
                             until=parse_time(until, "--until"), asset=asset,
                             stop_at_services=stop_at_services, hub_degree=hub_degree,
                             follow_change=follow_change)
        doc = result.to_dict()
    if fmt is OutputFormat.JSON:
        print_json(doc)
        return
    _render_trace(doc)


def _render_trace(doc: dict[str, Any]) -> None:
    title = (f"{doc['chain']} {doc['direction']} trace, {doc['policy']}, "
             f"max {doc['parameters']['max_hops']} hops: endpoints")
    table = Table(title=title)
    for col in ("address / txid", "entity", "category", "reason", "asset", "tainted", "hops"):
        table.add_column(col, justify="right" if col in ("tainted", "hops") else "left")
    for e in doc["endpoints"]:
        table.add_row(e["address"] or e["txid"] or "-", e["entity"] or "-", e["category"] or "-", e["reason"],
                      _short(e["asset"], 14), e["tainted_value"], str(e["hops"]))
    console.print(table)
    per_hop: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for f in doc["flows"]:
        per_hop[f["hop"]][0] += 1
        per_hop[f["hop"]][1] += int(f["tainted_value"])
    flows = Table(title="flows per hop")
    for col in ("hop", "flows", "tainted"):
        flows.add_column(col, justify="right")
    for hop in sorted(per_hop):
        flows.add_row(str(hop), str(per_hop[hop][0]), str(per_hop[hop][1]))
    console.print(flows)
    for asset, t in doc["totals"]["assets"].items():
        console.print(f"{asset}: seeded {t['seeded']}, at endpoints {t['endpoints']}, fees {t['fees']}")
    if doc["stopped"]:
        console.print(f"stopped early at {len(doc['stopped'])} places (hub, service, CoinJoin, limits); "
                      "see --format json")


def path(source: Annotated[str, typer.Argument(help="The address funds leave.")],
         target: Annotated[str, typer.Argument(help="The address funds arrive at.")],
         chain: ChainOpt = "btc", max_hops: MaxHopsOpt = 6, min_value: MinValueOpt = 0,
         since: SinceOpt = None, until: UntilOpt = None, hub_degree: HubOpt = 500,
         limit: Annotated[int, typer.Option("--limit", help="At most this many paths.")] = 10,
         home: HomeOpt = DEFAULT_HOME, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """Shortest value-carrying paths from one address to another."""
    with ChainStore.open_home(home) as store:
        result = find_paths(store, chain, source, target, max_hops=max_hops, min_value=min_value,
                            since=parse_time(since, "--since"), until=parse_time(until, "--until"),
                            hub_degree=hub_degree, limit=limit)
        doc = result.to_dict()
    if fmt is OutputFormat.JSON:
        print_json(doc)
        return
    if not doc["paths"]:
        console.print(f"no path from {doc['source']} to {doc['target']} within {max_hops} hops")
        return
    for i, p in enumerate(doc["paths"], 1):
        table = Table(title=f"path {i}: {p['hops']} hops")
        for col in ("hop", "txid", "from", "to", "asset", "value"):
            table.add_column(col, justify="right" if col in ("hop", "value") else "left")
        for f in p["flows"]:
            table.add_row(str(f["hop"]), _short(f["txid"], 24), f["from"] or "-", f["to"] or "-",
                          _short(f["asset"], 14), f["value"])
        console.print(table)


def register(root: typer.Typer) -> None:
    """Add ``trace`` and ``path`` to the root application."""
    root.command("trace")(handle_errors(trace))
    root.command("path")(handle_errors(path))
