"""CoinJoin and mixer detection over the chain store.

Detected transactions land in the ``tx_patterns`` table, one row per rule that fired, with the rule's
parameters and the facts that made it fire as JSON. ``pattern`` is ``coinjoin`` (a mix: a trace cannot
see through it), ``coinjoin-premix`` (a Whirlpool Tx0 feeding a pool: deterministic, a trace may follow
it) or ``peel-chain`` (found by :mod:`fundtrail.analysis.peel`). Readers that only need to know whether a
transaction is a mix ask for ``pattern = 'coinjoin'``.

The single-transaction rules live in :mod:`fundtrail.domain.patterns`; this module pre-filters candidate
transactions in SQL (equal-value outputs, many inputs and outputs, ``OP_RETURN`` with a premix-like
value), builds :class:`~fundtrail.domain.heuristics.TxView` objects for those only, and classifies them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from fundtrail.domain.chains import get_chain
from fundtrail.domain.heuristics import TxInput, TxOutput, TxView
from fundtrail.domain.patterns import (
    MIXER_PATTERNS,
    Pattern,
    PatternMatch,
    PatternParams,
    classify_tx,
)
from fundtrail.store import schema
from fundtrail.store.chainstore import ChainStore

log = logging.getLogger(__name__)

TX_PATTERNS_COLUMNS = ("chain VARCHAR NOT NULL, txid VARCHAR NOT NULL, height BIGINT NOT NULL, "
                       "pattern VARCHAR NOT NULL, rule VARCHAR NOT NULL, confidence DOUBLE NOT NULL, "
                       "params JSON")
schema.register_table("tx_patterns", TX_PATTERNS_COLUMNS)

_STATE_KEY = "analysis:patterns:{chain}"


def ensure_table(store: ChainStore) -> None:
    """Create ``tx_patterns`` if the store was opened before this module was imported."""
    store.con.execute(f"CREATE TABLE IF NOT EXISTS tx_patterns ({TX_PATTERNS_COLUMNS})")


def has_table(store: ChainStore, name: str) -> bool:
    """True when the store holds table ``name`` (a read-only store may predate a registered table)."""
    rows = store.con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                             [name]).fetchall()
    return bool(rows[0][0])


def chain_state(store: ChainStore, chain: str) -> str:
    """A token that changes whenever the stored chain changes (tip height and hash)."""
    rows = store.con.execute("SELECT height, hash FROM blocks WHERE chain = ? ORDER BY height DESC LIMIT 1",
                             [chain]).fetchall()
    return f"{rows[0][0]}:{rows[0][1]}" if rows else "empty"


def patterns_current(store: ChainStore, chain: str) -> bool:
    """True when :func:`detect_patterns` ran on the chain as it is stored now."""
    rows = store.con.execute("SELECT value FROM meta WHERE key = ?",
                             [_STATE_KEY.format(chain=chain)]).fetchall()
    return bool(rows) and rows[0][0] == chain_state(store, chain)


@dataclass(frozen=True, slots=True)
class DetectedTx:
    """One rule that fired on one stored transaction."""

    txid: str
    height: int
    match: PatternMatch


@dataclass(frozen=True, slots=True)
class PatternReport:
    """What :func:`detect_patterns` found on a chain."""

    chain: str
    candidates: int
    coinjoins: int
    premixes: int
    peel_chains: int
    peel_steps: int
    by_rule: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document."""
        return {"chain": self.chain, "candidates": self.candidates, "coinjoins": self.coinjoins,
                "premixes": self.premixes, "peel_chains": self.peel_chains, "peel_steps": self.peel_steps,
                "by_rule": dict(self.by_rule), "seconds": round(self.seconds, 3)}


@dataclass(frozen=True, slots=True)
class MixerInteraction:
    """An address sending into (``in``) or receiving from (``out``) a mixing transaction."""

    txid: str
    height: int
    pattern: str
    rule: str
    confidence: float
    direction: str
    address_id: int
    value: int


def _candidate_sql(p: PatternParams) -> str:
    premix = " OR ".join(
        f"(value > {pool} AND value <= {pool + max(int(pool * p.tx0_max_fee_share), 20_000)})"
        for pool in p.whirlpool_pools) or "false"
    return f"""
        WITH o AS (SELECT txid, height, value, script_type FROM outputs WHERE chain = $c),
             vc AS (SELECT txid, height, value, count(*) AS k FROM o WHERE script_type <> 'nulldata'
                    GROUP BY txid, height, value),
             ot AS (SELECT txid, height, max(k) AS max_equal, sum(k) AS n_out,
                           bool_or({premix}) AS premix_like FROM vc GROUP BY txid, height),
             nd AS (SELECT DISTINCT txid, height FROM o WHERE script_type = 'nulldata'),
             it AS (SELECT txid, height, count(*) AS n_in FROM inputs WHERE chain = $c GROUP BY txid, height)
        SELECT ot.txid, ot.height FROM ot JOIN it USING (txid, height)
        WHERE (ot.max_equal >= {p.min_equal} AND it.n_in >= {p.min_equal})
           OR (it.n_in >= {p.wabisabi_min_inputs} AND ot.n_out >= {p.wabisabi_min_outputs})
           OR (ot.premix_like AND ot.n_out >= 2 AND EXISTS (
                 SELECT 1 FROM nd WHERE nd.txid = ot.txid AND nd.height = ot.height))"""


def load_views(store: ChainStore, chain: str, table: str) -> dict[tuple[str, int], TxView]:
    """TxViews of the transactions named in temp table ``table(txid, height)``, keyed by (txid, height)."""
    con = store.con
    ins = con.execute(
        f"""SELECT i.txid, i.height, i.n, i.address, i.value::HUGEINT, po.script_type
            FROM inputs i JOIN {table} c ON c.txid = i.txid AND c.height = i.height
            LEFT JOIN outputs po ON po.chain = $c AND po.txid = i.prev_txid AND po.n = i.prev_n
            WHERE i.chain = $c ORDER BY i.txid, i.height, i.n""", {"c": chain}).fetchall()
    outs = con.execute(
        f"""SELECT o.txid, o.height, o.n, o.address, o.value::HUGEINT, o.script_type
            FROM outputs o JOIN {table} c ON c.txid = o.txid AND c.height = o.height
            WHERE o.chain = $c ORDER BY o.txid, o.height, o.n""", {"c": chain}).fetchall()
    coinbase = dict(((t, h), cb) for t, h, cb in con.execute(
        f"""SELECT t.txid, t.height, t.coinbase FROM txs t JOIN {table} c ON c.txid = t.txid
            AND c.height = t.height WHERE t.chain = $c""", {"c": chain}).fetchall())
    inputs: dict[tuple[str, int], list[TxInput]] = {}
    outputs: dict[tuple[str, int], list[TxOutput]] = {}
    for txid, height, _n, address, value, script_type in ins:
        inputs.setdefault((txid, height), []).append(
            TxInput(address, None if value is None else int(value), script_type))
    for txid, height, n, address, value, script_type in outs:
        outputs.setdefault((txid, height), []).append(TxOutput(n, address, int(value), script_type))
    return {key: TxView(key[0], tuple(inputs.get(key, ())), tuple(outputs.get(key, ())),
                        bool(coinbase.get(key, False)))
            for key in outputs}


def find_coinjoins(store: ChainStore, chain: str, params: PatternParams = PatternParams()
                   ) -> tuple[list[DetectedTx], int]:
    """Every CoinJoin rule that fires on a stored transaction of ``chain``, and the number of candidates."""
    con = store.con
    con.execute(f"CREATE OR REPLACE TEMP TABLE _cj_candidates AS {_candidate_sql(params)}", {"c": chain})
    try:
        candidates = int(con.execute("SELECT count(*) FROM _cj_candidates").fetchall()[0][0])
        views = load_views(store, chain, "_cj_candidates") if candidates else {}
    finally:
        con.execute("DROP TABLE IF EXISTS _cj_candidates")
    found = [DetectedTx(txid, height, m)
             for (txid, height), view in sorted(views.items(), key=lambda kv: (kv[0][1], kv[0][0]))
             for m in classify_tx(view, params)]
    return found, candidates


def _params_json(params: Any) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def detect_patterns(store: ChainStore, chain: str, params: PatternParams = PatternParams(), *,
                    peel_min_length: int = 3, peel_max_payment_share: float = 0.5) -> PatternReport:
    """Detect CoinJoins, Whirlpool premixes and peel chains on ``chain``; replaces its ``tx_patterns`` rows.

    Account chains have none of these patterns (mixers there are contracts, recognised by attribution),
    so their rows are simply cleared.
    """
    from fundtrail.analysis.peel import find_peel_chains, insert_peel_rows

    started = time.perf_counter()
    ensure_table(store)
    con = store.con
    utxo = get_chain(chain).is_utxo
    found, candidates = find_coinjoins(store, chain, params) if utxo else ([], 0)
    peel = find_peel_chains(store, chain, min_length=peel_min_length,
                            max_payment_share=peel_max_payment_share) if utxo else None
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM tx_patterns WHERE chain = ?", [chain])
        if found:
            rows = pa.table({
                "txid": [d.txid for d in found], "height": pa.array([d.height for d in found], pa.int64()),
                "pattern": [d.match.pattern.value for d in found],
                "rule": [d.match.rule.value for d in found],
                "confidence": pa.array([d.match.confidence for d in found], pa.float64()),
                "params": [_params_json(d.match.params) for d in found]})
            con.register("_cj_rows", rows)
            try:
                con.execute("INSERT INTO tx_patterns SELECT $c, txid, height, pattern, rule, confidence, "
                            "params::JSON FROM _cj_rows", {"c": chain})
            finally:
                con.unregister("_cj_rows")
        if peel is not None:
            insert_peel_rows(store, chain, peel)
        con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                    [_STATE_KEY.format(chain=chain), chain_state(store, chain)])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    by_rule: dict[str, int] = {}
    for d in found:
        by_rule[d.match.rule.value] = by_rule.get(d.match.rule.value, 0) + 1
    if peel is not None and peel.steps:
        by_rule["peel-chain"] = peel.steps
    report = PatternReport(
        chain=chain, candidates=candidates,
        coinjoins=len({d.txid for d in found if d.match.pattern is Pattern.COINJOIN}),
        premixes=len({d.txid for d in found if d.match.pattern is Pattern.COINJOIN_PREMIX}),
        peel_chains=peel.chains if peel else 0, peel_steps=peel.steps if peel else 0,
        by_rule=by_rule, seconds=time.perf_counter() - started)
    log.info("patterns on %s: %d coinjoins, %d premixes, %d peel chains (%d steps) in %.2fs", chain,
             report.coinjoins, report.premixes, report.peel_chains, report.peel_steps, report.seconds)
    return report


def ensure_patterns(store: ChainStore, chain: str) -> PatternReport | None:
    """Run :func:`detect_patterns` unless it already ran on the chain as stored; returns its report if run."""
    ensure_table(store)
    if patterns_current(store, chain):
        return None
    return detect_patterns(store, chain)


def list_patterns(store: ChainStore, chain: str, *, pattern: str | None = None, rule: str | None = None,
                  limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]:
    """Detected transactions of ``chain`` (optionally one pattern or rule), by height then txid."""
    if not has_table(store, "tx_patterns"):
        return []
    sql = ("SELECT txid, height, pattern, rule, confidence, params FROM tx_patterns WHERE chain = $c"
           + (" AND pattern = $p" if pattern else "") + (" AND rule = $r" if rule else "")
           + " ORDER BY height, txid, pattern, rule"
           + (f" LIMIT {int(limit)}" if limit is not None else "") + f" OFFSET {int(offset)}")
    args: dict[str, Any] = {"c": chain}
    if pattern:
        args["p"] = pattern
    if rule:
        args["r"] = rule
    return [{"txid": t, "height": h, "pattern": p, "rule": r, "confidence": c,
             "params": json.loads(j) if j else {}}
            for t, h, p, r, c, j in store.con.execute(sql, args).fetchall()]


def coinjoin_txids(store: ChainStore, chain: str) -> set[str]:
    """Txids of ``chain`` detected as mixes (``pattern = 'coinjoin'``)."""
    if not has_table(store, "tx_patterns"):
        return set()
    return {r[0] for r in store.con.execute(
        "SELECT DISTINCT txid FROM tx_patterns WHERE chain = ? AND pattern = 'coinjoin'", [chain]).fetchall()}


def mixer_interactions(store: ChainStore, chain: str, address_ids: Iterable[int]) -> list[MixerInteraction]:
    """Every mixing transaction (CoinJoin or premix) that the given addresses sent into or received from.

    One entry per (transaction, rule, direction, address): ``in`` when the address funded the mix with
    ``value`` base units, ``out`` when it received ``value`` from it. Ordered by height, txid, rule.
    """
    ids = sorted({int(a) for a in address_ids})
    if not ids or not has_table(store, "tx_patterns"):
        return []
    patterns = [p.value for p in MIXER_PATTERNS]
    rows = store.con.execute(
        """WITH ids AS (SELECT unnest($ids::BIGINT[]) AS id),
                mix AS (SELECT txid, height, pattern, rule, confidence FROM tx_patterns
                        WHERE chain = $c AND list_contains($patterns, pattern)),
                flows AS (
                  SELECT i.txid, i.height, 'in' AS direction, i.address_id, sum(i.value)::HUGEINT AS value
                  FROM inputs i JOIN ids ON ids.id = i.address_id
                  WHERE i.chain = $c AND i.txid IN (SELECT txid FROM mix)
                  GROUP BY ALL
                  UNION ALL
                  SELECT o.txid, o.height, 'out', o.address_id, sum(o.value)::HUGEINT
                  FROM outputs o JOIN ids ON ids.id = o.address_id
                  WHERE o.chain = $c AND o.txid IN (SELECT txid FROM mix)
                  GROUP BY ALL)
           SELECT m.txid, m.height, m.pattern, m.rule, m.confidence, f.direction, f.address_id, f.value
           FROM mix m JOIN flows f ON f.txid = m.txid AND f.height = m.height
           ORDER BY m.height, m.txid, m.rule, f.direction, f.address_id""",
        {"c": chain, "ids": ids, "patterns": patterns}).fetchall()
    return [MixerInteraction(t, h, p, r, c, d, a, int(v)) for t, h, p, r, c, d, a, v in rows]
