"""The Spark engine gives the DuckDB engine's clusters, exposure and taint, to the base unit.

One generated world (bitcoin-etl files with tags, ingested, patterns and change detected), one partitioned
Parquet export and one local Spark session for the module. Each test runs the DuckDB engine and the Spark
job on the same store and compares every row.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

if not os.environ.get("CI"):
    pytest.importorskip("pyspark", reason="the Spark engine needs the 'spark' extra")

from fundtrail.analysis import tracing
from fundtrail.analysis.change import detect_change
from fundtrail.analysis.clustering import cluster_addresses, store_clusters
from fundtrail.analysis.coinjoin import detect_patterns
from fundtrail.analysis.exposure import DIRECTIONS, counterparty_categories, direct_exposure
from fundtrail.analysis.graph import COINJOIN_PATTERNS
from fundtrail.analysis.tracing.params import HUB_DEGREE_LIMIT
from fundtrail.chains.bitcoin.etl import read_bitcoin_etl
from fundtrail.errors import InputError
from fundtrail.intel.tagpacks import import_actorpack, import_tagpack
from fundtrail.scenarios.world import WorldConfig, generate_world
from fundtrail.store import ChainStore
from fundtrail.store.ingest import ingest_batches
from fundtrail.store.spark import SparkEngine, SparkSettings, export_partitioned, spark_session

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CHAIN = "btc"


@pytest.fixture(scope="module")
def world_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainStore]:
    """A 2,000-transaction generated world with its TagPacks, patterns and change detected."""
    folder = tmp_path_factory.mktemp("world")
    generate_world(WorldConfig.for_size(2_000, 11), folder)
    store = ChainStore(folder / "chain.duckdb")
    ingest_batches(store, CHAIN, read_bitcoin_etl(sorted(folder.glob("transactions.json*")), CHAIN))
    packs = folder / "tagpacks"
    for actors in packs.glob("*.actorpack.yaml"):
        import_actorpack(store, actors)
    for pack in sorted(p for p in packs.glob("*.yaml") if ".actorpack." not in p.name):
        import_tagpack(store, pack)
    detect_patterns(store, CHAIN)
    detect_change(store, CHAIN)
    yield store
    store.close()


@pytest.fixture(scope="module")
def engine(world_store: ChainStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkEngine]:
    """One local Spark session over the world's partitioned Parquet export."""
    parquet = tmp_path_factory.mktemp("parquet")
    export_partitioned(world_store, CHAIN, parquet, heights_per_part=50)
    settings = SparkSettings(master="local[2]", shuffle_partitions=2)
    with spark_session(settings) as session:
        yield SparkEngine(session, parquet)


def clusters_rows(store: ChainStore) -> set[tuple[int, int, str]]:
    return {(int(a), int(c), str(r)) for a, c, r in store.con.execute(
        "SELECT address_id, cluster_id, reason FROM clusters WHERE chain = ?", [CHAIN]).fetchall()}


def parquet_rows(path: Path, columns: str) -> list[tuple[object, ...]]:
    return duckdb.sql(f"SELECT {columns} FROM read_parquet('{path}/*.parquet')").fetchall()


@pytest.mark.parametrize("with_change", [False, True], ids=["co-spend", "with-change"])
def test_spark_clusters_are_the_duckdb_clusters(world_store: ChainStore, engine: SparkEngine, tmp_path: Path,
                                                with_change: bool) -> None:
    report = cluster_addresses(world_store, CHAIN, with_change=with_change)
    expected = clusters_rows(world_store)
    assert report.multi_clusters > 10, "the world has clusters to find"
    stats = engine.cluster(CHAIN, tmp_path / "clusters", with_change=with_change)
    got = {(int(a), int(c), str(r)) for a, c, r in
           parquet_rows(stats.path, "address_id, cluster_id, reason")}
    assert got == expected
    assert (stats.addresses, stats.clusters, stats.multi_clusters, stats.largest_cluster_id,
            stats.largest_cluster_size, stats.linking_txs, stats.change_links, stats.coinjoins_excluded) == (
        report.addresses, report.clusters, report.multi_clusters, report.largest_cluster_id,
        report.largest_cluster_size, report.linking_txs, report.change_links, report.coinjoins_excluded)
    # stored back, later commands read the same table
    world_store.con.execute("DELETE FROM clusters WHERE chain = ?", [CHAIN])
    store_clusters(world_store, CHAIN, stats.path)
    assert clusters_rows(world_store) == expected


def test_components_of_a_long_path_and_a_star(engine: SparkEngine) -> None:
    # a path 9-8-...-1 (long diameter) and a star around 20, given in no particular orientation
    pairs = [(i, i + 1) if i % 2 else (i + 1, i) for i in range(1, 9)] + [(20, k) for k in (25, 21, 30)]
    edges = engine.spark.createDataFrame(pairs, "src bigint, dst bigint")
    roots, _ = engine.components(edges)
    assert dict(roots.collect()) == {**{i: 1 for i in range(2, 10)}, 21: 20, 25: 20, 30: 20}


def test_spark_exposure_is_direct_exposure_of_every_address(world_store: ChainStore, engine: SparkEngine,
                                                            tmp_path: Path) -> None:
    cluster_addresses(world_store, CHAIN)
    export_partitioned(world_store, CHAIN, engine.root, ["clusters"])
    labels = counterparty_categories(world_store, CHAIN)
    assert {"exchange", "unattributed"} - set(labels.column("category").to_pylist()) == {"unattributed"}
    path = engine.exposure(CHAIN, engine.labels(labels, CHAIN), tmp_path / "exposure")
    spark_rows: dict[tuple[int, str], dict[str, tuple[int, int]]] = {}
    spark_totals: dict[tuple[int, str], int] = {}
    for aid, direction, asset, category, value, parties, total in parquet_rows(
            path, "address_id, direction, asset, category, value, counterparties, total"):
        assert asset == "native"
        spark_rows.setdefault((int(aid), direction), {})[category] = (int(value), int(parties))
        spark_totals[(int(aid), direction)] = int(total)
    # every address with exposure on either engine: the busiest, the attributed ones and a spread of others
    ids = sorted({a for a, _ in spark_rows})
    busiest = sorted(ids, key=lambda a: -sum(v for (b, _), d in spark_rows.items() if b == a
                                            for v, _ in d.values()))[:15]
    sample = sorted(set(busiest) | set(ids[::max(1, len(ids) // 40)]))
    addresses = dict(world_store.con.execute("SELECT id, address FROM addresses WHERE chain = ? AND id IN "
                                             "(SELECT unnest(?::BIGINT[]))", [CHAIN, sample]).fetchall())
    categories_seen = set()
    for aid in sample:
        direct = direct_exposure(world_store, CHAIN, addresses[aid])
        for direction in DIRECTIONS:
            expected = {c: (e.value, e.counterparties)
                        for c, e in direct.by_category("native", direction).items()}
            assert spark_rows.get((aid, direction), {}) == expected, (aid, direction)
            assert spark_totals.get((aid, direction), 0) == direct.totals.get(("native", direction), 0)
            categories_seen |= set(expected)
    assert {"exchange", "unattributed", "coinbase"} <= categories_seen


def _seeds(store: ChainStore) -> list[str]:
    """Spent outputs of three transactions early in the world, and one address."""
    rows = store.con.execute(
        """SELECT o.txid, o.n, o.address FROM outputs o JOIN inputs i
             ON i.chain = o.chain AND i.prev_txid = o.txid AND i.prev_n = o.n
           JOIN txs t ON t.chain = o.chain AND t.txid = o.txid
           WHERE o.chain = ? AND NOT t.coinbase AND o.value > 0
           ORDER BY o.height, t.tx_index, o.n LIMIT 40""", [CHAIN]).fetchall()
    return [f"{rows[0][0]}:{rows[0][1]}", f"{rows[17][0]}:{rows[17][1]}", f"{rows[39][0]}:{rows[39][1]}",
            rows[25][2]]


@pytest.mark.parametrize("policy", ["haircut", "poison"])
def test_spark_taint_is_the_trace_engines_taint(world_store: ChainStore, engine: SparkEngine, tmp_path: Path,
                                                policy: str) -> None:
    steps = 6
    seeds = _seeds(world_store)
    params = tracing.TraceParams(policy=policy, max_hops=steps, max_steps=steps, stop_at_services=False,
                                 hub_degree=HUB_DEGREE_LIMIT, follow_conversions=False)
    result = tracing.trace_funds(world_store, CHAIN, seeds, params)
    seed_keys = {tuple(s.split(":")) for s in seeds if ":" in s}
    trace = {(f.txid, f.output): f.tainted_value for f in result.flows}
    aid = world_store.address_id(CHAIN, seeds[3])
    spark_seeds = [*seeds[:3], f"#{aid}"]
    stats = engine.taint(CHAIN, spark_seeds, tmp_path / "taint", steps=steps, policy=policy,
                         coinjoin_patterns=COINJOIN_PATTERNS)
    rows = parquet_rows(stats.path, "txid, n, taint, seed")
    spark = {(t, int(n)): int(v) for t, n, v, seed in rows if not seed}
    seeded = {(t, str(n)) for t, n, _, seed in rows if seed}
    assert seed_keys <= seeded
    assert stats.seeded == sum(result.seeded.values())
    trace = {k: v for k, v in trace.items() if (k[0], str(k[1])) not in seeded}  # what reached a seed
    assert len(spark) > 50, "the taint travelled"
    assert spark == trace
    assert stats.tainted_value == sum(trace.values())


def test_bad_seeds_and_limits_are_input_errors(engine: SparkEngine, tmp_path: Path) -> None:
    for seeds, steps, policy in ((["nonsense"], 3, "haircut"), (["a" * 64 + ":0"], 0, "haircut"),
                                 (["a" * 64 + ":0"], 3, "fifo"), ([], 3, "poison")):
        with pytest.raises(InputError):
            engine.taint(CHAIN, seeds, tmp_path / "t", steps=steps, policy=policy)


def test_cluster_command_with_the_spark_engine_stores_the_duckdb_clusters(
        world_store: ChainStore, engine: SparkEngine, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fundtrail.cli.cluster import app

    home = tmp_path / "home"
    home.mkdir()
    world_store.con.execute("CHECKPOINT")
    shutil.copy(world_store.path, home / "chain.duckdb")
    runner = CliRunner()
    docs = {}
    rows = {}
    for name in ("duckdb", "spark"):
        args = ["--chain", CHAIN, "--engine", name, "--home", str(home), "--format", "json"]
        result = runner.invoke(app, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        docs[name] = json.loads(result.stdout)["clustering"]
        with ChainStore.open_home(home, read_only=True) as store:
            rows[name] = clusters_rows(store)
    assert rows["spark"] == rows["duckdb"]
    for doc in docs.values():
        doc.pop("seconds")
    assert docs["spark"] == docs["duckdb"]
    refused = runner.invoke(app, ["--engine", "spark", "--block-super-merges", "--home", str(home)])
    assert refused.exit_code == 2 and "--engine duckdb" in refused.output


def test_spark_commands_refuse_bad_input_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fundtrail.cli.spark import app

    home = tmp_path / "home"
    runner = CliRunner()
    for args, words in ((["taint", "nowhere", "--chain", "btc"], "neither a txid"),
                        (["taint", "a" * 64, "--chain", "eth"], "account chain"),
                        (["exposure", "--chain", "eth"], "account chain"),
                        (["taint", "a" * 64 + ":0", "--steps", "0"], "--steps")):
        result = runner.invoke(app, [*args, "--home", str(home)])
        assert result.exit_code == 2, result.output
        assert words in result.output and "Traceback" not in result.output
