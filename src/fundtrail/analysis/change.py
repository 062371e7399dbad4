"""Change-address heuristics over the chain store: the batch driver of :mod:`fundtrail.domain.heuristics`.

Evidence lands in ``change_outputs``: one row per (output, heuristic) with the rule's confidence, and
one row per output with ``heuristic = 'combined'`` holding the combined confidence of all its evidence
(see :func:`fundtrail.domain.heuristics.combine_evidence`). Coinbase transactions and transactions
detected as CoinJoins (``tx_patterns``) get no evidence: in a mix every output belongs to someone else.

The driver evaluates the rules for all transactions at once in DuckDB: per-output facts (is the address
new, does it pay an input address, is the value round, ...) and per-transaction counts of them, with the
same semantics as the single-transaction rules; a test checks that both agree.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from fundtrail.analysis.coinjoin import ensure_patterns, has_table
from fundtrail.domain.chains import get_chain
from fundtrail.domain.heuristics import COMBINED, ChangeParams, ChangeRule, CombinedChange
from fundtrail.store import schema
from fundtrail.store.chainstore import ChainStore

log = logging.getLogger(__name__)

CHANGE_OUTPUTS_COLUMNS = ("chain VARCHAR NOT NULL, txid VARCHAR NOT NULL, height BIGINT NOT NULL, "
                          "n INTEGER NOT NULL, address_id BIGINT, heuristic VARCHAR NOT NULL, "
                          "confidence DOUBLE NOT NULL")
schema.register_table("change_outputs", CHANGE_OUTPUTS_COLUMNS)

_STATE_KEY = "analysis:change:{chain}"
_POS = 4_194_304  # orders transactions by (height, tx_index): tx_index < 2**22


def ensure_table(store: ChainStore) -> None:
    """Create ``change_outputs`` if the store was opened before this module was imported."""
    store.con.execute(f"CREATE TABLE IF NOT EXISTS change_outputs ({CHANGE_OUTPUTS_COLUMNS})")


@dataclass(frozen=True, slots=True)
class ChangeReport:
    """What :func:`detect_change` found on a chain."""

    chain: str
    outputs: int
    """Outputs with any evidence."""
    by_rule: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document."""
        return {"chain": self.chain, "outputs": self.outputs, "by_rule": dict(self.by_rule),
                "seconds": round(self.seconds, 3)}


_FACTS_SQL = """
CREATE OR REPLACE TEMP TABLE _chg_facts AS
WITH pos AS (SELECT txid, height, height * {pos} + tx_index AS pos, coinbase FROM txs WHERE chain = $c),
     o AS MATERIALIZED (
       SELECT p.pos, p.coinbase, o.txid, o.height, o.n, o.address_id, o.value, o.script_type
       FROM outputs o JOIN pos p USING (txid, height) WHERE o.chain = $c AND o.address_id IS NOT NULL),
     first AS (SELECT address_id, min(pos) AS first_pos FROM o GROUP BY address_id),
     i AS MATERIALIZED (
       SELECT p.pos, i.address_id, i.value, po.script_type
       FROM inputs i JOIN pos p USING (txid, height)
       LEFT JOIN outputs po ON po.chain = $c AND po.txid = i.prev_txid AND po.n = i.prev_n
       WHERE i.chain = $c),
     ia AS (SELECT pos, count(*) AS n_in, count(value) AS n_val, min(value) AS min_in,
                   count(script_type) AS n_typed, min(script_type) AS type_lo, max(script_type) AS type_hi
            FROM i GROUP BY pos),
     spenders AS (SELECT DISTINCT pos, address_id FROM i WHERE address_id IS NOT NULL),
     mixes AS (SELECT DISTINCT p.pos FROM tx_patterns t JOIN pos p USING (txid, height)
               WHERE t.chain = $c AND t.pattern = 'coinjoin'),
     steps AS (SELECT t.txid, t.height, (t.params->>'continuing_n')::INTEGER AS cn,
                      (t.params->>'position')::INTEGER = (t.params->>'length')::INTEGER - 1 AS last
               FROM tx_patterns t WHERE t.chain = $c AND t.pattern = 'peel-chain'),
     peel AS (SELECT DISTINCT p.pos, st.cn, st.last AND EXISTS (
                SELECT 1 FROM inputs sp WHERE sp.chain = $c AND sp.prev_txid = st.txid AND sp.prev_n = st.cn)
                AS chain_end
              FROM steps st JOIN pos p USING (txid, height)),
     facts AS MATERIALIZED (
       SELECT o.pos, o.txid, o.height, o.n, o.address_id,
              s.address_id IS NOT NULL AS reuse,
              f.first_pos = o.pos AS fresh,
              coalesce(ia.n_typed = ia.n_in AND ia.type_lo = ia.type_hi AND o.script_type = ia.type_lo,
                       false) AS typed,
              NOT (o.value > 0 AND o.value % $round = 0) AS odd,
              coalesce(ia.n_val = ia.n_in AND o.value < ia.min_in, false) AS below,
              coalesce(pl.cn = o.n AND ia.n_in = 1 AND (ia.n_typed = 0 OR o.script_type = ia.type_lo),
                       false) AS peel,
              coalesce(pl.chain_end, false) AS peel_end
       FROM o JOIN ia USING (pos) JOIN first f USING (address_id)
       LEFT JOIN spenders s ON s.pos = o.pos AND s.address_id = o.address_id
       LEFT JOIN peel pl ON pl.pos = o.pos
       WHERE NOT o.coinbase AND o.pos NOT IN (SELECT pos FROM mixes))
SELECT * FROM facts JOIN (
  SELECT pos, count(*) AS n_out, count_if(fresh) AS n_fresh, count_if(typed) AS n_typed,
         count_if(odd) AS n_odd, count_if(below) AS n_below FROM facts GROUP BY pos) USING (pos)
"""

_EVIDENCE_SQL = """
CREATE OR REPLACE TEMP TABLE _chg_evidence AS
SELECT pos, txid, height, n, address_id, heuristic, confidence FROM (
  SELECT *, '{reuse}' AS heuristic, $c_reuse AS confidence FROM _chg_facts WHERE reuse
  UNION ALL SELECT *, '{one_time}', $c_one_time FROM _chg_facts WHERE fresh AND n_fresh = 1
  UNION ALL SELECT *, '{typed}', $c_typed FROM _chg_facts WHERE typed AND n_typed = 1
  UNION ALL SELECT *, '{round}', $c_round FROM _chg_facts WHERE odd AND n_odd = 1
  UNION ALL SELECT *, '{optimal}', $c_optimal FROM _chg_facts WHERE below AND n_below = 1
  UNION ALL SELECT *, '{peel}', CASE WHEN peel_end THEN $c_peel_end ELSE $c_peel END
            FROM _chg_facts WHERE peel AND n_out = 2
) WHERE n_out >= 2
"""

# support = 1 - prod(1 - c) = 1 - exp(lmiss); an uncertain output scores 0 next to a certain one, else
# it is discounted by prod(1 - support) of the other outputs of its transaction = exp(tx_lmiss - lmiss).
_COMBINED_SQL = """
WITH per AS MATERIALIZED (SELECT pos, n, any_value(txid) AS txid, any_value(height) AS height,
                    any_value(address_id) AS address_id, bool_or(confidence >= 1) AS certain,
                    sum(CASE WHEN confidence < 1 THEN ln(1 - confidence) ELSE 0 END) AS lmiss
             FROM _chg_evidence GROUP BY pos, n),
     tx AS (SELECT pos, sum(CASE WHEN certain THEN 0 ELSE lmiss END) AS tx_lmiss,
                   bool_or(certain) AS any_certain FROM per GROUP BY pos)
SELECT $c, txid, height, n, address_id, '{combined}',
       CASE WHEN certain THEN 1.0 WHEN any_certain THEN 0.0
            ELSE (1 - exp(lmiss)) * exp(tx_lmiss - lmiss) END
FROM per JOIN tx USING (pos)
"""


def detect_change(store: ChainStore, chain: str, params: ChangeParams = ChangeParams()) -> ChangeReport:
    """Evaluate every change rule on ``chain``; replaces its ``change_outputs`` rows.

    Runs pattern detection first unless it is current (CoinJoins are skipped, peel chains are evidence).
    Account chains have no change outputs: their rows are cleared.
    """
    started = time.perf_counter()
    ensure_table(store)
    con = store.con
    utxo = get_chain(chain).is_utxo
    if utxo:
        ensure_patterns(store, chain)
        con.execute(_FACTS_SQL.format(pos=_POS), {"c": chain, "round": 10**params.round_zeros})
        con.execute(
            _EVIDENCE_SQL.format(reuse=ChangeRule.ADDRESS_REUSE.value,
                                 one_time=ChangeRule.ONE_TIME_CHANGE.value,
                                 typed=ChangeRule.ADDRESS_TYPE.value, round=ChangeRule.ROUND_NUMBER.value,
                                 optimal=ChangeRule.OPTIMAL_CHANGE.value, peel=ChangeRule.PEEL_CHAIN.value),
            {"c_reuse": params.reuse_confidence, "c_one_time": params.one_time_confidence,
             "c_typed": params.address_type_confidence, "c_round": params.round_confidence,
             "c_optimal": params.optimal_confidence, "c_peel": params.peel_confidence,
             "c_peel_end": params.peel_end_confidence})
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM change_outputs WHERE chain = ?", [chain])
        if utxo:
            con.execute("INSERT INTO change_outputs SELECT $c, txid, height, n, address_id, heuristic, "
                        "confidence FROM _chg_evidence", {"c": chain})
            con.execute("INSERT INTO change_outputs " + _COMBINED_SQL.format(combined=COMBINED), {"c": chain})
        con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [_STATE_KEY.format(chain=chain),
                                                                  _state(store, chain)])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute("DROP TABLE IF EXISTS _chg_facts")
        con.execute("DROP TABLE IF EXISTS _chg_evidence")
    by_rule = dict(con.execute("SELECT heuristic, count(*) FROM change_outputs WHERE chain = ? "
                               "GROUP BY heuristic ORDER BY heuristic", [chain]).fetchall())
    report = ChangeReport(chain, int(by_rule.pop(COMBINED, 0)), by_rule, time.perf_counter() - started)
    log.info("change on %s: %d outputs with evidence in %.2fs", chain, report.outputs, report.seconds)
    return report


def _state(store: ChainStore, chain: str) -> str:
    from fundtrail.analysis.coinjoin import chain_state

    return chain_state(store, chain)


def change_current(store: ChainStore, chain: str) -> bool:
    """True when :func:`detect_change` ran on the chain as it is stored now."""
    rows = store.con.execute("SELECT value FROM meta WHERE key = ?",
                             [_STATE_KEY.format(chain=chain)]).fetchall()
    return bool(rows) and rows[0][0] == _state(store, chain)


def ensure_change(store: ChainStore, chain: str) -> ChangeReport | None:
    """Run :func:`detect_change` unless it already ran on the chain as stored; returns its report if run."""
    ensure_table(store)
    if change_current(store, chain):
        return None
    return detect_change(store, chain)


def change_for(store: ChainStore, chain: str, txid: str) -> list[CombinedChange]:
    """The combined change evidence of one transaction's outputs, with the rules behind each, by output."""
    if not has_table(store, "change_outputs"):
        return []
    rows = store.con.execute(
        "SELECT n, heuristic, confidence FROM change_outputs WHERE chain = ? AND txid = ? "
        "ORDER BY n, heuristic", [chain, txid]).fetchall()
    order = list(ChangeRule)
    rules: dict[int, list[ChangeRule]] = {}
    combined: dict[int, float] = {}
    for n, heuristic, confidence in rows:
        if heuristic == COMBINED:
            combined[n] = confidence
        else:
            rules.setdefault(n, []).append(ChangeRule(heuristic))
    return [CombinedChange(n, combined.get(n, 0.0), tuple(sorted(rules.get(n, []), key=order.index)))
            for n in sorted(set(rules) | set(combined))]
