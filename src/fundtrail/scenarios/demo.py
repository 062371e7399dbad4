"""The demo: a generated world in a FundTrail home, investigated the way an analyst would.

The demo is a list of named steps (:data:`DEMO_STEPS`, composed here and nowhere else). Each step does one
thing with the home (generate, ingest, import tags, cluster, trace, report ...) and says what it did; the
steps on case data (agency and users, case and evidence, a freeze, the sharing agreement, dashboard sign-in,
the audit check) are in :mod:`fundtrail.scenarios.agency`. A step that needs an optional extra that is not
installed stops the demo before it starts, naming the extra; a step that fails is reported, and the demo
goes on with the next step; steps that need an earlier step's result skip themselves when it is missing.

What the chain part leaves in the home::

    HOME/chain.duckdb                     the world ingested, tagged, clustered, patterns detected
    HOME/world/                           the generated world (bitcoin-etl, TagPacks, ground truth)
    HOME/reports/ransomware-trace.json    the trace of the ransomware case (``fundtrail trace`` JSON)
    HOME/reports/demo-report.md           a short report: where the ransom went
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from fundtrail.errors import FundTrailError, MissingExtraError
from fundtrail.scenarios import agency
from fundtrail.scenarios.steps import (
    DEFAULT_SEED,
    DEFAULT_SIZE,
    DemoContext,
    DemoStep,
    StepResult,
    StepSkipped,
    StepStatus,
)

log = logging.getLogger(__name__)

TRACE_FILE = "ransomware-trace.json"
REPORT_FILE = "demo-report.md"
TRACE_POLICY = "haircut"
TRACE_MAX_HOPS = 30
USER_ENV = "FUNDTRAIL_USER"
"""The acting-user setting (:data:`fundtrail.cases.context.USER_ENV`), set aside while the demo runs."""


# ------------------------------------------------------------------------------------------ chain steps


def _step_world(ctx: DemoContext) -> str:
    from fundtrail.scenarios.groundtruth import load_truth
    from fundtrail.scenarios.world import WorldConfig, generate_world

    config = WorldConfig.for_size(ctx.size, ctx.seed, chain=ctx.chain)
    manifest = ctx.world_dir / "world.json"
    if manifest.exists():
        doc = orjson.loads(manifest.read_bytes())
        if doc.get("config") == config.to_dict():
            ctx.state["truth"] = load_truth(ctx.world_dir)
            return f"world seed {ctx.seed} ({config.size}) already in {ctx.world_dir}"
    summary = generate_world(config, ctx.world_dir)
    ctx.state["truth"] = load_truth(ctx.world_dir)
    return (
        f"generated seed {ctx.seed} ({config.size}): {summary.transactions:,} transactions in "
        f"{summary.blocks} blocks, {summary.addresses:,} addresses, {summary.entities:,} entities"
    )


def _step_ingest(ctx: DemoContext) -> str:
    from fundtrail.chains.bitcoin.etl import read_bitcoin_etl
    from fundtrail.store.ingest import ingest_batches

    truth = ctx.need("truth", "world")
    files = sorted(ctx.world_dir.glob("transactions.json*"))
    report = ingest_batches(ctx.store(), truth.chain, read_bitcoin_etl(files, truth.chain))
    ctx.state["ingested"] = True
    return (
        f"{report.txs_written:,} transactions in {report.blocks_written} blocks written, "
        f"{report.blocks_skipped} blocks already stored"
    )


def _step_tags(ctx: DemoContext) -> str:
    from fundtrail.intel.tagpacks import import_actorpack, import_tagpack, is_actorpack, tagpack_files

    ctx.need("ingested", "ingest")
    files = tagpack_files([ctx.world_dir / "tagpacks"])
    actors = sum(import_actorpack(ctx.store(), p) for p in files if is_actorpack(p))
    tags = sum(import_tagpack(ctx.store(), p).tags for p in files if not is_actorpack(p))
    ctx.state["tags"] = tags
    return f"{tags} tags from {len(files) - 1} TagPacks, {actors} actors with jurisdictions"


def find_shared_data() -> Path | None:
    """The public data folder (``$FUNDTRAIL_SHARED_DATA``, else ``shared/data`` next to or above the cwd)."""
    env = os.environ.get("FUNDTRAIL_SHARED_DATA")
    candidates = [Path(env)] if env else []
    here = Path.cwd()
    candidates += [here / "shared" / "data", here.parent / "shared" / "data"]
    package_root = Path(__file__).resolve().parents[3]
    candidates += [package_root / "shared" / "data", package_root.parent / "shared" / "data"]
    return next((c for c in candidates if c.is_dir()), None)


def _step_sanctions(ctx: DemoContext) -> str:
    from fundtrail.intel.sanctions import import_list, list_files

    root = ctx.shared_data or find_shared_data()
    folder = root / "ofac_sanctioned_addresses" if root else None
    if folder is None or not folder.is_dir():
        raise StepSkipped("no sanctions lists found (set FUNDTRAIL_SHARED_DATA to the public data folder)")
    results = [import_list(ctx.store(), p) for p in list_files([folder])]
    return f"{sum(r.addresses for r in results):,} sanctioned addresses from {len(results)} OFAC lists"


def _step_patterns(ctx: DemoContext) -> str:
    from fundtrail.analysis.coinjoin import detect_patterns

    truth = ctx.need("truth", "world")
    ctx.need("ingested", "ingest")
    report = detect_patterns(ctx.store(), truth.chain)
    ctx.state["patterns"] = report
    return (
        f"{report.coinjoins:,} CoinJoins, {report.premixes:,} Whirlpool premixes, "
        f"{report.peel_chains:,} peel chains"
    )


def _step_cluster(ctx: DemoContext) -> str:
    from fundtrail.analysis.clustering import cluster_addresses

    truth = ctx.need("truth", "world")
    ctx.need("ingested", "ingest")
    report = cluster_addresses(ctx.store(), truth.chain)
    ctx.state["clusters"] = report
    return (
        f"{report.addresses:,} addresses in {report.clusters:,} clusters "
        f"(largest {report.largest_cluster_size:,}), {report.coinjoins_excluded:,} CoinJoins left out"
    )


def _step_trace(ctx: DemoContext) -> str:
    from fundtrail.analysis.tracing import trace_funds
    from fundtrail.scenarios.groundtruth import TypologyKind

    truth = ctx.need("truth", "world")
    ctx.need("ingested", "ingest")
    cases = truth.typologies_of(TypologyKind.RANSOMWARE)
    if not cases:
        raise StepSkipped("the world has no ransomware case")
    case = cases[0]
    result = trace_funds(
        ctx.store(), truth.chain, list(case.seed_addresses), policy=TRACE_POLICY, max_hops=TRACE_MAX_HOPS
    )
    document = result.to_dict()
    ctx.reports_dir.mkdir(parents=True, exist_ok=True)
    path = ctx.reports_dir / TRACE_FILE
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    summary = summarize_trace(document, case)
    ctx.state["case"] = case
    ctx.state["trace"] = document
    ctx.state["summary"] = summary
    ctx.state["trace_file"] = path
    names = ", ".join(f"{x['name']} ({x['jurisdiction'] or '?'})" for x in summary["exchanges"])
    reached = names or "no exchange reached"
    return f"{len(case.seed_addresses)} ransom addresses traced ({TRACE_POLICY}): {reached}"


def _step_report(ctx: DemoContext) -> str:
    summary = ctx.need("summary", "trace")
    case = ctx.state["case"]
    path = ctx.reports_dir / REPORT_FILE
    path.write_text(render_report(ctx, case, summary), encoding="utf-8")
    ctx.state["report_file"] = path
    return f"report written to {path}"


DEMO_STEPS: list[DemoStep] = [
    DemoStep("world", "Generate the demo world", _step_world),
    DemoStep("ingest", "Ingest its transactions (bitcoin-etl)", _step_ingest),
    DemoStep("tags", "Import its TagPacks and ActorPack", _step_tags),
    DemoStep("sanctions", "Import the OFAC sanctions lists", _step_sanctions),
    DemoStep("patterns", "Detect CoinJoins and peel chains", _step_patterns),
    DemoStep("cluster", "Cluster addresses", _step_cluster),
    DemoStep("trace", "Trace the ransom forward", _step_trace),
    *agency.STEPS,
    DemoStep("report", "Write the report", _step_report),
]
"""The demo's steps, in order: the chain investigation, then the demo agency's work on the case
(:mod:`fundtrail.scenarios.agency`), then the report. This list is the demo's one composition."""


def add_step(step: DemoStep, *, after: str | None = None, before: str | None = None) -> None:
    """Add (or replace, by name) a demo step: at the end, or after/before the named step."""
    DEMO_STEPS[:] = [s for s in DEMO_STEPS if s.name != step.name]
    names = [s.name for s in DEMO_STEPS]
    if after is not None:
        DEMO_STEPS.insert(names.index(after) + 1, step)
    elif before is not None:
        DEMO_STEPS.insert(names.index(before), step)
    else:
        DEMO_STEPS.append(step)


# ------------------------------------------------------------------------------------------ running


@dataclass(frozen=True)
class DemoRun:
    """The outcome of a demo: each step's result and what the investigation found."""

    home: Path
    seed: int
    size: str
    steps: tuple[StepResult, ...]
    summary: dict[str, Any] | None
    files: dict[str, Path]
    hints: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no step failed."""
        return all(s.status is not StepStatus.FAILED for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "home": str(self.home),
            "seed": self.seed,
            "size": self.size,
            "ok": self.ok,
            "steps": [s.to_dict() for s in self.steps],
            "summary": self.summary,
            "files": {k: str(v) for k, v in self.files.items()},
            "hints": list(self.hints),
        }


StepCallback = Callable[[DemoStep, StepResult | None], None]
"""Called before a step runs (result None) and after it (with its result)."""


def _check_installed(steps: list[DemoStep]) -> None:
    """MissingExtraError naming the extra to install when a step needs a package that is not there."""
    for step in steps:
        for module, extra in step.needs:
            try:
                importlib.import_module(module)
            except ImportError:
                raise MissingExtraError(module, extra, f"the demo (step {step.name!r})") from None


def run_step(step: DemoStep, ctx: DemoContext) -> StepResult:
    """Run one step; an unmet need skips it, any error fails it (the demo goes on)."""
    started = time.perf_counter()
    try:
        message = step.run(ctx)
        status = StepStatus.DONE
    except StepSkipped as exc:
        status, message = StepStatus.SKIPPED, str(exc)
    except FundTrailError as exc:
        status, message = StepStatus.FAILED, str(exc)
    except Exception as exc:  # noqa: BLE001 - a broken step must not stop the demo
        log.exception("demo step %s failed", step.name)
        status, message = StepStatus.FAILED, f"{type(exc).__name__}: {exc}"
    return StepResult(step.name, step.title, status, message, time.perf_counter() - started)


def run_demo(
    home: Path,
    *,
    seed: int = DEFAULT_SEED,
    size: str = DEFAULT_SIZE,
    shared_data: Path | None = None,
    steps: list[DemoStep] | None = None,
    on_step: StepCallback | None = None,
) -> DemoRun:
    """Run the demo steps on ``home`` (created) and say what each did and what the trace found."""
    chosen = list(steps if steps is not None else DEMO_STEPS)
    _check_installed(chosen)
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    ctx = DemoContext(home=home, seed=seed, size=size, shared_data=shared_data)
    results = []
    outside_user = os.environ.pop(USER_ENV, None)  # the demo acts as its own users, not as the caller
    try:
        for step in chosen:
            if on_step is not None:
                on_step(step, None)
            result = run_step(step, ctx)
            results.append(result)
            if on_step is not None:
                on_step(step, result)
    finally:
        ctx.close()
        if outside_user is not None:
            os.environ[USER_ENV] = outside_user
    files: dict[str, Path] = {k: ctx.state[k] for k in ("trace_file", "report_file") if k in ctx.state}
    if ctx.world_dir.exists():
        files["world"] = ctx.world_dir
    return DemoRun(home, seed, size, tuple(results), ctx.state.get("summary"), files, tuple(ctx.hints))


# ------------------------------------------------------------------------------------------ findings


def summarize_trace(document: dict[str, Any], case: Any) -> dict[str, Any]:
    """Where traced value ended, grouped: per exchange, CoinJoins met, other services, unspent.

    ``document`` is a trace as ``TraceResult.to_dict()`` writes it; ``case`` the typology traced, whose
    ground truth is given next to the findings (found / missed cash-out deposit addresses).
    """
    exchanges: dict[str, dict[str, Any]] = {}
    services: dict[str, dict[str, Any]] = {}
    coinjoins: list[dict[str, Any]] = []
    unspent = 0
    other = 0
    for e in document.get("endpoints", []):
        value = int(e.get("tainted_value") or 0)
        category = e.get("category")
        if e.get("reason") == "coinjoin":
            coinjoins.append({"txid": e.get("txid"), "tainted_value": value, "hops": e.get("hops")})
        elif category == "exchange" and e.get("entity"):
            item = exchanges.setdefault(
                e["entity"],
                {
                    "name": e["entity"],
                    "jurisdiction": e.get("jurisdiction"),
                    "tainted_value": 0,
                    "addresses": [],
                },
            )
            item["tainted_value"] += value
            if e.get("address") and e["address"] not in item["addresses"]:
                item["addresses"].append(e["address"])
        elif e.get("reason") == "service" and e.get("entity"):
            item = services.setdefault(
                e["entity"], {"name": e["entity"], "category": category, "tainted_value": 0}
            )
            item["tainted_value"] += value
        elif e.get("reason") == "unspent":
            unspent += value
        else:
            other += value
    truth_deposits = {c.address: c for c in case.cash_outs}
    found = [a for x in exchanges.values() for a in x["addresses"] if a in truth_deposits]
    expected: dict[str, dict[str, Any]] = {}
    for c in case.cash_outs:
        item = expected.setdefault(
            c.exchange_name,
            {"name": c.exchange_name, "jurisdiction": c.jurisdiction, "value": 0, "addresses": []},
        )
        item["value"] += c.value
        if c.address not in item["addresses"]:
            item["addresses"].append(c.address)
    ordered = sorted(exchanges.values(), key=lambda x: (-x["tainted_value"], x["name"]))
    return {
        "case": {
            "id": case.id,
            "label": case.label,
            "victims": len(case.victims),
            "paid": case.proceeds,
            "seeds": list(case.seed_addresses),
        },
        "policy": document.get("policy"),
        "seeded": sum(v.value for v in case.victims),
        "exchanges": ordered,
        "coinjoins": sorted(coinjoins, key=lambda x: (-x["tainted_value"], x["txid"] or "")),
        "services": sorted(services.values(), key=lambda x: (-x["tainted_value"], x["name"])),
        "unspent": unspent,
        "other": other,
        "ground_truth": {
            "exchanges": sorted(expected.values(), key=lambda x: (-x["value"], x["name"])),
            "deposit_addresses": len(truth_deposits),
            "found": len(set(found)),
        },
    }


def btc(sats: int) -> str:
    """Satoshi as a BTC amount with eight decimals."""
    sign = "-" if sats < 0 else ""
    whole, frac = divmod(abs(int(sats)), 100_000_000)
    return f"{sign}{whole}.{frac:08d}"


def render_report(ctx: DemoContext, case: Any, summary: dict[str, Any]) -> str:
    """The demo's Markdown report: the case, the trace, where the ransom went, what to ask whom."""
    lines = [
        f"# Demo case: {case.label} ransomware",
        "",
        f"World: generated with seed {ctx.seed} (size {ctx.size}); "
        f"chain store `{ctx.home / 'chain.duckdb'}`.",
        f"Victims: {len(case.victims)}, who paid {btc(case.proceeds)} BTC "
        f"to {len(case.seed_addresses)} ransom addresses.",
        "",
        f"Trace: forward from the ransom addresses, policy **{summary['policy']}**, "
        f"at most {TRACE_MAX_HOPS} hops; the full trace is `{ctx.reports_dir / TRACE_FILE}`.",
        "",
        "## Where the ransom went",
        "",
        "| exchange | jurisdiction | tainted BTC | tainted sats | deposit addresses |",
        "|---|---|---:|---:|---|",
    ]
    for x in summary["exchanges"]:
        lines.append(
            f"| {x['name']} | {x['jurisdiction'] or '?'} | {btc(x['tainted_value'])} | "
            f"{x['tainted_value']} | {', '.join(f'`{a}`' for a in x['addresses'])} |"
        )
    if not summary["exchanges"]:
        lines.append("| (no exchange reached) | | | | |")
    lines += ["", "## CoinJoins met", ""]
    if summary["coinjoins"]:
        lines += [
            f"- `{c['txid']}`: {btc(c['tainted_value'])} BTC entered the mix after {c['hops']} hops; "
            "the trace does not follow value through a CoinJoin."
            for c in summary["coinjoins"]
        ]
    else:
        lines.append("- none")
    if summary["services"]:
        lines += ["", "## Other services reached", ""]
        lines += [
            f"- {s['name']} ({s['category']}): {btc(s['tainted_value'])} BTC" for s in summary["services"]
        ]
    lines += [
        "",
        f"Not spent yet (held by the perpetrators or unknown owners): {btc(summary['unspent'])} BTC.",
        "",
        "## Next steps",
        "",
        "- Ask each exchange above, through its jurisdiction's channel, to preserve and freeze the accounts "
        "behind the deposit addresses, and to disclose the account holders.",
        "- Value that entered a CoinJoin needs other evidence (timing, amounts, exchange records) to follow.",
        "",
        "## Check against the generated ground truth",
        "",
    ]
    gt = summary["ground_truth"]
    lines.append(
        f"The generator knows every cash-out: {gt['found']} of {gt['deposit_addresses']} deposit addresses "
        "were found by the trace."
    )
    lines += [
        f"- {x['name']} ({x['jurisdiction'] or '?'}): {btc(x['value'])} BTC to {len(x['addresses'])} deposit "
        "address(es)"
        for x in gt["exchanges"]
    ]
    return "\n".join(lines) + "\n"
