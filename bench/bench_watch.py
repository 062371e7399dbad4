"""Watch speed: block-to-alert lag while watching 10,000 addresses and blocks of 3,000 transactions arrive.

Run: ``.venv/bin/python bench/bench_watch.py`` (``--addresses N``, ``--per-watch K`` addresses per watch,
``--blocks B``, ``--txs T`` transactions per block, ``--moves M`` watched coins moved per block).

The world: block 1 funds every watched address (one output each) and ``T`` filler lanes; each following
block holds ``T`` transactions: ``T - M`` filler transactions (each spends its lane's previous output into a
fresh address and a change output) and ``M`` transactions moving a watched coin to a tagged exchange.
Blocks are fed one at a time through the same path as ``watch run --source``: a source whose ``ingest``
calls the ingest service (``ingest_batches``), then the watcher's cycle (match the new inputs against the
watch index, trace the touched watches, commit alerts and cursor, audited). The lag of a block is from the
moment it arrives (before ingest) to its alerts being committed: median and p99 over the blocks.

Baseline, in the same run: the watcher without an index, i.e. a full re-trace of every watch for every
block (same tracing service, no database writes), measured on the same blocks; its lag is the ingest time
plus that re-trace.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from fundtrail.cases import cases as case_service
from fundtrail.cases.context import open_operation
from fundtrail.cases.db import CaseDB
from fundtrail.cases.testing import seed_users
from fundtrail.domain.addresses import segwit_address
from fundtrail.domain.records import BlockRecord, UtxoBatch
from fundtrail.store import ChainStore
from fundtrail.store.ingest import IngestReport, ingest_batches
from fundtrail.watch.engine import Point, evaluate
from fundtrail.watch.models import Watch, WatchPoint
from fundtrail.watch.runner import Watcher

CHAIN = "btc"


def address(tag: str) -> str:
    return segwit_address(CHAIN, 0, hashlib.sha256(tag.encode()).digest()[:20])


def txid(tag: str) -> str:
    return hashlib.sha256(tag.encode()).hexdigest()


def block(height: int, txs: list[tuple[str, list[tuple[str, int]], list[tuple[str, int]]]]) -> UtxoBatch:
    """One block as a batch: (txid, inputs (outpoints), outputs (address, value))."""
    batch = UtxoBatch(chain=CHAIN)
    when = 1_700_000_000 + 600 * height
    prev = f"{height - 1:064x}" if height > 1 else None
    batch.blocks.append(BlockRecord(CHAIN, height, f"{height:064x}", prev, when, len(txs)))
    for index, (tid, inputs, outputs) in enumerate(txs):
        batch.add_tx(tid, height, when, index, coinbase=not inputs)
        for n, (ptx, pn) in enumerate(inputs):
            batch.add_input(tid, n, ptx, pn)
        for n, (addr, value) in enumerate(outputs):
            batch.add_output(tid, n, addr, value, "p2wpkh")
    return batch


class Feed:
    """A source that writes one prepared block through the ingest service."""

    name = "bench"

    def __init__(self) -> None:
        self.batch: UtxoBatch | None = None
        self.ingest_seconds = 0.0

    def ingest(self, store: ChainStore, ctx_factory: Any) -> list[IngestReport]:
        started = time.perf_counter()
        report = ingest_batches(store, CHAIN, [self.batch] if self.batch else [])
        self.ingest_seconds = time.perf_counter() - started
        return [report]


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addresses", type=int, default=10_000)
    parser.add_argument("--per-watch", type=int, default=10)
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--txs", type=int, default=3_000)
    parser.add_argument("--moves", type=int, default=5)
    parser.add_argument("--baseline-blocks", type=int, default=2)
    args = parser.parse_args()
    console = Console(stderr=True)
    home = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    db = CaseDB.open(home)
    try:
        seed_users(db, jurisdiction="EE", unit="Bench")
    finally:
        db.close()
    watched = [address(f"w{i}") for i in range(args.addresses)]
    exchange = address("exchange")
    lanes = args.txs - args.moves
    funding: list[tuple[str, list[tuple[str, int]], list[tuple[str, int]]]] = [
        (txid(f"fund{i}"), [], [(a, 100_000) for a in watched[i : i + 1000]])
        for i in range(0, len(watched), 1000)
    ]
    funding.append((txid("lanes"), [], [(address(f"lane{j}"), 1_000_000) for j in range(lanes)]))
    with ChainStore.open_home(home) as store:
        ingest_batches(store, CHAIN, [block(1, funding)])
        from fundtrail.intel.attribution import SERVICE_CATEGORIES  # noqa: F401  (registers the tag table)

        store.con.execute(
            "CREATE TABLE IF NOT EXISTS tags (chain VARCHAR NOT NULL, address VARCHAR NOT NULL, "
            "label VARCHAR, category VARCHAR, abuse VARCHAR, actor VARCHAR, jurisdiction VARCHAR, "
            "confidence VARCHAR, confidence_level INTEGER, source VARCHAR, tagpack VARCHAR, "
            "is_cluster_definer BOOLEAN, lastmod VARCHAR, extra JSON, tag_index INTEGER)"
        )
        store.con.execute(
            "INSERT INTO tags (chain, address, label, category, jurisdiction, confidence_level, "
            "source, tagpack) VALUES (?, ?, 'Bench Exchange', 'exchange', 'EE', 90, 'bench', "
            "'bench')",
            [CHAIN, exchange],
        )
    with open_operation(home, "ivo") as ctx:
        case = case_service.open_case(ctx, "Bench", severity="low").number
        case_id = ctx.case(case).id
        for w in range(0, args.addresses, args.per_watch):  # bulk: the service audits one record per watch
            watch = Watch(
                chain=CHAIN,
                case_id=case_id,
                source="addresses",
                created_by="ivo",
                created_at=ctx.now,
                active=True,
                evaluated=True,
            )
            watch.points = [
                WatchPoint(chain=CHAIN, address=a, txid="", n=-1, origin="target")
                for a in watched[w : w + args.per_watch]
            ]
            ctx.session.add(watch)
        ctx.audit("watch.add", "watch", None, case=case, details={"bench": args.addresses})
    watcher = Watcher(home, "ivo")
    feed = Feed()
    watcher.cycle(feed)  # sets the cursor at block 1
    lane_tip = {j: (txid("lanes"), j) for j in range(lanes)}
    lags: list[float] = []
    base: list[float] = []
    alerts = 0
    evaluated: list[int] = []
    with open_operation(home, "ivo") as ctx:
        targets = {w.id: [Point(CHAIN, p.address) for p in w.points] for w in ctx.session.query(Watch).all()}
    for k in range(args.blocks):
        height = k + 2
        txs: list[tuple[str, list[tuple[str, int]], list[tuple[str, int]]]] = [
            (txid(f"cb{height}"), [], [(address("miner"), 50_000)])
        ]
        for j in range(lanes):
            tid = txid(f"t{height}:{j}")
            txs.append(
                (
                    tid,
                    [lane_tip[j]],
                    [(address(f"o{height}:{j}"), 1000), (address(f"lane{j}"), 990_000 - 1000 * k)],
                )
            )
            lane_tip[j] = (tid, 1)
        for m in range(args.moves):
            i = (k * args.moves + m) % len(funding[:-1])
            coin = k * args.moves + m
            source_tx = funding[coin // 1000][0]
            txs.append((txid(f"move{height}:{m}"), [(source_tx, coin % 1000)], [(exchange, 99_000)]))
            del i
        feed.batch = block(height, txs)
        started = time.perf_counter()
        report = watcher.cycle(feed)
        lags.append(time.perf_counter() - started)
        alerts += len(report.alerts)
        evaluated.append(report.evaluated[CHAIN]["watches"])
        console.print(f"block {height}: {len(txs)} txs, lag {lags[-1]:.2f} s, {len(report.alerts)} alerts")
        if k < args.baseline_blocks:
            started = time.perf_counter()
            with ChainStore.open_home(home) as store:
                for watch_id, points in targets.items():
                    evaluate(store, CHAIN, watch_id, points)
            base.append(feed.ingest_seconds + time.perf_counter() - started)
            console.print(f"  baseline: full re-trace of {len(targets)} watches: {base[-1]:.2f} s")
    table = Table(
        title=f"watch run: {args.addresses:,} watched addresses ({len(targets):,} watches), blocks of "
        f"{args.txs:,} transactions, {args.moves} watched coins moved per block"
    )
    for column in ("method", "blocks", "lag median (s)", "lag p99 (s)", "watches traced / block", "alerts"):
        table.add_column(column, justify="right" if column != "method" else "left")
    table.add_row(
        "incremental (index + touched watches)",
        str(len(lags)),
        f"{statistics.median(lags):.2f}",
        f"{p99(lags):.2f}",
        f"{statistics.median(evaluated):.0f}",
        str(alerts),
    )
    if base:
        table.add_row(
            "baseline: full re-trace per block",
            str(len(base)),
            f"{statistics.median(base):.2f}",
            f"{p99(base):.2f}",
            str(len(targets)),
            "-",
        )
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
