"""What sharing the chain store costs: the same statements in the host's process and through its socket.

A second process opens a home and hosts its store (as `fundtrail serve` or an ingest does); this
process then runs each workload twice, once on its own private copy of the store opened directly (the
baseline, as a single process would), once as a client of the host. Medians over ``--rounds``.

    .venv/bin/python bench/bench_store.py [--rows 1000000] [--rounds 200]

Machine: 2 cores, shared and noisy; compare the ratios of one run, not figures across runs.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
from rich.console import Console
from rich.table import Table

from fundtrail.store import ChainStore

console = Console(width=120)
HOST = """
import sys, time
from fundtrail.store import ChainStore
store = ChainStore.open_home(sys.argv[1])
print("hosting", flush=True)
sys.stdin.readline()
store.close()
"""


def median_ms(run: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        run()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def workloads(store: ChainStore, rows: int) -> dict[str, Callable[[], object]]:
    con = store.con
    staged = pa.table({"k": pa.array(range(10_000), pa.int64()), "v": pa.array(["x"] * 10_000)})

    def write() -> None:
        con.execute("BEGIN TRANSACTION")
        con.register("_bench_stage", staged)
        con.execute("INSERT INTO bench_t SELECT k, v FROM _bench_stage")
        con.unregister("_bench_stage")
        con.execute("ROLLBACK")

    return {
        "point look-up (1 row)":
            lambda: con.execute("SELECT v FROM bench_t WHERE k = ?", [rows // 2]).fetchall(),
        "aggregate over all rows": lambda: con.execute("SELECT count(*), sum(k) FROM bench_t").fetchone(),
        "fetch 10,000 rows": lambda: con.execute("SELECT k, v FROM bench_t LIMIT 10000").fetchall(),
        "fetch 100,000 rows as numpy": lambda: con.execute("SELECT k FROM bench_t LIMIT 100000").fetchnumpy(),
        "stage 10,000 rows and insert (rolled back)": write,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fundtrail-bench-store-"))
    try:
        shared_home, private = root / "shared", root / "private" / "chain.duckdb"
        with ChainStore.open_home(shared_home) as store:
            store.con.execute("CREATE TABLE bench_t AS SELECT range AS k, 'v' || range AS v "
                              f"FROM range({args.rows})")
        private.parent.mkdir(parents=True)
        shutil.copy(shared_home / "chain.duckdb", private)
        host = subprocess.Popen([sys.executable, "-c", HOST, str(shared_home)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        assert host.stdout is not None and host.stdin is not None
        assert host.stdout.readline().strip() == "hosting"
        try:
            with ChainStore(private) as direct, ChainStore.open_home(shared_home) as client:
                rows = []
                for (name, alone), through in zip(workloads(direct, args.rows).items(),
                                                  workloads(client, args.rows).values(), strict=True):
                    a, b = median_ms(alone, args.rounds), median_ms(through, args.rounds)
                    rows.append((name, a, b))
        finally:
            host.stdin.write("close\n")
            host.stdin.flush()
            host.wait(timeout=120)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    table = Table(title=f"chain store shared through its host: {args.rows:,} rows, medians of {args.rounds} "
                        "(2 cores, shared)")
    for column in ("workload", "one process (baseline) ms", "client of the host ms", "added ms", "ratio"):
        table.add_column(column, justify="left" if column == "workload" else "right")
    for name, a, b in rows:
        table.add_row(name, f"{a:.3f}", f"{b:.3f}", f"{b - a:+.3f}", f"{b / a:.2f}x")
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
