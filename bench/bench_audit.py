"""Benchmark: what the signed Merkle audit log costs case work, and how fast a whole log verifies.

1. ``--ops`` audited case reads (``cases.show_case``, one transaction each, on the embedded SQLite case
   database), with a signed tree head per transaction, against the same reads with the head signing and
   the state check switched off (the baseline: appending a hash-chained record only), in the same run,
   interleaved in rounds so that machine noise hits both alike. Target: under 1 ms added per operation.
2. ``fundtrail audit verify`` (:func:`fundtrail.audit.log.verify_database`) of a log of ``--records``
   records with a signed head every ``--per-head`` records, written straight into the database. Target:
   1M records under 60 s. The baseline is the plain SHA-256 of every record's leaf, in the same run.

    .venv/bin/python bench/bench_audit.py --ops 10000 --records 1000000
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import event, insert
from sqlalchemy.orm import Session

from fundtrail.audit import log as audit_log
from fundtrail.audit.keys import load_or_create
from fundtrail.audit.verifier import RECORD_FIELDS, Frontier, head_payload, leaf_hash, record_leaf
from fundtrail.cases import cases
from fundtrail.cases.context import operation
from fundtrail.cases.db import CaseDB
from fundtrail.cases.models import AuditHead, AuditRecord, AuditTreeHead
from fundtrail.cases.testing import seed_users


def _reads(db: CaseDB, number: str, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        with operation(db, "ivo") as ctx:
            cases.show_case(ctx, number, reason="benchmark")
    return (time.perf_counter() - start) / n * 1000


class _Unsigned:
    """Switch the signed heads off: the baseline appends hash-chained records only."""

    def __enter__(self) -> None:
        event.remove(Session, "before_commit", audit_log._seal)
        self._check = audit_log._check_state
        audit_log._check_state = lambda session, head, key: Frontier()  # appends only: no tree kept

    def __exit__(self, *exc: object) -> None:
        audit_log._check_state = self._check
        event.listen(Session, "before_commit", audit_log._seal)


def bench_reads(root: Path, ops: int, rounds: int) -> tuple[list[float], list[float]]:
    """Milliseconds per audited read, with and without signed heads, per round."""
    home = root / "reads"
    db = CaseDB.open(home)
    seed_users(db)
    with operation(db, "ivo") as ctx:
        number = cases.open_case(ctx, "Benchmark").number
    signed, unsigned = [], []
    per_round = max(1, ops // rounds)
    _reads(db, number, 50)  # warm up
    for _ in range(rounds):
        signed.append(_reads(db, number, per_round))
        with _Unsigned():
            unsigned.append(_reads(db, number, per_round))
        _sign_current(db)  # bring the baseline's records under a signed head before the next round
    if not audit_log.verify_database(db).intact:
        raise SystemExit("the audit log of the read benchmark does not verify")
    db.close()
    return signed, unsigned


def _sign_current(db: CaseDB) -> None:
    """Sign the log as it stands (the baseline rounds appended records without heads)."""
    with operation(db, None, user_required=False) as ctx:
        head = audit_log._lock_head(ctx.session)
        frontier = Frontier()
        for row in audit_log._rows(ctx.session):
            frontier.append(leaf_hash(record_leaf(dict(zip(audit_log._NAMES, row[:10], strict=True)))))
        ctx.session.info[audit_log._PENDING] = audit_log._Pending(ctx.key, frontier, head)


def build_log(root: Path, n: int, per_head: int) -> CaseDB:
    """A case database whose audit log holds ``n`` records and a signed head every ``per_head``."""
    home = root / "log"
    db = CaseDB.open(home)
    key = load_or_create(home)
    frontier = Frontier()
    prev = "0" * 64
    batch: list[dict[str, object]] = []
    heads: list[dict[str, object]] = []
    with db.engine.begin() as conn:
        for seq in range(1, n + 1):
            rec = {
                "seq": seq,
                "at": f"2026-12-01T00:00:00.{seq % 1000000:06d}Z",
                "actor": "ivo",
                "action": "case.read",
                "object_type": "case",
                "object_id": str(seq % 97),
                "case_number": "EE-2026-0001",
                "reason": "benchmark",
                "details": f'{{"n":{seq}}}',
                "prev_hash": prev,
            }
            leaf = record_leaf(rec)
            prev = hashlib.sha256(leaf).hexdigest()
            batch.append({**rec, "hash": prev})
            frontier.append(leaf_hash(leaf))
            if seq % per_head == 0 or seq == n:
                root_hex = frontier.root().hex()
                ts = f"2026-12-01T01:{seq // 60000 % 60:02d}:{seq // 1000 % 60:02d}.{seq % 1000:03d}000Z"
                sig = key.sign(head_payload(seq, root_hex, ts, key.key_id))
                heads.append(
                    {
                        "tree_size": seq,
                        "root_hash": root_hex,
                        "timestamp": ts,
                        "key_id": key.key_id,
                        "signature": sig,
                    }
                )
            if len(batch) >= 20000:
                conn.execute(insert(AuditRecord), batch)
                batch.clear()
        if batch:
            conn.execute(insert(AuditRecord), batch)
        conn.execute(insert(AuditTreeHead), heads)
        conn.execute(
            AuditHead.__table__.update()
            .where(AuditHead.id == 1)
            .values(seq=n, hash=prev, signed_seq=n, frontier=frontier.dump())
        )
    return db


def bench_verify(root: Path, n: int, per_head: int) -> tuple[float, float, bool]:
    """Seconds to verify the log, seconds to hash its leaves plainly, and whether it verified."""
    db = build_log(root, n, per_head)
    start = time.perf_counter()
    result = audit_log.verify_database(db)
    verify_s = time.perf_counter() - start
    start = time.perf_counter()
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            f"SELECT {', '.join(RECORD_FIELDS)} FROM audit_records ORDER BY seq"
        )
        names = RECORD_FIELDS
        for r in rows:
            hashlib.sha256(record_leaf(dict(zip(names, r, strict=True)))).digest()
    baseline_s = time.perf_counter() - start
    db.close()
    return verify_s, baseline_s, result.intact


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--per-head", type=int, default=10)
    args = parser.parse_args(argv)
    console = Console()
    with tempfile.TemporaryDirectory(prefix="fundtrail-bench-audit-") as tmp:
        root = Path(tmp)
        signed, unsigned = bench_reads(root, args.ops, args.rounds)
        verify_s, baseline_s, intact = bench_verify(root, args.records, args.per_head)
    s, u = statistics.median(signed), statistics.median(unsigned)
    table = Table(title="Audit log: signed tree heads and verification (2 cores, shared)")
    for col in ("measure", "result", "target", "baseline in the same run"):
        table.add_column(col)
    table.add_row(
        f"audited case read, {args.ops:,} ops in {args.rounds} rounds (median ms/op)",
        f"{s:.2f} ms with a signed head per transaction (+{s - u:.2f} ms, {s / u:.2f}x)",
        "under 1 ms added",
        f"{u:.2f} ms appending hash-chained records only",
    )
    table.add_row(
        f"audit verify, {args.records:,} records, a head every {args.per_head}",
        f"{verify_s:.1f} s ({args.records / verify_s:,.0f} records/s){'' if intact else ' NOT INTACT'}",
        "under 60 s",
        f"{baseline_s:.1f} s to read and hash every leaf ({verify_s / baseline_s:.1f}x)",
    )
    console.print(table)
    ok = intact and (s - u) < 1.0 and verify_s < 60
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
