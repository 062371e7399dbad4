"""The Spark engine: clustering, exposure and taint over the chain store's tables as partitioned Parquet.

The only module that imports pyspark (the ``spark`` extra). The chain store writes its tables with
:func:`export_partitioned` as ``DIR/<table>/chain=<chain>/height_range=<k>/*.parquet`` (Hive-style
partitions, ``k = height // heights_per_part``; tables without a height are partitioned by chain only);
:class:`SparkEngine` reads them with Spark, locally (``local[2]``) or on a cluster
(``FUNDTRAIL_SPARK_MASTER``, ``--spark-master``), and writes its results as Parquet that the chain
store loads back. The jobs give the same integers as the DuckDB engine (the equality tests compare them):

* :meth:`SparkEngine.cluster`: the co-spend (and change) clusters of ``analysis/clustering.py``,
  connected components by the large-star/small-star alternation (Kiveris et al., "Connected Components
  in MapReduce and Beyond", 2014; the algorithm of GraphFrames) with DataFrame joins; a cluster is named
  by its smallest address id. Merges of two large clusters are not replayed (that needs chronological
  order): the Spark engine neither reports nor blocks them.
* :meth:`SparkEngine.exposure`: the direct exposure of ``analysis/exposure.py`` for every address of a
  UTXO chain at once, aggregated by counterparty category (categories given per address id).
* :meth:`SparkEngine.taint`: forward multi-step taint (poison or haircut, exact base units, cumulative
  flooring) from seed outputs or addresses over the transaction graph for N steps, stopping at CoinJoins:
  the UTXO trace engine's taint with service and hub stops off and ``max_hops = max_steps = N``.

Amounts stay ``DECIMAL(38,0)`` throughout and Spark runs in ANSI mode, so an overflow is an error, never a
wrong number. No Python UDFs: every job is DataFrame operations executed in the JVM.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fundtrail.errors import InputError, IntegrityError, MissingExtraError
from fundtrail.store.chainstore import ChainStore

try:
    from pyspark.sql import Column, DataFrame, SparkSession, Window
    from pyspark.sql import functions as F
except ImportError as error:  # an optional extra
    raise MissingExtraError("pyspark", "spark", "the Spark engine") from error

log = logging.getLogger(__name__)

MASTER_ENV = "FUNDTRAIL_SPARK_MASTER"
"""The Spark master URL (``spark://host:7077``, ``yarn``, ``k8s://...``); default ``local[2]``."""
DEFAULT_MASTER = "local[2]"
HEIGHTS_PER_PART = 100_000
"""Blocks per ``height_range`` partition of the export."""
HEIGHT_TABLES = ("txs", "outputs", "inputs", "tx_patterns", "change_outputs")
PLAIN_TABLES = ("addresses", "clusters")
MAX_CC_ROUNDS = 200
"""Large-star/small-star rounds before giving up (it needs O(log^2 n))."""
MAX_TAINT_STEPS = 1_000
MAX_TAINT_ROUNDS = 10_000
MAX_SEEDS = 10_000
AMOUNT = "decimal(38,0)"
_TXID = re.compile(r"^[0-9a-fA-F]{64}$")

_EMPTY_SCHEMAS = {
    "tx_patterns": "txid string, height bigint, pattern string",
    "change_outputs": "txid string, height bigint, n int, address_id bigint, heuristic string, "
                      "confidence double",
    "clusters": "address_id bigint, cluster_id bigint, reason string",
    "labels": "address_id bigint, category string",
}


# ------------------------------------------------------------------------------------------------ export


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _has_table(store: ChainStore, table: str) -> bool:
    row = store.con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                            [table]).fetchone()
    return bool(row and row[0])


def export_partitioned(store: ChainStore, chain: str, directory: Path, tables: Sequence[str] | None = None,
                       *, heights_per_part: int = HEIGHTS_PER_PART) -> dict[str, int]:
    """Write ``chain``'s rows of ``tables`` as ``directory/<table>/chain=<chain>/...`` Parquet (zstd).

    Each table's chain partition is written to a hidden folder and renamed into place, so readers see
    the old or the new partition, never half of one. Returns rows per table (absent tables: 0 rows).
    """
    if heights_per_part < 1:
        raise InputError(f"heights per part must be at least 1, got {heights_per_part}")
    directory = Path(directory).resolve()
    counts: dict[str, int] = {}
    for table in tables or (*HEIGHT_TABLES, *PLAIN_TABLES):
        if table not in HEIGHT_TABLES + PLAIN_TABLES:
            raise InputError(f"unknown table {table!r} to export")
        base = directory / table
        base.mkdir(parents=True, exist_ok=True)
        target = base / f"chain={chain}"
        temp = base / f".chain={chain}.{uuid.uuid4().hex}"
        present = _has_table(store, table)
        row = store.con.execute(f"SELECT count(*) FROM {table} WHERE chain = ?", [chain]).fetchone() \
            if present else (0,)
        n = int(row[0]) if row else 0
        source = f"(SELECT * EXCLUDE (chain) FROM {table} WHERE chain = {_literal(chain)})"
        if n and table in HEIGHT_TABLES:
            store.con.execute(
                f"COPY (SELECT *, height // {int(heights_per_part)} AS height_range FROM {source}) "
                f"TO {_literal(str(temp))} (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (height_range))")
        elif present:
            part = temp / "height_range=0" if table in HEIGHT_TABLES else temp
            part.mkdir(parents=True)
            store.con.execute(f"COPY {source} TO {_literal(str(part / 'part-0.parquet'))} "
                              "(FORMAT parquet, COMPRESSION zstd)")
        else:
            counts[table] = 0
            continue
        old = base / f".old-{uuid.uuid4().hex}"
        if target.exists():
            target.rename(old)
        temp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
        counts[table] = n
    return counts


def parquet_bytes(directory: Path, table: str, chain: str) -> int:
    """Bytes of Parquet that an export holds for one table and chain."""
    root = Path(directory) / table / f"chain={chain}"
    return sum(p.stat().st_size for p in root.rglob("*.parquet")) if root.exists() else 0


# ------------------------------------------------------------------------------------------------ session


@dataclass(frozen=True, slots=True)
class SparkSettings:
    """How to start Spark: master URL, driver memory, shuffle partitions, scratch folder."""

    master: str = DEFAULT_MASTER
    driver_memory: str = "1g"
    shuffle_partitions: int = 4
    local_dir: str | None = None

    @classmethod
    def from_env(cls, master: str | None = None, **overrides: Any) -> SparkSettings:
        """Settings with the master from the argument, else ``FUNDTRAIL_SPARK_MASTER``, else local[2]."""
        url = (master or os.environ.get(MASTER_ENV) or DEFAULT_MASTER).strip()
        if not url or any(c.isspace() for c in url):
            raise InputError(f"Spark master must be a URL such as local[2] or spark://host:7077, got {url!r}")
        return cls(master=url, **overrides)


@contextmanager
def spark_session(settings: SparkSettings | None = None) -> Iterator[SparkSession]:
    """A Spark session with the UI off, stopped on exit.

    In local mode the driver listens on 127.0.0.1 only; on a cluster, where executors must reach it, its
    address comes from Spark's own configuration (``spark-defaults.conf``, ``SPARK_LOCAL_IP``). When the
    process already runs a session (a notebook, a test module), that one is used and left running.
    """
    active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    s = settings or SparkSettings.from_env()
    builder = (SparkSession.builder.master(s.master).appName("fundtrail")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.driver.memory", s.driver_memory)
               .config("spark.sql.shuffle.partitions", str(s.shuffle_partitions))
               .config("spark.sql.ansi.enabled", "true")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
               .config("spark.sql.adaptive.enabled", "true"))
    if s.master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # read by the JVM pyspark starts
        builder = (builder.config("spark.driver.host", "127.0.0.1")
                   .config("spark.driver.bindAddress", "127.0.0.1"))
    if s.local_dir:
        builder = builder.config("spark.local.dir", s.local_dir)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


# ------------------------------------------------------------------------------------------------ results


@dataclass(frozen=True, slots=True)
class ClusterStats:
    """What the Spark clustering job found (the figures of a clustering report)."""

    addresses: int
    clusters: int
    multi_clusters: int
    largest_cluster_id: int | None
    largest_cluster_size: int
    linking_txs: int
    change_links: int
    coinjoins_excluded: int
    rounds: int
    seconds: float
    path: Path
    """Parquet of (address_id, cluster_id, reason), one row per address of the chain."""


@dataclass(frozen=True, slots=True)
class TaintStats:
    """What the Spark taint job found."""

    policy: str
    steps: int
    seed_outputs: int
    seeded: int
    tainted_outputs: int
    tainted_value: int
    """Taint in the outputs that are not seeds (poison counts every tainted output in full)."""
    rounds: int
    seconds: float
    path: Path
    """Parquet of (txid, n, address_id, value, taint, step, seed) for every output holding taint."""


# ------------------------------------------------------------------------------------------------ engine


def _checkpoint(df: DataFrame, *, eager: bool = True) -> DataFrame:
    """Cut the lineage of an iteration's result (kept by the executors); lazily, the next action fills it."""
    return df.localCheckpoint(eager=eager)


def _floor_div(numerator: str, denominator: str) -> Column:
    """Exact integer division of non-negative amounts (SQL expressions), as ``DECIMAL(38,0)``."""
    return F.expr(f"CAST((({numerator}) div ({denominator})) AS {AMOUNT})")


class SparkEngine:
    """The jobs, on one Spark session, over one partitioned Parquet export (a folder every executor reads)."""

    def __init__(self, session: SparkSession, parquet_dir: Path) -> None:
        self.spark = session
        self.root = Path(parquet_dir).resolve()

    # ---- reading

    def table(self, table: str, chain: str) -> DataFrame:
        """A table's rows of one chain (the partition columns dropped)."""
        path = self.root / table / f"chain={chain}"
        if not path.exists():
            if table in _EMPTY_SCHEMAS:
                return self.spark.createDataFrame([], _EMPTY_SCHEMAS[table])
            raise InputError(f"{path}: no {table} of {chain} in the Parquet export "
                             f"(run `fundtrail spark export --chain {chain}`)")
        df = self.spark.read.option("basePath", str(self.root / table)).parquet(str(path))
        return df.drop("chain", "height_range")

    def labels(self, table: Any, chain: str) -> DataFrame:
        """(address_id, category) rows of ``chain`` from a pyarrow table, through ``_labels/<chain>.parquet``
        in the export folder (replaced on each call)."""
        import pyarrow.parquet as pq

        target = self.root / "_labels" / f"{chain}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{chain}.{uuid.uuid4().hex}.parquet")
        pq.write_table(table, temp)
        temp.replace(target)
        return self.spark.read.parquet(str(target))

    # ---- clustering

    def cluster(self, chain: str, out: Path, *, with_change: bool = False,
                change_threshold: float = 0.8) -> ClusterStats:
        """Co-spend (and change) clusters of ``chain``, written to ``out`` as Parquet."""
        started = time.perf_counter()
        members = (self.table("inputs", chain).where(F.col("address_id").isNotNull())
                   .select("txid", "height", "address_id", F.lit(0).alias("kind")))
        if with_change:
            change = (self.table("change_outputs", chain)
                      .where((F.col("heuristic") == "combined") & (F.col("confidence") >= change_threshold)
                             & F.col("address_id").isNotNull())
                      .select("txid", "height", "address_id", F.lit(1).alias("kind")))
            members = members.unionByName(change)
        members = members.groupBy("txid", "height", "address_id").agg(F.min("kind").alias("kind"))
        patterns = self.table("tx_patterns", chain)
        mixes = patterns.where(F.col("pattern") == "coinjoin").select("txid", "height").distinct()
        groups = (members.groupBy("txid", "height")
                  .agg(F.count(F.lit(1)).alias("size"),
                       F.sum(F.when(F.col("kind") == 0, 1).otherwise(0)).alias("spenders"),
                       F.min("address_id").alias("anchor"))
                  .where((F.col("size") >= 2) & (F.col("spenders") >= 1))
                  .join(mixes, ["txid", "height"], "left_anti"))
        linked = _checkpoint(members.join(groups, ["txid", "height"])
                             .select("address_id", "kind", "spenders", "anchor"))
        edges = (linked.where(F.col("address_id") != F.col("anchor"))
                 .select(F.col("address_id").alias("src"), F.col("anchor").alias("dst")))
        roots, rounds = self.components(edges)
        cospend = (linked.where((F.col("kind") == 0) & (F.col("spenders") >= 2))
                   .select("address_id").distinct().withColumn("cospend", F.lit(True)))
        nodes = self.table("addresses", chain).select(F.col("id").alias("address_id"))
        labeled = (nodes.join(roots, "address_id", "left")
                   .select("address_id", F.coalesce("root", "address_id").alias("cluster_id")))
        sizes = _checkpoint(labeled.groupBy("cluster_id").agg(F.count(F.lit(1)).alias("size")))
        result = (labeled.join(sizes, "cluster_id").join(cospend, "address_id", "left")
                  .select("address_id", "cluster_id",
                          F.when(F.col("size") == 1, "singleton")
                          .when(F.col("cospend"), "co-spend").otherwise("change").alias("reason")))
        result.write.mode("overwrite").parquet(str(out))
        summary = sizes.agg(F.count(F.lit(1)).alias("clusters"), F.sum("size").alias("addresses"),
                            F.sum(F.when(F.col("size") >= 2, 1).otherwise(0)).alias("multi")).first()
        top = sizes.orderBy(F.col("size").desc(), F.col("cluster_id")).first()
        coinjoins = patterns.where(F.col("pattern") == "coinjoin").select("txid").distinct().count()
        assert summary is not None
        log.info("spark clustered %s in %d rounds: %s clusters", chain, rounds, summary["clusters"])
        return ClusterStats(
            addresses=int(summary["addresses"] or 0), clusters=int(summary["clusters"]),
            multi_clusters=int(summary["multi"] or 0),
            largest_cluster_id=int(top["cluster_id"]) if top is not None else None,
            largest_cluster_size=int(top["size"]) if top is not None else 0,
            linking_txs=groups.count(), change_links=linked.where(F.col("kind") == 1).count(),
            coinjoins_excluded=coinjoins, rounds=rounds, seconds=time.perf_counter() - started,
            path=Path(out))

    def components(self, edges: DataFrame) -> tuple[DataFrame, int]:
        """Connected components of an undirected graph given as (src, dst) pairs of node ids.

        Returns (address_id, root) for every node of an edge other than its component's smallest node
        (the root), and the rounds taken. Large-star then small-star until every component is a star
        around its smallest node.
        """
        e = _checkpoint(edges.where(F.col("src") != F.col("dst"))
                        .select(F.greatest("src", "dst").alias("src"), F.least("src", "dst").alias("dst"))
                        .distinct())
        rounds = 0
        while not _is_star_forest(e):
            if rounds >= MAX_CC_ROUNDS:
                raise IntegrityError(f"connected components did not converge in {MAX_CC_ROUNDS} rounds")
            e = _checkpoint(_small_star(_large_star(e)))
            rounds += 1
        return e.select(F.col("src").alias("address_id"), F.col("dst").alias("root")), rounds

    # ---- exposure

    def exposure(self, chain: str, labels: DataFrame, out: Path) -> Path:
        """Direct exposure of every address of a UTXO chain by counterparty category, as Parquet.

        Rows (address_id, direction, asset, category, value, counterparties, total): what
        ``direct_exposure(...).by_category(asset, direction)`` and its ``totals`` give address by address.
        ``labels`` holds (address_id, category) for the attributed or sanctioned counterparties; others
        count as ``unattributed``, coinbase value as ``coinbase``.
        """
        outputs = self.table("outputs", chain)
        inputs = self.table("inputs", chain)
        clusters = self.table("clusters", chain).select("address_id", "cluster_id")

        def keyed(df: DataFrame, column: str, key: str) -> DataFrame:
            # an address's "self": its cluster, or itself when unclustered (negative keys never collide)
            c = clusters.select(F.col("address_id").alias(column), F.col("cluster_id").alias(key))
            return df.join(c, column, "left").withColumn(
                key, F.when(F.col(column).isNull(), F.lit(None))
                .otherwise(F.coalesce(F.col(key), -F.col(column) - 1)))

        rx = keyed(outputs.where(F.col("address_id").isNotNull())
                   .groupBy("txid", "height", F.col("address_id").alias("x"))
                   .agg(F.sum("value").alias("v")), "x", "xkey")
        in_keys = keyed(inputs.where(F.col("address_id").isNotNull())
                        .select("txid", "height", "address_id").distinct(), "address_id", "xkey") \
            .select("txid", "height", "xkey").distinct()
        rx_ext = rx.join(in_keys, ["txid", "height", "xkey"], "left_anti")
        senders = (inputs.groupBy("txid", "height", "address_id")
                   .agg(F.max("address").alias("caddr"), F.sum("value").alias("sv")))
        stot = senders.groupBy("txid", "height").agg(F.sum("sv").alias("total"))
        received = (rx_ext.join(senders, ["txid", "height"]).join(stot, ["txid", "height"])
                    .select("x", F.lit("received").alias("direction"), F.col("address_id").alias("cid"),
                            "caddr", "txid",
                            F.when(F.col("total") > 0, _floor_div("v * sv", "total"))
                            .otherwise(F.lit(0).cast(AMOUNT)).alias("value")))
        coinbase = (rx_ext.join(senders.select("txid", "height").distinct(), ["txid", "height"], "left_anti")
                    .select("x", F.lit("received").alias("direction"), F.lit(-1).cast("bigint").alias("cid"),
                            F.lit(None).cast("string").alias("caddr"), "txid", F.col("v").alias("value")))
        sx = keyed(inputs.where(F.col("address_id").isNotNull())
                   .groupBy("txid", "height", F.col("address_id").alias("x"))
                   .agg(F.sum("value").alias("sv")), "x", "xkey")
        tin = inputs.groupBy("txid", "height").agg(F.sum("value").alias("total"))
        outs = keyed(outputs.where(F.col("value") > 0).groupBy("txid", "height", "address_id")
                     .agg(F.max("address").alias("caddr"), F.sum("value").alias("ov")), "address_id", "okey")
        sent = (sx.join(outs, ["txid", "height"])
                .where(F.col("okey").isNull() | (F.col("okey") != F.col("xkey")))
                .join(tin, ["txid", "height"])
                .select("x", F.lit("sent").alias("direction"), F.col("address_id").alias("cid"), "caddr",
                        "txid",
                        F.when(F.col("total") > 0, _floor_div("ov * sv", "total"))
                        .otherwise(F.lit(0).cast(AMOUNT)).alias("value")))
        flows = (received.unionByName(coinbase).unionByName(sent)
                 .groupBy("x", "direction", "cid", "caddr").agg(F.sum("value").alias("value")))
        flows = _checkpoint(flows)
        cats = labels.select(F.col("address_id").alias("cid"), F.col("category").alias("label"))
        by_category = (flows.join(cats, "cid", "left")
                       .withColumn("category", F.when(F.col("cid") == -1, "coinbase")
                                   .otherwise(F.coalesce("label", F.lit("unattributed"))))
                       .groupBy("x", "direction", "category")
                       .agg(F.sum("value").alias("value"), F.count(F.lit(1)).alias("counterparties")))
        totals = flows.groupBy("x", "direction").agg(F.sum("value").alias("total"))
        result = (by_category.join(totals, ["x", "direction"])
                  .select(F.col("x").alias("address_id"), "direction", F.lit("native").alias("asset"),
                          "category", "value", "counterparties", "total"))
        result.write.mode("overwrite").parquet(str(out))
        return Path(out)

    # ---- taint

    def taint(self, chain: str, seeds: Sequence[str], out: Path, *, steps: int, policy: str,
              coinjoin_patterns: Sequence[str] = ()) -> TaintStats:
        """Forward taint from seeds (``txid:n``, ``txid`` or an address id as ``#id``) for ``steps`` steps.

        An output passes its taint on when it holds some, was reached in fewer than ``steps`` steps and its
        spender is not a CoinJoin (``tx_patterns`` rows whose pattern is in ``coinjoin_patterns``). A
        transaction's tainted inputs are spread over its outputs (haircut: cumulative flooring over the
        outputs in order, of ``max(inputs, outputs)``; poison: every output in full); its step is one more
        than the least step of those inputs. Seeds keep their full value. Iterated to a fixed point.
        """
        started = time.perf_counter()
        if policy not in ("poison", "haircut"):
            raise InputError(f"the Spark taint job knows poison and haircut, not {policy!r}")
        if not 1 <= steps <= MAX_TAINT_STEPS:
            raise InputError(f"steps must be between 1 and {MAX_TAINT_STEPS}, got {steps}")
        if not seeds or len(seeds) > MAX_SEEDS:
            raise InputError(f"a taint job needs 1 to {MAX_SEEDS} seeds, got {len(seeds)}")
        outputs = self.table("outputs", chain).select("txid", "n", "value", "address_id")
        inputs = self.table("inputs", chain)
        seed_df = _checkpoint(self._seed_outputs(outputs, seeds))
        marked = F.lower("pattern").isin(list(coinjoin_patterns)) if coinjoin_patterns else F.lit(False)
        mixes = (self.table("tx_patterns", chain).where(marked)
                 .select(F.col("txid").alias("spender")).distinct())
        spends = (inputs.select(F.col("txid").alias("spender"), F.col("prev_txid").alias("txid"),
                                F.col("prev_n").alias("n"))
                  .join(mixes, "spender", "left_anti"))
        in_values = inputs.select(F.col("txid").alias("spender"),
                                  F.coalesce(F.col("value"), F.lit(0).cast(AMOUNT)).alias("value"))
        seeds_state = seed_df.select("txid", "n", F.col("value").alias("taint"), F.lit(0).alias("step"),
                                     F.lit(True).alias("seed"))
        state = seeds_state
        rounds = 0
        while True:
            if rounds >= MAX_TAINT_ROUNDS:
                raise IntegrityError(f"taint did not reach a fixed point in {MAX_TAINT_ROUNDS} rounds")
            step = self._taint_round(state, seeds_state, spends, in_values, outputs, steps, policy)
            nxt = _checkpoint(step, eager=False)
            rounds += 1
            if _same_state(state, nxt):  # one action: computes (and keeps) the new state too
                state = nxt
                break
            state = nxt
        result = (state.join(outputs, ["txid", "n"])
                  .select("txid", "n", "address_id", "value", "taint", "step", "seed"))
        result.write.mode("overwrite").parquet(str(out))
        totals = result.agg(
            F.sum(F.when(F.col("seed"), 1).otherwise(0)).alias("seeds"),
            F.sum(F.when(F.col("seed"), F.col("taint"))).alias("seeded"),
            F.sum(F.when(~F.col("seed"), 1).otherwise(0)).alias("tainted"),
            F.sum(F.when(~F.col("seed"), F.col("taint"))).alias("value")).first()
        assert totals is not None
        log.info("spark %s taint of %s over %d steps: %d rounds", policy, chain, steps, rounds)
        return TaintStats(policy=policy, steps=steps, seed_outputs=int(totals["seeds"] or 0),
                          seeded=int(totals["seeded"] or 0), tainted_outputs=int(totals["tainted"] or 0),
                          tainted_value=int(totals["value"] or 0), rounds=rounds,
                          seconds=time.perf_counter() - started, path=Path(out))

    def _seed_outputs(self, outputs: DataFrame, seeds: Sequence[str]) -> DataFrame:
        """The outputs the seeds name: ``txid:n``, every output of ``txid``, or every output to ``#id``."""
        exact: list[tuple[str, int]] = []
        whole: list[str] = []
        ids: list[int] = []
        for seed in seeds:
            text = seed.strip()
            txid, _, n = text.partition(":")
            if text.startswith("#") and text[1:].isdigit():
                ids.append(int(text[1:]))
            elif _TXID.match(txid) and n.isdigit():
                exact.append((txid.lower(), int(n)))
            elif _TXID.match(text):
                whole.append(text.lower())
            else:
                raise InputError(f"seed {seed!r} is neither txid:n, a txid nor an address id (#id)")
        cond = F.lit(False)
        if whole:
            cond = cond | F.col("txid").isin(whole)
        if ids:
            cond = cond | F.col("address_id").isin(ids)
        picked = outputs.where(cond)
        if exact:
            wanted = self.spark.createDataFrame(exact, "txid string, n int")
            picked = picked.unionByName(outputs.join(wanted, ["txid", "n"]))
        return picked.dropDuplicates(["txid", "n"])

    @staticmethod
    def _taint_round(state: DataFrame, seeds_state: DataFrame, spends: DataFrame, in_values: DataFrame,
                     outputs: DataFrame, steps: int, policy: str) -> DataFrame:
        live = state.where((F.col("taint") > 0) & (F.col("step") < steps))
        txs = (live.join(spends, ["txid", "n"]).groupBy("spender")
               .agg(F.sum("taint").alias("tainted_in"), (F.min("step") + 1).alias("next_step"))
               .where(F.col("tainted_in") > 0))
        in_total = (in_values.join(txs.select("spender"), "spender", "left_semi")
                    .groupBy("spender").agg(F.sum("value").alias("in_total")))
        txs = txs.join(in_total, "spender")
        outs = txs.join(outputs.withColumnRenamed("txid", "spender"), "spender")
        if policy == "haircut":
            w = Window.partitionBy("spender").orderBy("n").rowsBetween(Window.unboundedPreceding,
                                                                        Window.currentRow)
            whole = Window.partitionBy("spender")
            outs = (outs.withColumn("cum", F.sum("value").over(w))
                    .withColumn("denominator", F.greatest(F.col("in_total"), F.sum("value").over(whole)))
                    .withColumn("t", F.least(F.col("tainted_in"), F.col("denominator"))))
            share = F.when(F.col("denominator") == 0, F.lit(0).cast(AMOUNT)).otherwise(
                _floor_div("t * cum", "denominator") - _floor_div("t * (cum - value)", "denominator"))
        else:
            share = F.col("value")
        reached = (outs.select(F.col("spender").alias("txid"), "n", share.cast(AMOUNT).alias("taint"),
                               F.col("next_step").alias("step"), F.lit(False).alias("seed"))
                   .where(F.col("taint") > 0)
                   .join(seeds_state.select("txid", "n"), ["txid", "n"], "left_anti"))
        return seeds_state.unionByName(reached)


def _same_state(a: DataFrame, b: DataFrame) -> bool:
    """Whether two taint states hold the same rows (keys, taint and step), exactly."""
    x = a.select("txid", "n", F.col("taint").alias("ta"), F.col("step").alias("sa"))
    y = b.select("txid", "n", F.col("taint").alias("tb"), F.col("step").alias("sb"))
    differ = x.join(y, ["txid", "n"], "full_outer").where(
        ~F.col("ta").eqNullSafe(F.col("tb")) | ~F.col("sa").eqNullSafe(F.col("sb")))
    return differ.count() == 0


def _large_star(e: DataFrame) -> DataFrame:
    """Each node links its larger neighbours to the smallest node of its closed neighbourhood."""
    both = e.unionByName(e.select(F.col("dst").alias("src"), F.col("src").alias("dst")))
    smallest = both.groupBy("src").agg(F.min("dst").alias("m"))
    return (both.where(F.col("dst") > F.col("src")).join(smallest, "src")
            .select(F.col("dst").alias("src"), F.least("m", "src").alias("dst")).distinct())


def _small_star(e: DataFrame) -> DataFrame:
    """Each node links itself and its smaller neighbours to the smallest of them (edges oriented down)."""
    smallest = e.groupBy("src").agg(F.min("dst").alias("m"))
    moved = (e.join(smallest, "src").where(F.col("dst") != F.col("m"))
             .select(F.col("dst").alias("src"), F.col("m").alias("dst")))
    return moved.unionByName(smallest.select("src", F.col("m").alias("dst"))).distinct()


def _is_star_forest(e: DataFrame) -> bool:
    """Every node points to one node that points nowhere: each component is a star around its minimum."""
    forked = e.groupBy("src").count().where(F.col("count") > 1).select("src")
    chained = e.select(F.col("dst").alias("src")).join(e.select("src"), "src", "left_semi")
    return bool(forked.unionByName(chained).isEmpty())
