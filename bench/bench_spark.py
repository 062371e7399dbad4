"""Benchmark: the Spark engine against the DuckDB engine on one synthetic chain (clustering, exposure, taint).

Builds the synthetic UTXO chain of ``bench_clustering.synthesize`` (vectorised; txids and addresses made
random-looking with SHA-256 in DuckDB, so that Parquet sizes are those of real identifiers), loads it into a
DuckDB chain store, detects patterns, exports the partitioned Parquet that Spark reads, then times each job
on both engines and checks that they agree:

* clustering: ``cluster_addresses`` (DuckDB + numpy/scipy) against ``SparkEngine.cluster``; same partition;
* exposure: the address profile's ``direct_exposure`` (one address per call) on a sample, extrapolated to
  every address, against ``SparkEngine.exposure`` (every address in one job); same rows on the sample;
* taint: the trace engine (``trace_funds``, service and hub stops off, max_hops = max_steps = N) against
  ``SparkEngine.taint``, poison and haircut, from the same seed outputs; same tainted value per output.

Spark runs in local mode on this machine (``local[2]``); on a cluster only the master URL changes.

    .venv/bin/python bench/bench_spark.py                       # 50,000 transactions
    flock /tmp/fundtrail-heavy.lock .venv/bin/python bench/bench_spark.py --txs 10000000 --driver-memory 6g
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_clustering import synthesize  # noqa: E402  (the synthetic chain of the clustering bench)

from fundtrail.analysis import tracing  # noqa: E402
from fundtrail.analysis.clustering import cluster_addresses  # noqa: E402
from fundtrail.analysis.coinjoin import detect_patterns  # noqa: E402
from fundtrail.analysis.exposure import DIRECTIONS, direct_exposure  # noqa: E402
from fundtrail.analysis.graph import COINJOIN_PATTERNS  # noqa: E402
from fundtrail.analysis.tracing.params import HUB_DEGREE_LIMIT  # noqa: E402
from fundtrail.store import ChainStore  # noqa: E402
from fundtrail.store.spark import (  # noqa: E402
    SparkEngine,
    SparkSettings,
    export_partitioned,
    parquet_bytes,
    spark_session,
)

CHAIN = "btc"


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load(store: ChainStore, tables: dict[str, pa.Table]) -> None:
    """Insert the synthetic columns; txids become SHA-256 hex and addresses 42-character bech32-like text."""
    con = store.con
    for name, table in tables.items():
        con.register(f"_syn_{name}", table)
    con.execute("INSERT INTO addresses SELECT $c, id, 'bc1q' || sha256(address)[:38] FROM _syn_addresses",
                {"c": CHAIN})
    con.execute("INSERT INTO blocks SELECT $c, height, sha256(hash), NULL, 1500000000 + 600 * height, "
                "tx_count FROM _syn_blocks", {"c": CHAIN})
    con.execute("INSERT INTO txs SELECT $c, sha256(txid), height, time, tx_index, NULL, coinbase, NULL, "
                "NULL, NULL, NULL, true, NULL FROM _syn_txs", {"c": CHAIN})
    con.execute("INSERT INTO outputs SELECT $c, sha256(txid), n, height, 'bc1q' || sha256(address)[:38], "
                "address_id, value, script_type FROM _syn_outputs", {"c": CHAIN})
    con.execute("INSERT INTO inputs SELECT $c, sha256(txid), n, height, sha256(prev_txid), prev_n, NULL, "
                "'bc1q' || sha256(address)[:38], address_id, value FROM _syn_inputs", {"c": CHAIN})
    for name in tables:
        con.unregister(f"_syn_{name}")


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    elapsed = time.perf_counter() - started
    print(f"  {getattr(fn, '__name__', 'step')}: {elapsed:.1f}s", file=sys.stderr, flush=True)  # noqa: T201
    return out, elapsed


def _save(path: Path | None, figures: dict[str, Any]) -> None:
    """Write the figures so far (a long run keeps what it measured if it is stopped)."""
    if path is not None:
        path.write_text(json.dumps(figures, indent=2, default=str))


def main(argv: list[str] | None = None) -> int:
    """Build, time, compare and print."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--txs", type=int, default=50_000,
                    help="transactions (at least 30,000: the first 10 blocks are coinbases)")
    ap.add_argument("--steps", type=int, default=6, help="taint steps")
    ap.add_argument("--seeds", type=int, default=3, help="seed outputs of the taint jobs")
    ap.add_argument("--sample", type=int, default=100, help="addresses for the DuckDB exposure baseline")
    ap.add_argument("--jobs", default="cluster,exposure,taint",
                    help="comma-separated jobs to run: cluster, exposure, taint")
    ap.add_argument("--policies", default="haircut,poison", help="taint policies")
    ap.add_argument("--driver-memory", default="2g")
    ap.add_argument("--shuffle-partitions", type=int, default=8)
    ap.add_argument("--workdir", type=Path, default=None, help="folder for the store and Parquet (kept)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    args = ap.parse_args(argv)
    if not 30_000 <= args.txs <= 50_000_000:
        ap.error(f"--txs must be between 30,000 and 50,000,000, got {args.txs}")
    jobs = set(args.jobs.split(","))
    policies = [p for p in args.policies.split(",") if p] if "taint" in jobs else []
    if jobs - {"cluster", "exposure", "taint"}:
        ap.error(f"unknown jobs: {', '.join(sorted(jobs - {'cluster', 'exposure', 'taint'}))}")
    console = Console(width=160)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-spark-"))
    work.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {"txs": args.txs, "machine": "2 cores, shared; Spark local[2]"}
    rows: list[tuple[str, float | None, float | None, str]] = []
    try:
        tables, t_syn = timed(synthesize, args.txs)
        n_out, n_in = tables["outputs"].num_rows, tables["inputs"].num_rows
        n_addr = tables["addresses"].num_rows
        store = ChainStore(work / "chain.duckdb")
        _, t_load = timed(load, store, tables)
        del tables
        _, t_patterns = timed(detect_patterns, store, CHAIN)
        parquet = work / "parquet"
        counts, t_export = timed(export_partitioned, store, CHAIN, parquet,
                                 ("txs", "outputs", "inputs", "tx_patterns", "addresses"))
        sizes = {t: parquet_bytes(parquet, t, CHAIN) for t in counts}
        store.con.execute("CHECKPOINT")
        figures["build"] = {"synthesize_s": t_syn, "load_s": t_load, "patterns_s": t_patterns,
                            "export_s": t_export, "outputs": n_out, "inputs": n_in, "addresses": n_addr,
                            "parquet_bytes": sizes,
                            "duckdb_file_bytes": (work / "chain.duckdb").stat().st_size}
        _save(args.json, figures)
        report, t_dcl = timed(cluster_addresses, store, CHAIN)
        export_partitioned(store, CHAIN, parquet, ["clusters"])
        sizes["clusters"] = parquet_bytes(parquet, "clusters", CHAIN)
        rng = random.Random(7)
        seeds = [f"{t}:{n}" for t, n in rng.sample(store.con.execute(
            """SELECT o.txid, o.n FROM outputs o SEMI JOIN inputs i
                 ON i.chain = o.chain AND i.prev_txid = o.txid AND i.prev_n = o.n
               WHERE o.chain = ? AND o.height BETWEEN ? AND ? AND o.value > 0""",
            [CHAIN, 10 + args.txs // 200_000, 10 + args.txs // 100_000]).fetchall(),
            args.seeds)]
        sample_ids = [r[0] for r in store.con.execute(
            f"SELECT id FROM addresses WHERE chain = ? USING SAMPLE reservoir({int(args.sample)} ROWS) "
            "REPEATABLE (7)", [CHAIN]).fetchall()]
        addresses = dict(store.con.execute("SELECT id, address FROM addresses WHERE chain = ? AND id IN "
                                           "(SELECT unnest(?::BIGINT[]))", [CHAIN, sample_ids]).fetchall())
        direct, t_dexp = timed(lambda: {a: direct_exposure(store, CHAIN, addresses[a]) for a in sample_ids}
                               if "exposure" in jobs else {})
        per_address = t_dexp / max(len(sample_ids), 1)
        traces: dict[str, tuple[dict[tuple[str, int], int], float]] = {}
        for policy in policies:
            params = tracing.TraceParams(policy=policy, max_hops=args.steps, max_steps=args.steps,
                                         stop_at_services=False, hub_degree=HUB_DEGREE_LIMIT,
                                         follow_conversions=False)
            result, t = timed(tracing.trace_funds, store, CHAIN, seeds, params)
            traces[policy] = ({(f.txid, int(f.output)): int(f.tainted_value) for f in result.flows
                               if f"{f.txid}:{f.output}" not in seeds}, t)
        store.close()

        settings = SparkSettings(master="local[2]", driver_memory=args.driver_memory,
                                 shuffle_partitions=args.shuffle_partitions,
                                 local_dir=str(work / "spark-tmp"))
        with spark_session(settings) as session:
            engine = SparkEngine(session, parquet)
            con = duckdb.connect(str(work / "chain.duckdb"), read_only=True)
            if "cluster" in jobs:
                stats, t_scl = timed(engine.cluster, CHAIN, work / "out" / "clusters")
                differ = con.execute(
                    f"""SELECT count(*) FROM clusters c FULL JOIN read_parquet('{stats.path}/*.parquet') s
                          ON s.address_id = c.address_id AND c.chain = '{CHAIN}'
                        WHERE c.cluster_id IS DISTINCT FROM s.cluster_id
                           OR c.reason IS DISTINCT FROM s.reason""").fetchall()[0][0]
                same = differ == 0 and stats.clusters == report.clusters
                rows.append(("clustering", t_dcl, t_scl, f"same, {stats.rounds} rounds" if same
                             else f"{differ} rows differ"))
                figures["clustering"] = {"duckdb_s": t_dcl, "spark_s": t_scl, "rounds": stats.rounds,
                                         "clusters": stats.clusters, "largest": stats.largest_cluster_size,
                                         "differing_rows": differ}
                _save(args.json, figures)
            if "exposure" in jobs:
                labels = engine.spark.createDataFrame([], "address_id bigint, category string")
                path, t_sexp = timed(engine.exposure, CHAIN, labels, work / "out" / "exposure")
                got = con.execute(f"SELECT address_id, direction, category, value, counterparties FROM "
                                  f"read_parquet('{path}/*.parquet') WHERE list_contains(?, address_id)",
                                  [sample_ids]).fetchall()
                spark_exp = {(int(a), d, c): (int(v), int(k)) for a, d, c, v, k in got}
                want = {(a, d, c): (e.value, e.counterparties) for a, x in direct.items() for d in DIRECTIONS
                        for c, e in x.by_category("native", d).items()}
                extrapolated = per_address * n_addr
                rows.append(("exposure (every address)", extrapolated, t_sexp,
                             ("same" if spark_exp == want else "DIFFERENT")
                             + f" on {len(sample_ids)} addresses; "
                             f"DuckDB extrapolated from {per_address * 1000:.1f} ms/address"))
                figures["exposure"] = {"duckdb_ms_per_address": per_address * 1000,
                                       "duckdb_extrapolated_s": extrapolated, "spark_s": t_sexp,
                                       "sample_equal": spark_exp == want}
                _save(args.json, figures)
            for policy, (trace, t_dtr) in traces.items():
                tstats, t_str = timed(engine.taint, CHAIN, seeds, work / "out" / f"taint-{policy}",
                                      steps=args.steps, policy=policy, coinjoin_patterns=COINJOIN_PATTERNS)
                got = con.execute(f"SELECT txid, n, taint FROM read_parquet('{tstats.path}/*.parquet') "
                                  "WHERE NOT seed").fetchall()
                spark_taint = {(t, int(n)): int(v) for t, n, v in got}
                rows.append((f"taint {policy}, {args.steps} steps", t_dtr, t_str,
                             f"{'same' if spark_taint == trace else 'DIFFERENT'}: {len(trace)} outputs, "
                             f"{tstats.rounds} rounds"))
                figures[f"taint_{policy}"] = {"duckdb_s": t_dtr, "spark_s": t_str, "outputs": len(trace),
                                              "rounds": tstats.rounds, "equal": spark_taint == trace}
                _save(args.json, figures)
            con.close()
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    table = Table("job", "DuckDB s", "Spark s", "Spark/DuckDB", "DuckDB tx/s", "Spark tx/s", "check",
                  title=f"Spark (local[2]) against DuckDB on {args.txs:,} transactions "
                        f"({n_out:,} outputs, {n_in:,} inputs, {n_addr:,} addresses); 2 cores, shared")
    for name, d, s, check in rows:
        table.add_row(name, f"{d:.1f}" if d is not None else "-", f"{s:.1f}" if s is not None else "-",
                      f"{s / d:.2f}" if d and s else "-", f"{args.txs / d:,.0f}" if d else "-",
                      f"{args.txs / s:,.0f}" if s else "-", check)
    console.print(table)
    sizes_table = Table("table", "rows", "Parquet bytes", "bytes/row", "bytes/tx",
                        title="partitioned Parquet (zstd)")
    row_counts = {**counts, "clusters": n_addr}
    for name, size in sizes.items():
        n = row_counts.get(name, 0)
        sizes_table.add_row(name, f"{n:,}", f"{size:,}", f"{size / n:.1f}" if n else "-",
                            f"{size / args.txs:.1f}")
    console.print(sizes_table)
    console.print(f"build: synthesize {t_syn:.1f}s, load {t_load:.1f}s, patterns {t_patterns:.1f}s, "
                  f"export {t_export:.1f}s; DuckDB file {figures['build']['duckdb_file_bytes']:,} bytes; "
                  f"peak RSS (Python) {_peak_mib():,.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
