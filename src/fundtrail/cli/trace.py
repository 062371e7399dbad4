"""``fundtrail trace`` (follow funds with a taint policy) and ``fundtrail path`` (paths between addresses)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Annotated, Any

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
from fundtrail.domain.taint import Direction, TaintPolicy
from fundtrail.errors import InputError

# The tracing defaults, as the options show them. They equal those of fundtrail.analysis.tracing.params
# (tests/cli/test_startup.py checks it): repeated here so that `--help` need not import the tracer.
DEFAULT_MAX_HOPS = 6
DEFAULT_MAX_STEPS = 200
DEFAULT_HUB_DEGREE = 500
DEFAULT_MIN_CONFIDENCE = 0.5

ChainOpt = Annotated[str, typer.Option("--chain", "-c", help="Chain name (btc, ltc, eth ...).")]
MaxHopsOpt = Annotated[int, typer.Option(
    "--max-hops", help="Stop after this many owner hops (hand-overs between owners; a spend to the "
                       "sender's own change, peel chain or cluster uses none).")]
MaxStepsOpt = Annotated[int, typer.Option(
    "--max-steps", help="Stop after this many transactions (transfers), whoever owns them.")]
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
ConversionsOpt = Annotated[bool, typer.Option(
    "--conversions/--no-conversions",
    help="Follow detected conversions (swaps, bridges, pools) onto their out asset and chain "
         "(`fundtrail conversions`); --no-conversions stops where value enters one.")]
MinConfidenceOpt = Annotated[float, typer.Option(
    "--min-confidence", min=0.0, max=1.0, help="Follow only conversions at least this confident (0..1).")]


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


def trace(seeds: SeedsArg, chain: ChainOpt = "btc", policy: PolicyOpt = TaintPolicy.HAIRCUT,
          direction: DirectionOpt = Direction.FORWARD, max_hops: MaxHopsOpt = DEFAULT_MAX_HOPS,
          max_steps: MaxStepsOpt = DEFAULT_MAX_STEPS, min_value: MinValueOpt = 0,
          since: SinceOpt = None, until: UntilOpt = None, asset: AssetOpt = None,
          stop_at_services: ServicesOpt = True, hub_degree: HubOpt = DEFAULT_HUB_DEGREE,
          follow_change: ChangeOpt = True,
          conversions: ConversionsOpt = True, min_confidence: MinConfidenceOpt = DEFAULT_MIN_CONFIDENCE,
          home: HomeOpt = DEFAULT_HOME, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """Trace funds from seeds with a taint policy: endpoints (services, CoinJoins, unspent) and flows,
    across swaps, bridges and pools onto other assets and chains."""
    from fundtrail.analysis.tracing import TraceParams, trace_funds
    from fundtrail.store import ChainStore

    params = TraceParams(direction=direction, policy=policy, max_hops=max_hops, max_steps=max_steps,
                         min_value=min_value, since=parse_time(since, "--since"),
                         until=parse_time(until, "--until"), asset=asset, stop_at_services=stop_at_services,
                         hub_degree=hub_degree, follow_change=follow_change, follow_conversions=conversions,
                         min_confidence=min_confidence)
    with ChainStore.open_home(home) as store:
        doc = trace_funds(store, chain, list(seeds), params).to_dict()
        first_block = store.con.execute("SELECT min(height) FROM blocks WHERE chain = ?", [chain]).fetchone()
    if fmt is OutputFormat.JSON:
        print_json(doc)
        return
    _render_trace(doc, first_block[0] if first_block else None)


_STOP_WORDS = {"service": "at a service", "hub": "at a hub", "coinjoin": "at a CoinJoin",
               "max_hops": "at --max-hops (owner hops)", "max_steps": "at --max-steps (transactions)",
               "min_value": "below --min-value",
               "time_window": "outside the time window", "change": "at change (--no-follow-change)",
               "not_in_store": "where the store lacks the history",
               "unknown": "where no input accounts for the value"}
"""How the human summary names each reason a trace was cut short."""


def _render_trace(doc: dict[str, Any], first_block: int | None = None) -> None:
    chain = doc["chain"]
    title = (f"{chain} {doc['direction']} trace, {doc['policy']}, "
             f"max {doc['parameters']['max_hops']} owner hops, {doc['parameters']['max_steps']} steps: "
             "endpoints")
    table = Table(title=title)
    tokens = any(e["asset"] != "native" for e in doc["endpoints"])
    chains = "conversions" in doc
    for col in (*(("chain",) if chains else ()), "address / txid", "entity (category)", "reason",
                *(("asset",) if tokens else ()), "tainted", "hops"):
        table.add_column(col, justify="right" if col in ("tainted", "hops") else "left",
                         no_wrap=col == "tainted")
    for e in doc["endpoints"]:
        who = " ".join(x for x in (e["entity"], f"({e['category']})" if e["category"] else None) if x) or "-"
        if e.get("sanctioned"):
            who = f"{who} SANCTIONED ({', '.join(e['sanctions_lists'])})"
        where = e.get("chain", chain)
        table.add_row(*((where,) if chains else ()), e["address"] or e["txid"] or "-", who, e["reason"],
                      *((e["asset"],) if tokens else ()), amount_text(e["tainted_value"], where, e["asset"]),
                      str(e["hops"]))
    console.print(table)
    _render_conversions(doc)
    per_hop: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
    for f in doc["flows"]:
        bucket = (f["hop"], f["asset"] if f.get("chain", chain) == chain else f"{f['chain']}:{f['asset']}")
        per_hop[bucket][0] += 1
        per_hop[bucket][1] += int(f["tainted_value"])
    flows = Table(title="flows per owner hop")
    for col in ("hop", "flows", "tainted"):
        flows.add_column(col, justify="right", no_wrap=True)
    for hop, key in sorted(per_hop):
        count, value = per_hop[hop, key]
        where, asset = _chain_asset(key, chain)
        flows.add_row(str(hop), str(count), amount_text(value, where, asset))
    console.print(flows)
    for key, t in doc["totals"]["assets"].items():
        where, asset = _chain_asset(key, chain)
        console.print(f"{key}: seeded {amount_text(t['seeded'], where, asset)}, at endpoints "
                      f"{amount_text(t['endpoints'], where, asset)}, "
                      f"fees {amount_text(t['fees'], where, asset)}",
                      highlight=False)
    if doc["stopped"]:
        reasons: dict[str, int] = defaultdict(int)
        for s in doc["stopped"]:
            reasons[s["reason"]] += 1
        where = ", ".join(f"{n} {_STOP_WORDS.get(r, r)}" for r, n in sorted(reasons.items()))
        console.print(f"stopped early at {len(doc['stopped'])} places ({where}); see --format json",
                      highlight=False)
    if any(e["reason"] == "not_in_store" for e in doc["endpoints"]):
        before = f"before block {first_block:,}" if first_block is not None else "it spends"
        console.print(f"the {chain} chain data {before} is not in the store: ingest earlier blocks to trace "
                      "further back", highlight=False)


def _chain_asset(key: str, chain: str) -> tuple[str, str]:
    """(chain, asset) of a totals key: ``asset`` on the trace's chain, ``chain:asset`` on another."""
    where, colon, asset = key.partition(":")
    return (where, asset) if colon else (chain, key)


def _render_conversions(doc: dict[str, Any]) -> None:
    """The conversions a trace followed, one row each."""
    if not doc.get("conversions"):
        return
    table = Table(title="conversions followed")
    for col in ("kind (rule)", "confidence", "in", "out", "tainted in", "tainted out", "followed"):
        table.add_column(col, justify="right" if col.startswith(("tainted", "confidence")) else "left")
    for c in doc["conversions"]:
        i, o = c["in"], c["out"]
        table.add_row(f"{c['kind']} ({c['rule']})", f"{c['confidence']:.2f}",
                      f"{i['chain']} {i['address']}", f"{o['chain']} {o['address']}",
                      amount_text(c["tainted_in"], i["chain"], i["asset"]),
                      amount_text(c["tainted_out"], o["chain"], o["asset"]), c["followed"])
    console.print(table)


def path(source: Annotated[str, typer.Argument(help="The address funds leave.")],
         target: Annotated[str, typer.Argument(help="The address funds arrive at.")],
         chain: ChainOpt = "btc", max_hops: MaxHopsOpt = DEFAULT_MAX_HOPS,
         max_steps: MaxStepsOpt = DEFAULT_MAX_STEPS, min_value: MinValueOpt = 0,
         since: SinceOpt = None, until: UntilOpt = None, hub_degree: HubOpt = DEFAULT_HUB_DEGREE,
         limit: Annotated[int, typer.Option("--limit", help="At most this many paths.")] = 10,
         home: HomeOpt = DEFAULT_HOME, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """Shortest value-carrying paths from one address to another (owner hops and steps)."""
    from fundtrail.analysis.paths import find_paths
    from fundtrail.analysis.tracing import TraceParams
    from fundtrail.store import ChainStore

    params = TraceParams(max_hops=max_hops, max_steps=max_steps, min_value=min_value,
                         since=parse_time(since, "--since"), until=parse_time(until, "--until"),
                         hub_degree=hub_degree)
    with ChainStore.open_home(home) as store:
        doc = find_paths(store, chain, source, target, params, limit=limit).to_dict()
    if fmt is OutputFormat.JSON:
        print_json(doc)
        return
    if not doc["paths"]:
        console.print(f"no path from {doc['source']} to {doc['target']} within {max_hops} owner hops "
                      f"and {max_steps} steps")
        return
    for i, p in enumerate(doc["paths"], 1):
        table = Table(title=f"path {i}: {p['hops']} owner hops, {p['steps']} steps")
        for col in ("hop", "step", "txid", "from", "to", "asset", "value"):
            table.add_column(col, justify="right" if col in ("hop", "step", "value") else "left",
                             no_wrap=col == "value")
        for f in p["flows"]:
            table.add_row(str(f["hop"]), str(f["step"]), f["txid"], f["from"] or "-", f["to"] or "-",
                          f["asset"],
                          amount_text(f["value"], chain, f["asset"]))
        console.print(table)


def register(root: typer.Typer) -> None:
    """Add ``trace`` and ``path`` to the root application."""
    root.command("trace")(handle_errors(trace))
    root.command("path")(handle_errors(path))
