"""Conversion speed: detection over a large synthetic EVM world, and a cross-chain trace.

Run: ``.venv/bin/python bench/bench_conversions.py`` (``--txs N`` EVM transactions, default 1,000,000, of
which ``--swaps`` Uniswap-v2 swaps (default 100,000) and ``--pool-ops`` pool deposits and withdrawals
(default 10,000); the rest are plain native and token payments; ``--runs R`` trace repetitions).

1. Detection: ``detect_conversions`` over the store (all rules: swaps, net-flow trades, pools, bridges),
   target under 60 s. Baseline in the same run: a plain Python loop over the same stored logs that decodes
   every event (``decode_event``), with no matching at all.
2. Cross-chain trace: the ``ransom-btc-memo-bridge`` case of a generated cross-chain world (btc > memo >
   eth > swap > cBridge > bsc > exchange: 3 chains, 3 conversions), median over the runs, target under
   500 ms. Baseline in the same run: the same trace with ``follow_conversions`` off (it stops at the first
   conversion).
"""

from __future__ import annotations

import argparse
import statistics
import time

from rich.console import Console
from rich.table import Table

from fundtrail.analysis.conversions import detect_conversions
from fundtrail.analysis.tracing import trace_funds
from fundtrail.chains.evm.events import decode_event
from fundtrail.scenarios.crosschain import CrossChainConfig, generate_cross_chain
from fundtrail.store import ChainStore
from fundtrail.testing.evm import EvmBuilder

START = 1_713_571_767


def build(store: ChainStore, txs: int, swaps: int, pool_ops: int) -> None:
    """Write ``txs`` eth transactions: ``swaps`` v2 swaps, ``pool_ops`` pool operations, the rest payments."""
    b = EvmBuilder("eth", START, salt=1)
    users = [f"0x{i + 1:040x}" for i in range(50_000)]
    pairs = [f"0x{0xA0000 + i:040x}" for i in range(200)]
    tokens = [f"0x{0xB0000 + i:040x}" for i in range(20)]
    router, pool = f"0x{0xC0000:040x}", f"0x{0xC0001:040x}"
    every_swap = max(txs // max(swaps, 1), 1)
    every_pool = max(txs // max(pool_ops, 1), 1)
    deposits: list[int] = []
    done_s = done_p = 0
    for i in range(txs):
        u = users[i % len(users)]
        wait = 12 if i % 100 == 0 else 0
        if done_s < swaps and i % every_swap == 0:
            t0, t1 = tokens[i % 20], tokens[(i + 1) % 20]
            b.v2_swap(u, router, pairs[i % 200], t0, 1000 + i, t1, 900 + i, wait=wait)
            done_s += 1
        elif done_p < pool_ops and i % every_pool == 1:
            if done_p % 2 == 0 or not deposits:
                b.pool_deposit(u, pool, 10**19, f"{i:064x}", done_p, gas_price=20 * 10**9, wait=wait)
                deposits.append(i)
            else:
                deposits.pop(0)
                b.pool_withdraw(
                    router,
                    pool,
                    users[(i * 7) % len(users)],
                    10**19,
                    f"{i:064x}",
                    relayer=router,
                    fee=10**17,
                    gas_price=30 * 10**9,
                    wait=wait,
                )
            done_p += 1
        elif i % 3 == 0:
            h = b.tx(u, tokens[i % 20], wait=wait)
            b.token(h, 1, tokens[i % 20], u, users[(i * 13) % len(users)], 10 + i)
        else:
            b.tx(u, users[(i * 31) % len(users)], 10**15 + i, wait=wait)
    store.write_batch(b.batch)


def baseline_decode(store: ChainStore) -> int:
    """A plain Python loop over the stored logs: decode every event, count them."""
    n = 0
    for address, topics, data in store.con.execute("SELECT address, topics, data FROM logs").fetchall():
        try:
            if decode_event(address, topics, data) is not None:
                n += 1
        except Exception:  # noqa: BLE001  (the baseline only counts)
            continue
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--txs", type=int, default=1_000_000)
    ap.add_argument("--swaps", type=int, default=100_000)
    ap.add_argument("--pool-ops", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    console = Console()
    table = Table(title="conversions")
    for col in ("measure", "FundTrail", "baseline", "target", "detail"):
        table.add_column(col)

    with ChainStore(":memory:") as store:
        t = time.perf_counter()
        build(store, args.txs, args.swaps, args.pool_ops)
        built = time.perf_counter() - t
        t = time.perf_counter()
        report = detect_conversions(store)
        detect = time.perf_counter() - t
        t = time.perf_counter()
        decoded = baseline_decode(store)
        base = time.perf_counter() - t
    found = report.to_dict()["conversions"]
    table.add_row(
        f"detection, {args.txs:,} txs",
        f"{detect:.1f} s",
        f"{base:.1f} s (decode only)",
        "< 60 s",
        f"{sum(found.values()):,} conversions {found}; {decoded:,} events; built in {built:.0f} s",
    )

    world = generate_cross_chain(CrossChainConfig(seed=1))
    case = next(c for c in world.cases if c.kind == "ransom-btc-memo-bridge")
    with ChainStore(":memory:") as store:
        world.load(store)
        detect_conversions(store)
        times, plain = [], []
        doc = {}
        for _ in range(args.runs):
            t = time.perf_counter()
            doc = trace_funds(store, case.chain, list(case.seeds)).to_dict()
            times.append(time.perf_counter() - t)
            t = time.perf_counter()
            trace_funds(store, case.chain, list(case.seeds), follow_conversions=False)
            plain.append(time.perf_counter() - t)
    chains = sorted({f.get("chain", case.chain) for f in doc["flows"]})
    table.add_row(
        "cross-chain trace (median)",
        f"{statistics.median(times) * 1000:.0f} ms",
        f"{statistics.median(plain) * 1000:.0f} ms (no conversions)",
        "< 500 ms",
        f"{len(doc.get('conversions', []))} conversions, chains {chains}, "
        f"max hop {max(e['hops'] for e in doc['endpoints'])}, {args.runs} runs",
    )
    console.print(table)


if __name__ == "__main__":
    main()
