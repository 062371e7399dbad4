"""Benchmark: pattern detection, change heuristics and address clustering on a synthetic UTXO chain.

Builds a temporary DuckDB chain store of ``--txs`` random-but-plausible transactions (1-5 inputs,
1-3 outputs, change back to an input address, reuse of earlier addresses, round payments, a sprinkle
of Whirlpool-like and JoinMarket-like mixes) with vectorised inserts, then times each step and prints
a table with peak memory. The baseline is a plain Python dict-based union-find over the same address
groups, measured in the same run; the two partitions are checked to be equal.

    .venv/bin/python bench/bench_clustering.py --txs 1000000
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console
from rich.table import Table

from fundtrail.analysis.change import detect_change
from fundtrail.analysis.clustering import (
    _load_groups,
    cluster_addresses,
    smallest_member_labels,
    union_groups,
)
from fundtrail.analysis.coinjoin import detect_patterns
from fundtrail.store import ChainStore

CHAIN = "btc"
BLOCK_TXS = 2_000
SCRIPT_TYPES = np.array(["p2wpkh", "p2pkh", "p2sh", "p2tr"])


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthesize(n_txs: int, seed: int = 7) -> dict[str, pa.Table]:
    """Columns of a synthetic chain: txs, outputs, inputs (resolved), addresses, blocks."""
    rng = np.random.default_rng(seed)
    n_blocks = (n_txs + BLOCK_TXS - 1) // BLOCK_TXS
    height = np.arange(n_txs, dtype=np.int64) // BLOCK_TXS
    n_in = rng.choice([1, 2, 3, 4, 5], size=n_txs, p=[0.55, 0.25, 0.1, 0.06, 0.04])
    n_out = rng.choice([1, 2, 3], size=n_txs, p=[0.2, 0.6, 0.2])
    kind = np.zeros(n_txs, dtype=np.int8)  # 0 ordinary, 1 whirlpool-like mix, 2 joinmarket-like
    late = np.arange(n_txs) >= 10 * BLOCK_TXS
    kind[late & (rng.random(n_txs) < 0.001)] = 1
    kind[late & (kind == 0) & (rng.random(n_txs) < 0.0005)] = 2
    n_in[kind == 1], n_out[kind == 1] = 5, 5
    n_in[kind == 2], n_out[kind == 2] = 6, 12
    coinbase = height < 10
    n_in[coinbase], n_out[coinbase] = 0, 3

    out_ptr = np.concatenate([[0], np.cumsum(n_out)])
    n_outputs = int(out_ptr[-1])
    out_tx = np.repeat(np.arange(n_txs), n_out)
    out_n = np.arange(n_outputs) - out_ptr[out_tx]
    out_addr = np.full(n_outputs, -1, dtype=np.int64)
    value = np.exp(rng.uniform(np.log(1e4), np.log(1e9), n_outputs)).astype(np.int64)
    roundish = rng.random(n_outputs) < 0.25
    value[roundish] = np.maximum(value[roundish] // 100_000, 1) * 100_000
    mix_out = kind[out_tx] == 1
    value[mix_out] = 1_000_000
    jm = kind[out_tx] == 2
    value[jm & (out_n < 6)] = 2_500_000

    in_tx_parts, in_out_parts = [], []
    pool = np.zeros(0, dtype=np.int64)
    next_addr = 0
    for b in range(n_blocks):
        t0, t1 = b * BLOCK_TXS, min((b + 1) * BLOCK_TXS, n_txs)
        want = n_in[t0:t1].copy()
        if want.sum() > len(pool):  # not enough coins yet: fewer inputs
            want = np.minimum(want, 1)
            want[np.cumsum(want) > len(pool)] = 0
            n_in[t0:t1] = want
        take = int(want.sum())
        if take:
            pick = rng.choice(len(pool), size=take, replace=False)
            spent = pool[pick]
            keep = np.ones(len(pool), dtype=bool)
            keep[pick] = False
            pool = pool[keep]
            in_tx_parts.append(np.repeat(np.arange(t0, t1), want))
            in_out_parts.append(spent)
        # output addresses of this block: fresh, change back to the first input's address, or reuse
        o0, o1 = int(out_ptr[t0]), int(out_ptr[t1])
        m = o1 - o0
        r = rng.random(m)
        addrs = np.arange(next_addr, next_addr + m, dtype=np.int64)
        next_addr += m
        if take:
            first_in = np.full(t1 - t0, -1, dtype=np.int64)
            starts = np.concatenate([[0], np.cumsum(want)[:-1]])
            has = want > 0
            first_in[has] = out_addr[spent[starts[has]]]
            back = first_in[out_tx[o0:o1] - t0]
            change = (r < 0.15) & (back >= 0) & (out_n[o0:o1] == n_out[out_tx[o0:o1]] - 1)
            addrs[change] = back[change]
        if o0 > 0:
            reuse = (r > 0.92) & ~mix_out[o0:o1]
            popular = (o0 * rng.random(int(reuse.sum())) ** 3).astype(np.int64)  # early addresses are hubs
            addrs[reuse] = out_addr[popular]
        out_addr[o0:o1] = addrs
        spendable = np.arange(o0, o1, dtype=np.int64)
        pool = np.concatenate([pool, spendable[rng.random(m) < 0.9]])
    in_tx = np.concatenate(in_tx_parts)
    in_out = np.concatenate(in_out_parts)
    in_ptr = np.concatenate([[0], np.cumsum(np.bincount(in_tx, minlength=n_txs))])
    in_n = np.arange(len(in_tx)) - in_ptr[in_tx]

    # intern: dense ids in order of first appearance (as the store does, up to order)
    uniq, dense = np.unique(out_addr, return_inverse=True)
    out_addr = dense.astype(np.int64)
    addr_type = SCRIPT_TYPES[np.asarray(rng.choice(4, size=len(uniq), p=[0.6, 0.25, 0.1, 0.05]))]
    txid = pa.array([f"{i:064x}" for i in range(n_txs)], pa.string())
    address = pc.binary_join_element_wise("bc1qsyn", pc.cast(pa.array(np.arange(len(uniq))), pa.string()), "")
    out_type = addr_type[out_addr]
    time_col = 1_500_000_000 + height * 600
    tables = {
        "blocks": pa.table({"height": np.arange(n_blocks, dtype=np.int64),
                            "hash": pa.array([f"{h:064x}" for h in range(n_blocks)]),
                            "tx_count": np.bincount(height, minlength=n_blocks).astype(np.int32)}),
        "txs": pa.table({"txid": txid, "height": height, "time": time_col,
                         "tx_index": (np.arange(n_txs) % BLOCK_TXS).astype(np.int32),
                         "coinbase": n_in == 0}),
        "outputs": pa.table({"txid": txid.take(pa.array(out_tx)), "n": out_n.astype(np.int32),
                             "height": height[out_tx], "address": address.take(pa.array(out_addr)),
                             "address_id": out_addr, "value": value, "script_type": pa.array(out_type)}),
        "inputs": pa.table({"txid": txid.take(pa.array(in_tx)), "n": in_n.astype(np.int32),
                            "height": height[in_tx], "prev_txid": txid.take(pa.array(out_tx[in_out])),
                            "prev_n": out_n[in_out].astype(np.int32),
                            "address": address.take(pa.array(out_addr[in_out])),
                            "address_id": out_addr[in_out], "value": value[in_out]}),
        "addresses": pa.table({"id": np.arange(len(uniq), dtype=np.int64), "address": address}),
    }
    return tables


def load(store: ChainStore, tables: dict[str, pa.Table]) -> None:
    """Vectorised inserts of the synthetic columns into the store's tables."""
    con = store.con
    for name, table in tables.items():
        con.register(f"_syn_{name}", table)
    con.execute("INSERT INTO addresses SELECT $c, id, address FROM _syn_addresses", {"c": CHAIN})
    con.execute("INSERT INTO blocks SELECT $c, height, hash, NULL, 1500000000 + 600 * height, tx_count "
                "FROM _syn_blocks", {"c": CHAIN})
    con.execute("INSERT INTO txs SELECT $c, txid, height, time, tx_index, NULL, coinbase, NULL, NULL, NULL, "
                "NULL, true, NULL FROM _syn_txs", {"c": CHAIN})
    con.execute("INSERT INTO outputs SELECT $c, txid, n, height, address, address_id, value, script_type "
                "FROM _syn_outputs", {"c": CHAIN})
    con.execute("INSERT INTO inputs SELECT $c, txid, n, height, prev_txid, prev_n, NULL, address, "
                "address_id, value FROM _syn_inputs", {"c": CHAIN})
    for name in tables:
        con.unregister(f"_syn_{name}")


def dict_union_find(ptr: list[int], members: list[int]) -> dict[int, int]:
    """The baseline: a textbook union-find on a Python dict, path halving and union by size."""
    parent: dict[int, int] = {}
    size: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for g in range(len(ptr) - 1):
        s, e = ptr[g], ptr[g + 1]
        a = find(members[s])
        for x in members[s + 1:e]:
            b = find(x)
            if a != b:
                size.setdefault(a, 1)
                size.setdefault(b, 1)
                if size[a] < size[b]:
                    a, b = b, a
                parent[b] = a
                size[a] += size[b]
    return {x: find(x) for x in list(parent)}


def main(argv: list[str] | None = None) -> int:
    """Build, time and print."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--txs", type=int, default=1_000_000)
    ap.add_argument("--large", type=int, default=1_000, help="super-merge threshold (addresses)")
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args(argv)
    console = Console(width=150)
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = ChainStore(Path(tmp) / "chain.duckdb")
        t = time.perf_counter()
        tables = synthesize(args.txs)
        gen = time.perf_counter() - t
        t = time.perf_counter()
        load(store, tables)
        n_out, n_in = tables["outputs"].num_rows, tables["inputs"].num_rows
        del tables
        rows.append(("synthesize + load", f"{gen:.2f} s + {time.perf_counter() - t:.2f} s",
                     f"{args.txs:,} txs, {n_in:,} inputs, {n_out:,} outputs"))

        pat = detect_patterns(store, CHAIN)
        rows.append(("pattern detection", f"{pat.seconds:.2f} s",
                     f"{pat.coinjoins:,} coinjoins, {pat.premixes:,} premixes, "
                     f"{pat.peel_chains:,} peel chains ({pat.candidates:,} candidates)"))
        rep = cluster_addresses(store, CHAIN, large_cluster=args.large)
        rows.append(("clustering (co-spend)", f"{rep.seconds:.2f} s",
                     f"{rep.addresses:,} addresses, {rep.clusters:,} clusters, "
                     f"largest {rep.largest_cluster_size:,}, {len(rep.super_merges):,} super-merges, "
                     f"{rep.coinjoins_excluded:,} coinjoins excluded"))

        t = time.perf_counter()
        ptr, members, _ = _load_groups(store, CHAIN, False, 1.0)
        fetch = time.perf_counter() - t
        n_nodes = int(store.query("SELECT max(id) + 1 FROM addresses WHERE chain = ?", [CHAIN])[0][0])
        t = time.perf_counter()
        result = union_groups(n_nodes, ptr, members, large=args.large)
        engine = time.perf_counter() - t
        rows.append(("  of which: fetch groups", f"{fetch:.2f} s",
                     f"{len(ptr) - 1:,} groups, {len(members):,} pairs"))
        rows.append(("  of which: numpy/scipy union", f"{engine:.2f} s",
                     "connected components, replay of large ones"))
        if not args.no_baseline:
            ptr_l, members_l = ptr.tolist(), members.tolist()
            t = time.perf_counter()
            roots = dict_union_find(ptr_l, members_l)
            base = time.perf_counter() - t
            ours = smallest_member_labels(result.labels)
            keys = np.fromiter(roots.keys(), dtype=np.int64, count=len(roots))
            vals = np.fromiter(roots.values(), dtype=np.int64, count=len(roots))
            baseline_labels = np.arange(n_nodes, dtype=np.int64)
            baseline_labels[keys] = vals
            same = bool(np.array_equal(smallest_member_labels(baseline_labels), ours))
            rows.append(("baseline: Python dict union-find", f"{base:.2f} s",
                         f"same partition: {same}; "
                         f"speed-up of the union step x{base / max(engine, 1e-9):.1f}"))

        chg = detect_change(store, CHAIN)
        rows.append(("change heuristics", f"{chg.seconds:.2f} s",
                     f"{chg.outputs:,} outputs with evidence: "
                     + ", ".join(f"{k} {v:,}" for k, v in sorted(chg.by_rule.items()))))
        rep2 = cluster_addresses(store, CHAIN, with_change=True, large_cluster=args.large)
        rows.append(("clustering --with-change", f"{rep2.seconds:.2f} s",
                     f"{rep2.clusters:,} clusters, largest {rep2.largest_cluster_size:,}, "
                     f"{rep2.change_links:,} change links, {len(rep2.super_merges):,} super-merges"))
        store.close()
    table = Table(title=f"FundTrail clustering benchmark ({args.txs:,} synthetic transactions)")
    table.add_column("step")
    table.add_column("time", justify="right")
    table.add_column("result")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"peak memory (max RSS): {_peak_mib():,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
