"""Tracing speed: a 6-owner-hop haircut trace on a generated world of a million transactions, vs networkx.

Machine this was written for: 2 cores (shared), 24 GiB. Run it alone:
``flock /tmp/fundtrail-heavy.lock .venv/bin/python bench/bench_trace.py`` (``--txs N`` for another world
size, ``--seeds K`` for another number of traces, ``--keep`` to keep the generated world in ``--dir`` and
reuse it on the next run).

The world: blocks of 2000 transactions, the first block a premine of coinbase outputs, then in every
block one coinbase and transactions with 1-5 inputs (60/20/10/6/4 %) and 1-3 outputs (25/50/25 %).
Inputs spend unspent outputs, mostly recent ones (exponential age) and sometimes old ones. Outputs pay
fresh addresses, popular reused addresses (25 %), change back to the first input's address (35 % of
multi-output transactions) or one of 20 exchange hot wallets (1 %), tagged as exchanges. It is written
straight into a home's chain store (``DIR/world-N-SEED/chain.duckdb``) with vectorised inserts.

Measured:
- end to end: ``fundtrail trace ADDR --format json`` as a fresh process (with its ``.pyc`` files), first
  with no graph files (that call builds the graph and writes it beside the store; reported on its own),
  then for each of ``--cli-runs`` seeds with the files kept (memory-mapped and checked): median, p90;
- in-process, on two sets of 20 seed addresses: random receivers of the first tenth of the chain
  (exchanges excluded; their 6-hop traces reach a few dozen transactions) and the 20 busiest reused
  addresses (hundreds of coins each; their traces reach thousands of transactions):
  ``trace_funds(..., policy="haircut", max_hops=6)`` alone (endpoints ready, flows built on demand) and
  with ``to_dict()`` (the whole JSON document): median and p90 after one warm-up trace;
- ``find_paths`` from each random seed to an endpoint its trace reached: median;
- the graph: loading it from its files, and building it from the store in memory;
- the baseline, in the same run: the same haircut trace written plainly with networkx on a DiGraph of
  transaction and output nodes (graph built once, then per seed a BFS over ``successors`` to the
  transactions within 6 hops and a proportional taint pass over them in chain order), given the seed's
  outputs; it is checked to give exactly the endpoint values of ``trace_funds`` for every seed, and the
  CLI documents are checked equal to the in-process ones.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from fundtrail.analysis import graphstore
from fundtrail.analysis.graph import build_utxo_graph, utxo_graph
from fundtrail.analysis.paths import find_paths
from fundtrail.analysis.tracing import trace_funds
from fundtrail.domain.addresses import segwit_address
from fundtrail.domain.taint import haircut_shares
from fundtrail.store import ChainStore

console = Console(width=150)
N_EXCHANGES = 20
N_POPULAR = 20_000
PER_BLOCK = 2000


# ------------------------------------------------------------------------------------------- world


def generate(n_txs: int, seed: int) -> dict[str, np.ndarray]:
    """Transactions, outputs and inputs as arrays (one pass over the chain: spends need earlier outputs)."""
    rng = np.random.default_rng(seed)
    n_blocks = -(-n_txs // PER_BLOCK)
    n_in = rng.choice([1, 2, 3, 4, 5], p=[0.6, 0.2, 0.1, 0.06, 0.04], size=n_txs)
    n_out = rng.choice([1, 2, 3], p=[0.25, 0.5, 0.25], size=n_txs)
    tx_index = np.arange(n_txs) % PER_BLOCK
    height = np.arange(n_txs) // PER_BLOCK
    coinbase = (tx_index == 0) | (height == 0)  # block 0 is a premine of coinbase outputs
    n_in[coinbase] = 0
    total_out = int(n_out.sum())
    # per-output draws
    kind = rng.random(total_out)
    popular = np.minimum(rng.exponential(N_POPULAR / 6, total_out).astype(np.int64), N_POPULAR - 1)
    exchange = rng.integers(0, N_EXCHANGES, total_out)
    weights = rng.random(total_out) + 0.05
    # per-input draws: age of the spent output in the unspent pool (recent mostly)
    total_in = int(n_in.sum())
    recent = rng.exponential(3000, total_in).astype(np.int64)
    old = rng.random(total_in)
    use_old = rng.random(total_in) < 0.1
    fee_draw = rng.integers(500, 20_000, n_txs)
    coin_value = rng.integers(50_000_000, 625_000_000, n_txs)

    out_tx = np.repeat(np.arange(n_txs), n_out)
    out_n = np.arange(total_out) - np.repeat(np.cumsum(n_out) - n_out, n_out)
    out_value = np.zeros(total_out, dtype=np.int64)
    out_addr = np.zeros(total_out, dtype=np.int64)
    in_tx = np.repeat(np.arange(n_txs), n_in)
    in_prev = np.zeros(total_in, dtype=np.int64)

    pool = np.zeros(total_out, dtype=np.int64)
    pool_len = 0
    next_fresh = N_EXCHANGES + N_POPULAR
    o = 0
    i = 0
    for t in range(n_txs):
        k = int(n_in[t])
        m = int(n_out[t])
        first_addr = -1
        if k:
            k = min(k, pool_len)
            total = 0
            for j in range(k):
                if use_old[i + j]:
                    idx = int(old[i + j] * pool_len)
                else:
                    idx = pool_len - 1 - min(int(recent[i + j]), pool_len - 1)
                spent = pool[idx]
                pool[idx] = pool[pool_len - 1]
                pool_len -= 1
                in_prev[i + j] = spent
                total += int(out_value[spent])
                if j == 0:
                    first_addr = int(out_addr[spent])
            if k < n_in[t]:  # pool ran dry (only possible at the very start): drop the missing inputs
                in_prev[i + k:i + int(n_in[t])] = -1
            i += int(n_in[t])
            fee = min(int(fee_draw[t]), total // 20)
            budget = total - fee
        else:
            budget = int(coin_value[t])
        m = min(m, max(budget, 1))
        w = weights[o:o + m]
        parts = np.floor(budget * w / w.sum()).astype(np.int64)
        parts[-1] += budget - int(parts.sum())
        for j in range(m):
            r = kind[o + j]
            if j == m - 1 and m > 1 and first_addr >= 0 and r < 0.35:
                addr = first_addr
            elif r < 0.36:
                addr = int(exchange[o + j]) if r < 0.01 else next_fresh
            elif r < 0.61:
                addr = N_EXCHANGES + int(popular[o + j])
            else:
                addr = next_fresh
            if addr == next_fresh:
                next_fresh += 1
            out_addr[o + j] = addr
            out_value[o + j] = parts[j]
            pool[pool_len] = o + j
            pool_len += 1
        if m < n_out[t]:  # budget smaller than the output count: the rest pays nothing
            out_addr[o + m:o + int(n_out[t])] = next_fresh
            next_fresh += 1
        o += int(n_out[t])
    keep_in = in_prev >= 0
    in_n = np.arange(total_in) - np.repeat(np.cumsum(n_in) - n_in, n_in)
    return {"tx_height": height, "tx_index": tx_index, "tx_coinbase": coinbase,
            "out_tx": out_tx, "out_n": out_n, "out_value": out_value, "out_addr": out_addr,
            "in_tx": in_tx[keep_in], "in_n": in_n[keep_in], "in_prev": in_prev[keep_in],
            "n_blocks": np.array([n_blocks]), "n_addresses": np.array([next_fresh])}


def real_address(i: int) -> str:
    """A valid P2WPKH address for address number ``i``."""
    return segwit_address("btc", 0, hashlib.sha256(f"addr{i}".encode()).digest()[:20])


def write_store(path: Path, w: dict[str, np.ndarray], seed_ids: list[int]) -> None:
    """Write the world into a chain store with vectorised inserts."""
    store = ChainStore(path)
    con = store.con
    n_tx = len(w["tx_height"])
    base = 1_600_000_000
    blocks = pa.table({"height": np.arange(int(w["n_blocks"][0]))})
    txs = pa.table({"tx": np.arange(n_tx), "height": w["tx_height"], "tx_index": w["tx_index"],
                    "coinbase": w["tx_coinbase"]})
    outs = pa.table({"tx": w["out_tx"], "n": w["out_n"], "value": w["out_value"], "addr": w["out_addr"]})
    ins = pa.table({"tx": w["in_tx"], "n": w["in_n"], "prev": w["in_prev"]})
    n_addr = int(w["n_addresses"][0])
    # exchanges, popular addresses and seeds get real (checksummed) addresses; the rest synthetic text
    valid = {i: real_address(i) for i in [*range(N_EXCHANGES + N_POPULAR), *seed_ids]}
    special = pa.table({"id": list(valid), "address": list(valid.values())})
    for name, table in (("_b", blocks), ("_t", txs), ("_o", outs), ("_i", ins), ("_s", special)):
        con.register(name, table)
    con.execute("BEGIN TRANSACTION")
    con.execute(f"""INSERT INTO blocks SELECT 'btc', height, sha256('block' || height), NULL,
                    {base} + 600 * height, {PER_BLOCK} FROM _b""")
    con.execute("""CREATE TEMP TABLE _txid AS SELECT tx, height, tx_index, coinbase,
                   sha256('tx' || tx) AS txid FROM _t""")
    con.execute(f"""INSERT INTO txs SELECT 'btc', txid, height, {base} + 600 * height, tx_index, NULL,
                    coinbase, NULL, NULL, NULL, NULL, NULL, NULL FROM _txid""")
    con.execute(f"""INSERT INTO addresses SELECT 'btc', i, coalesce(s.address,
                        'bc1qsyn' || lpad(i::VARCHAR, 35, '0'))
                    FROM range({n_addr}) r(i) LEFT JOIN _s s ON s.id = r.i""")
    con.execute("""CREATE TEMP TABLE _orow AS SELECT row_number() OVER (ORDER BY o.tx, o.n) - 1 AS row, o.tx,
                   o.n, o.value, o.addr, t.txid, t.height FROM _o o JOIN _txid t USING (tx)""")
    con.execute("""INSERT INTO outputs SELECT 'btc', o.txid, o.n, o.height, a.address, o.addr, o.value,
                   'p2wpkh' FROM _orow o JOIN addresses a ON a.chain = 'btc' AND a.id = o.addr""")
    con.execute("""INSERT INTO inputs SELECT 'btc', t.txid, i.n, t.height, p.txid, p.n, NULL, a.address,
                   p.addr, p.value
                   FROM _i i JOIN _txid t USING (tx) JOIN _orow p ON p.row = i.prev
                   JOIN addresses a ON a.chain = 'btc' AND a.id = p.addr""")
    for k in range(N_EXCHANGES):
        con.execute("INSERT INTO tags (chain, address, label, category, jurisdiction, confidence_level, "
                    "source) VALUES ('btc', ?, ?, 'exchange', 'NL', 80, 'bench')",
                    [real_address(k), f"Exchange {k}"])
    con.execute("COMMIT")
    con.execute("DROP TABLE _txid")
    con.execute("DROP TABLE _orow")
    store.close()


def pick_seeds(w: dict[str, np.ndarray], k: int, seed: int) -> list[int]:
    """Receivers of outputs in the first tenth of the chain (not exchanges), drawn per output."""
    rng = np.random.default_rng(seed + 1)
    early = w["out_tx"] < len(w["tx_height"]) // 10
    candidates = w["out_addr"][early & (w["out_addr"] >= N_EXCHANGES)]
    return [int(x) for x in rng.choice(np.unique(candidates), size=k, replace=False)]


# ---------------------------------------------------------------------------------------- baseline


def build_networkx(store: ChainStore) -> tuple[Any, int, dict[int, int], set[int]]:
    """The chain as a plain networkx DiGraph: transaction nodes and output nodes.

    Output ``r`` is node ``r`` (attributes value, address); transaction ``t`` is node ``n_out + t``;
    edges run from a transaction to its outputs and from an output to the transaction spending it.
    Also the number of transactions per address (hubs) and the exchange addresses (services).
    """
    import networkx as nx

    g = utxo_graph(store, "btc")  # only as the data source, read once
    n_out = len(g.out_tx)
    graph = nx.DiGraph()
    values, addresses = g.out_value.tolist(), g.out_addr.tolist()
    graph.add_nodes_from((r, {"value": v, "address": a})
                         for r, (v, a) in enumerate(zip(values, addresses, strict=True)))
    graph.add_nodes_from(range(n_out, n_out + g.tx_count))
    graph.add_edges_from(zip((g.out_tx + n_out).tolist(), range(n_out), strict=True))
    spent = g.in_prev >= 0
    graph.add_edges_from(zip(g.in_prev[spent].tolist(), (g.in_tx[spent] + n_out).tolist(), strict=True))
    txs_of: dict[int, set[int]] = defaultdict(set)
    for r in range(n_out):
        address = graph.nodes[r]["address"]
        txs_of[address].update(graph.predecessors(r))
        txs_of[address].update(graph.successors(r))
    degree = {a: len(ts) for a, ts in txs_of.items()}
    return graph, n_out, degree, set(range(N_EXCHANGES))


def networkx_trace(graph: Any, degree: dict[int, int], services: set[int], seed_outputs: list[int],
                   max_hops: int = 6, hub_degree: int = 500,
                   max_steps: int = 200) -> dict[tuple[int, str], int]:
    """The haircut trace, plainly: a search to the transactions within reach, then taint in chain order.

    Same rules as ``trace_funds``: stop at services and hubs (seeds exempt), at unspent outputs, after
    ``max_hops`` owner hops and after ``max_steps`` transactions; each transaction once, with all its
    tainted inputs. An output paying back an address that funded its transaction (the world's only
    same-owner rule: it has no clusters, change evidence or peel chains) uses no hop.
    """
    nodes = graph.nodes
    seeds = set(seed_outputs)

    def stop(out: int) -> str | None:
        if out not in seeds:
            address = nodes[out]["address"]
            if address in services:
                return "service"
            if degree.get(address, 0) > hub_degree:
                return "hub"
        return None if graph.out_degree(out) else "unspent"

    def kept(out: int, tx: int) -> bool:
        return nodes[out]["address"] in {nodes[i]["address"] for i in graph.predecessors(tx)}

    far = 1 << 40
    reach_hop = dict.fromkeys(seeds, 0)
    reach_step = dict.fromkeys(seeds, 0)
    tx_hop: dict[int, int] = {}
    tx_step: dict[int, int] = {}
    frontier = list(seeds)
    while frontier:
        nxt = []
        for out in frontier:
            if stop(out) is None and reach_hop[out] < max_hops and reach_step[out] < max_steps:
                for tx in graph.successors(out):
                    tx_step[tx] = min(tx_step.get(tx, far), reach_step[out] + 1)
                    if reach_hop[out] < tx_hop.get(tx, far):
                        tx_hop[tx] = reach_hop[out]
                        for o in graph.successors(tx):
                            h = tx_hop[tx] + (0 if kept(o, tx) else 1)
                            reach_step[o] = min(reach_step.get(o, far), tx_step[tx])
                            if h < reach_hop.get(o, far):
                                reach_hop[o] = h
                                nxt.append(o)
        frontier = nxt
    taint = {out: nodes[out]["value"] for out in seeds}
    hop = dict.fromkeys(seeds, 0)
    step = dict.fromkeys(seeds, 0)
    for tx in sorted(tx_hop):  # transaction nodes are numbered in chain order
        ins = list(graph.predecessors(tx))
        total_in = sum(nodes[out]["value"] for out in ins)
        tainted, best, best_step = 0, far, far
        for out in ins:
            if (taint.get(out, 0) > 0 and stop(out) is None and hop[out] < max_hops
                    and step[out] < max_steps):
                tainted += taint[out]
                best = min(best, hop[out])
                best_step = min(best_step, step[out])
        if not tainted:
            continue
        outs = sorted(graph.successors(tx))
        for out, share in zip(outs, haircut_shares(tainted, total_in, [nodes[o]["value"] for o in outs]),
                              strict=True):
            if out not in seeds:
                taint[out] = share
                hop[out] = best + (0 if kept(out, tx) else 1)
                step[out] = best_step + 1
    ends: dict[tuple[int, str], int] = defaultdict(int)
    for out, value in taint.items():
        if value > 0:
            reason = stop(out) or ("max_hops" if hop[out] >= max_hops
                                   else "max_steps" if step[out] >= max_steps else None)
            if reason:
                ends[(nodes[out]["address"], reason)] += value
    return dict(ends)


# -------------------------------------------------------------------------------------------- main


def _machine() -> str:
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
        mem = f"{kb / 2**20:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{os.cpu_count()} cores, {mem} (written for 2 cores, 24 GiB)"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _cli_trace(home: Path, address: str) -> tuple[float, dict[str, Any]]:
    """One ``fundtrail trace`` as a fresh process: wall time and the JSON document."""
    exe = Path(sys.executable).with_name("fundtrail")
    command = [str(exe), "trace", address, "--chain", "btc", "--policy", "haircut", "--max-hops", "6",
               "--home", str(home), "--format", "json"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as installed: with .pyc
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"fundtrail trace failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    doc: dict[str, Any] = json.loads(done.stdout)
    return elapsed, doc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--cli-runs", type=int, default=7, help="fresh-process traces with the graph kept")
    parser.add_argument("--random-seed", type=int, default=11)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "fundtrail-bench-trace")
    parser.add_argument("--keep", action="store_true", help="keep (and reuse) the generated world")
    parser.add_argument("--no-baseline", action="store_true", help="skip networkx")
    args = parser.parse_args()

    home = args.dir / f"world-{args.txs}-{args.random_seed}"
    path = home / "chain.duckdb"
    started = time.perf_counter()
    world = generate(args.txs, args.random_seed)
    seed_ids = pick_seeds(world, args.seeds, args.random_seed)
    generated = time.perf_counter() - started
    if not (args.keep and path.exists()):
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        started = time.perf_counter()
        write_store(path, world, seed_ids)
        written = time.perf_counter() - started
    else:
        written = 0.0
    console.print(f"world: {args.txs:,} transactions, {len(world['out_tx']):,} outputs, "
                  f"{len(world['in_tx']):,} inputs, {int(world['n_addresses'][0]):,} addresses "
                  f"(generated {generated:.1f}s, written {written:.1f}s)")

    # End to end: `fundtrail trace` as a fresh process, first with no graph files (it builds and
    # writes them), then with the files kept (memory-mapped, checked, used).
    cli_seeds = [real_address(i) for i in seed_ids[:args.cli_runs]]
    shutil.rmtree(home / "graph", ignore_errors=True)
    first_call, first_doc = _cli_trace(home, cli_seeds[0])
    cli_times, cli_docs = [], []
    for address in cli_seeds:
        elapsed, doc = _cli_trace(home, address)
        cli_times.append(elapsed)
        cli_docs.append(doc)
    assert cli_docs[0] == first_doc, "the trace with kept graph files differs from the one that built them"
    graph_bytes = sum(f.stat().st_size for f in (home / "graph").rglob("*.npy"))

    store = ChainStore(path, read_only=True)
    started = time.perf_counter()
    graph = utxo_graph(store, "btc")
    load = time.perf_counter() - started
    started = time.perf_counter()
    for npy in (home / "graph").rglob("*.npy"):  # what a load of files no check vouches for adds
        graphstore._checksum(np.load(npy, mmap_mode="r"))
    full_check = time.perf_counter() - started
    started = time.perf_counter()
    build_utxo_graph(store, "btc")
    build = time.perf_counter() - started
    scenarios = {
        "random seeds": seed_ids,
        # the most reused addresses: hundreds of coins each, so traces reach thousands of transactions
        "busy seeds": list(range(N_EXCHANGES, N_EXCHANGES + args.seeds)),
    }
    texts = graph.address_texts(np.array([i for ids in scenarios.values() for i in ids]))
    assert texts is not None
    trace_funds(store, "btc", [texts[seed_ids[0]]], policy="haircut", max_hops=6).to_dict()  # warm-up
    for doc, address in zip(cli_docs, cli_seeds, strict=True):
        ours = trace_funds(store, "btc", [address], policy="haircut", max_hops=6).to_dict()
        assert json.loads(json.dumps(ours)) == doc, f"CLI and in-process traces differ for {address}"

    measured: dict[str, dict[str, Any]] = {}
    for name, ids in scenarios.items():
        core, full, sizes, results = [], [], [], []
        for i in ids:
            t0 = time.perf_counter()
            result = trace_funds(store, "btc", [texts[i]], policy="haircut", max_hops=6)
            t1 = time.perf_counter()
            result.to_dict()
            t2 = time.perf_counter()
            core.append(t1 - t0)
            full.append(t2 - t0)
            sizes.append(len({f.txid for f in result.flows}))
            results.append(result)
        measured[name] = {"ids": ids, "core": core, "full": full, "sizes": sizes, "results": results}

    path_times = []
    for i, result in zip(seed_ids, measured["random seeds"]["results"], strict=True):
        far = [e for e in result.endpoints if e.address and e.address != texts[i] and e.hops >= 3
               and not e.address.startswith("bc1qsyn")]
        if far:
            t0 = time.perf_counter()
            found = find_paths(store, "btc", texts[i], far[0].address, max_hops=6)
            path_times.append(time.perf_counter() - t0)
            assert found.paths, f"no path from {texts[i]} to {far[0].address}"

    nx_build = 0.0
    if not args.no_baseline:
        started = time.perf_counter()
        nxg, _, degree, services = build_networkx(store)
        nx_build = time.perf_counter() - started
        for m in measured.values():
            m["base"] = []
            for i, result in zip(m["ids"], m["results"], strict=True):
                outs = graph.outputs_to(i).tolist()
                t0 = time.perf_counter()
                ends = networkx_trace(nxg, degree, services, outs)
                m["base"].append(time.perf_counter() - t0)
                ours: dict[tuple[int, str], int] = defaultdict(int)
                for e in result.endpoints:
                    found_id = graph.find_address(e.address) if e.address else None
                    ours[(found_id if found_id is not None else -1, e.reason)] += e.tainted_value
                assert dict(ours) == ends, f"networkx and trace_funds disagree for address {i}"
        del nxg
    store.close()

    def p90(xs: list[float]) -> float:
        return sorted(xs)[max(0, int(round(0.9 * len(xs))) - 1)]

    med = statistics.median
    table = Table(title=f"6-owner-hop haircut trace, {args.txs:,}-transaction world, {args.seeds} seeds "
                        "per row "
                        f"({_machine()}; load average {os.getloadavg()[0]:.1f})")
    for col in ("", "txs reached (median)", "median", "p90", "networkx median", "speed-up (median)"):
        table.add_column(col, justify="left" if not col else "right")
    table.add_row(f"fundtrail trace, fresh process, graph files kept ({len(cli_times)} seeds)", "",
                  _ms(med(cli_times)), _ms(p90(cli_times)), "", "")
    table.add_row("fundtrail trace, fresh process, first call (builds and writes the graph)", "",
                  f"{first_call:.1f} s", "", "", "")
    for name, m in measured.items():
        base = m.get("base")
        for label, key in (("trace_funds", "core"), ("trace_funds + to_dict", "full")):
            table.add_row(f"{name}: {label}", str(int(med(m["sizes"]))), _ms(med(m[key])), _ms(p90(m[key])),
                          _ms(med(base)) if base else "-",
                          f"{med(base) / med(m[key]):.1f}x" if base else "-")
    if path_times:
        table.add_row(f"find_paths ({len(path_times)} pairs)", "", _ms(med(path_times)), _ms(p90(path_times)),
                      "", "")
    table.add_row(f"graph load from files ({graph_bytes / 2**20:.0f} MiB; headers and sizes checked)", "",
                  _ms(load), "", "", "")
    table.add_row("graph files: full checksum (files no record vouches for)", "", _ms(full_check), "", "", "")
    table.add_row("graph build from the store (in memory)", "", f"{build:.1f} s", "", f"{nx_build:.1f} s",
                  f"{nx_build / build:.1f}x" if nx_build else "-")
    console.print(table)
    console.print("targets: fundtrail trace end to end < 500 ms with the graph kept; in-process >= 5x "
                  "networkx on random seeds and >= 20x on busy seeds (trace_funds + to_dict)")
    cli_ok = med(cli_times) < 0.5
    ratios_ok = True
    for name, target in (("random seeds", 5), ("busy seeds", 20)):
        base = measured[name].get("base")
        if base:
            ratios_ok &= med(base) / med(measured[name]["full"]) >= target
    if not args.keep:
        shutil.rmtree(home, ignore_errors=True)
    return 0 if cli_ok and ratios_ok else 1


if __name__ == "__main__":
    sys.exit(main())
