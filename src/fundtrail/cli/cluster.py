"""``fundtrail cluster`` and ``fundtrail patterns``: address clusters, CoinJoins and peel chains."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
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
    progress,
)
from fundtrail.domain.chains import get_chain
from fundtrail.domain.patterns import Pattern, PatternRule
from fundtrail.errors import InputError


class Engine(StrEnum):
    """Where clusters are computed."""

    DUCKDB = "duckdb"
    SPARK = "spark"


ChainOpt = Annotated[str, typer.Option("--chain", "-c", help="Chain name (btc, ltc, eth ...).")]

app = typer.Typer(help="Cluster addresses (co-spend, optionally change) and show a cluster.",
                  invoke_without_command=True)


@app.callback()
@handle_errors
def cluster(ctx: typer.Context, chain: ChainOpt = "btc",
            with_change: Annotated[bool, typer.Option(
                "--with-change", help="Also join change outputs to their inputs.")] = False,
            change_threshold: Annotated[float, typer.Option(
                "--change-threshold", min=0.0, max=1.0,
                help="Least combined change confidence that joins an output.")] = 0.8,
            large_cluster: Annotated[int, typer.Option(
                "--large-cluster", min=1, help="Merges of two clusters this large are reported.")] = 1_000,
            block_super_merges: Annotated[bool, typer.Option(
                "--block-super-merges",
                help="Refuse merges of two large clusters instead of only reporting them.")] = False,
            engine: Annotated[Engine, typer.Option(
                "--engine", help="duckdb (in process) or spark (scale-out; the 'spark' extra).")
            ] = Engine.DUCKDB,
            spark_master: Annotated[str | None, typer.Option(
                "--spark-master", envvar="FUNDTRAIL_SPARK_MASTER", show_default=False,
                help="Spark master URL (default local[2]).")] = None,
            parquet: Annotated[Path | None, typer.Option(
                "--parquet", help="Spark: the partitioned Parquet folder (default HOME/parquet).")] = None,
            home: HomeOpt = DEFAULT_HOME, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """(Re)compute clusters: pattern detection first, then co-spend (and change) clustering."""
    if ctx.invoked_subcommand is not None:
        return
    from fundtrail.analysis.change import detect_change
    from fundtrail.analysis.clustering import cluster_addresses
    from fundtrail.analysis.coinjoin import detect_patterns
    from fundtrail.store import ChainStore

    chain = get_chain(chain).name
    doc: dict[str, Any] = {"chain": chain, "engine": engine.value}
    if engine is Engine.SPARK:
        if block_super_merges:
            raise InputError("--block-super-merges replays merges in chain order: use --engine duckdb")
        doc.update(_cluster_on_spark(home, chain, with_change, change_threshold, spark_master, parquet))
        _render(doc, chain, with_change, fmt)
        return
    with ChainStore.open_home(home) as store:
        with progress(f"patterns {chain}") as advance:
            doc["patterns"] = detect_patterns(store, chain).to_dict()
            advance(1)
        if with_change:
            with progress(f"change {chain}") as advance:
                doc["change"] = detect_change(store, chain).to_dict()
                advance(1)
        done = [0]
        with progress(f"cluster {chain}") as advance:
            def on_progress(now: int, total: int) -> None:
                advance(now - done[0])
                done[0] = now

            report = cluster_addresses(store, chain, with_change=with_change,
                                       change_threshold=change_threshold, large_cluster=large_cluster,
                                       block_super_merges=block_super_merges, on_progress=on_progress)
        doc["clustering"] = report.to_dict()
    _render(doc, chain, with_change, fmt)


def _cluster_on_spark(home: Path, chain: str, with_change: bool, change_threshold: float, master: str | None,
                      parquet: Path | None) -> dict[str, Any]:
    """Patterns (and change) in the chain store, clusters on Spark, stored back into the chain store."""
    from fundtrail.analysis.change import detect_change
    from fundtrail.analysis.clustering import ClusteringReport, store_clusters
    from fundtrail.analysis.coinjoin import detect_patterns
    from fundtrail.cli.spark import export_chain, parquet_folder, spark_engine
    from fundtrail.store import ChainStore
    from fundtrail.store.spark import SparkEngine  # noqa: F401  (no 'spark' extra: fail before any work)

    doc: dict[str, Any] = {}
    with ChainStore.open_home(home) as store:
        doc["patterns"] = detect_patterns(store, chain).to_dict()
        if with_change:
            doc["change"] = detect_change(store, chain).to_dict()
    folder = parquet_folder(home, parquet)
    tables = ("inputs", "tx_patterns", "addresses", *(("change_outputs",) if with_change else ()))
    export_chain(home, chain, folder, tables)
    with spark_engine(folder, master) as spark:
        stats = spark.cluster(chain, folder / "results" / f"clusters-{chain}", with_change=with_change,
                              change_threshold=change_threshold)
    with ChainStore.open_home(home) as store:
        store_clusters(store, chain, stats.path)
    report = ClusteringReport(
        chain=chain, addresses=stats.addresses, clusters=stats.clusters, multi_clusters=stats.multi_clusters,
        largest_cluster_id=stats.largest_cluster_id, largest_cluster_size=stats.largest_cluster_size,
        linking_txs=stats.linking_txs, change_links=stats.change_links,
        coinjoins_excluded=stats.coinjoins_excluded, with_change=with_change, seconds=stats.seconds)
    doc["clustering"] = report.to_dict()
    return doc


def _render(doc: dict[str, Any], chain: str, with_change: bool, fmt: OutputFormat) -> None:
    if fmt is OutputFormat.JSON:
        print_json(doc)
        return
    p = doc["patterns"]
    console.print(f"[bold]{chain}[/]: {p['coinjoins']} coinjoins, {p['premixes']} premixes, "
                  f"{p['peel_chains']} peel chains ({p['peel_steps']} steps)")
    c = doc["clustering"]
    table = Table("clusters", "", title=f"{chain} clusters" + (" (with change)" if with_change else ""))
    for label, value in (("addresses", c["addresses"]), ("clusters", c["clusters"]),
                         ("multi-address clusters", c["multi_address_clusters"]),
                         ("largest cluster",
                          f"{c['largest_cluster']['size']} (id {c['largest_cluster']['cluster_id']})"),
                         ("linking transactions", c["linking_txs"]), ("change links", c["change_links"]),
                         ("coinjoins excluded", c["coinjoins_excluded"]),
                         ("super-merges", len(c["super_merges"])),
                         ("seconds", c["seconds"])):
        table.add_row(label, str(value))
    console.print(table)
    for m in c["super_merges"][:20]:
        verb = "refused" if m["blocked"] else "merged"
        console.print(f"super-merge {verb} by {m['txid']}: {m['left_size']} + {m['right_size']} addresses")


@app.command("show")
@handle_errors
def show(address: Annotated[str, typer.Argument(help="An address of the cluster.")], chain: ChainOpt = "btc",
         limit: Annotated[int, typer.Option("--limit", min=0, help="Members per page.")] = 50,
         offset: Annotated[int, typer.Option("--offset", min=0, help="Members to skip.")] = 0,
         home: HomeOpt = DEFAULT_HOME, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """The cluster of an address: id, size, reasons and members (paginated)."""
    from fundtrail.analysis.clustering import describe_cluster
    from fundtrail.store import ChainStore

    chain = get_chain(chain).name
    with ChainStore.open_home(home, read_only=True) as store:
        doc = describe_cluster(store, chain, address, limit=limit, offset=offset)
    if fmt is OutputFormat.JSON:
        print_json(doc)
        return
    console.print(f"[bold]{doc['address']}[/] ({chain}) is in cluster {doc['cluster_id']} "
                  f"({doc['cluster_address']}) of {doc['size']} addresses, joined by {doc['reason']}")
    console.print("reasons: " + ", ".join(f"{k} {v}" for k, v in doc["reasons"].items()))
    table = Table("address", "id", "reason", title=f"members {offset + 1}-{offset + len(doc['members'])}")
    for m in doc["members"]:
        table.add_row(m["address"], str(m["address_id"]), m["reason"])
    console.print(table)


def patterns(chain: ChainOpt = "btc",
             pattern: Annotated[Pattern | None, typer.Option("--pattern", help="Only this pattern.")] = None,
             rule: Annotated[PatternRule | None, typer.Option("--rule", help="Only this rule.")] = None,
             limit: Annotated[int | None, typer.Option("--limit", min=0,
                                                       help="At most this many rows.")] = None,
             offset: Annotated[int, typer.Option("--offset", min=0, help="Rows to skip.")] = 0,
             home: HomeOpt = DEFAULT_HOME, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """Transactions detected as CoinJoins, Whirlpool premixes or peel-chain steps, with rule and params.

    Detection runs first when the chain changed since it last ran.
    """
    from fundtrail.analysis.coinjoin import detect_patterns, has_table, list_patterns, patterns_current
    from fundtrail.store import ChainStore

    chain = get_chain(chain).name
    with ChainStore.open_home(home) as store:
        if not has_table(store, "tx_patterns") or not patterns_current(store, chain):
            detect_patterns(store, chain)
        rows = list_patterns(store, chain, pattern=pattern.value if pattern else None,
                             rule=rule.value if rule else None, limit=limit, offset=offset)
    if fmt is OutputFormat.JSON:
        print_json({"chain": chain, "pattern": pattern, "rule": rule, "transactions": rows})
        return
    table = Table("height", "txid", "pattern", "rule", "confidence", "params", title=f"{chain} patterns")
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items())
        table.add_row(str(r["height"]), r["txid"], r["pattern"], r["rule"], f"{r['confidence']:.2f}", params)
    console.print(table)


def register(root: typer.Typer) -> None:
    """Add ``cluster`` (with ``show``) and ``patterns`` to the root application."""
    root.add_typer(app, name="cluster")
    root.command("patterns")(handle_errors(patterns))
