"""Peel-chain detection: runs of 1-in/2-out transactions, each peeling off a small payment.

A *step* is a transaction with one input and two addressed outputs whose smaller output (the payment)
carries at most ``max_payment_share`` of the two. A step *continues* another step when it spends that
step's larger output and carries the same wallet fingerprint: the spent coins have one script type, the
inputs one ``nSequence`` (RBF signalling), the transactions one version, and both set ``nLockTime`` or
neither (anti-fee-sniping). A peel chain is one wallet spending its remainder again and again, so these
stay constant along it; where they change, the larger output went to another wallet (a payee who got
more than half of a coin and spent it the same way) and the chain ends there. Kappos et al. (2022, "How
to Peel a Million") use such wallet fingerprints to tell the change of peel chains. Unknown fields
(``NULL``) match anything. Since a step has one input and its larger output can be spent once, steps
form simple paths; each path of at least ``min_length`` steps is a peel chain. Every step of such a
chain is written to ``tx_patterns`` (pattern and rule ``peel-chain``) with params ``chain_id`` (the txid
of the first step), ``position`` (0-based), ``length``, ``payment_n``/``payment_value`` and
``continuing_n``/``continuing_value``.

Positions along the paths are computed on numpy arrays by pointer jumping (list ranking), so the work is
a few vectorised passes, logarithmic in the longest chain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from fundtrail.analysis.coinjoin import ensure_table
from fundtrail.store.chainstore import ChainStore


@dataclass(frozen=True)
class PeelChains:
    """Peel-chain steps found on a chain, as arrays over the rows of temp table ``_peel_steps``."""

    step: np.ndarray       # row index in _peel_steps
    root: np.ndarray       # row index of the chain's first step
    position: np.ndarray
    length: np.ndarray
    chains: int
    min_length: int

    @property
    def steps(self) -> int:
        """Number of steps in chains of at least ``min_length``."""
        return int(len(self.step))


def rank_paths(pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a forest of simple paths given by predecessor indices (-1 at heads): (head, position) of each node.

    Wyllie's pointer jumping: each pass doubles the distance every node looks back.
    """
    n = len(pred)
    idx = np.arange(n, dtype=np.int64)
    anc = pred.astype(np.int64, copy=True)
    dist = (anc >= 0).astype(np.int64)
    head = np.where(anc >= 0, anc, idx)
    while True:
        live = anc >= 0
        if not live.any():
            break
        a = anc[live]
        new_dist = dist.copy()
        new_dist[live] = dist[live] + dist[a]
        new_anc = anc.copy()
        new_anc[live] = anc[a]
        dist, anc = new_dist, new_anc
    while True:
        nxt = head[head]
        if np.array_equal(nxt, head):
            break
        head = nxt
    return head, dist


_FINGERPRINT = ("in_type", "sequence", "version", "locked")
"""Columns of ``_peel_steps`` that stay constant along one wallet's peel chain (see the module doc)."""

_SAME_WALLET = " AND ".join(f"(p.{f} IS NULL OR s.{f} IS NULL OR p.{f} = s.{f})" for f in _FINGERPRINT)


def find_peel_chains(store: ChainStore, chain: str, *, min_length: int = 3,
                     max_payment_share: float = 0.5) -> PeelChains:
    """Find peel chains of at least ``min_length`` steps; leaves the steps in temp table ``_peel_steps``."""
    con = store.con
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _peel_steps AS
           WITH ins AS (SELECT txid, height, any_value(prev_txid) AS prev_txid, any_value(prev_n) AS prev_n,
                               any_value(sequence) AS sequence
                        FROM inputs WHERE chain = $c GROUP BY txid, height HAVING count(*) = 1),
                outs AS (SELECT txid, height, min(value) AS small, max(value) AS big,
                                arg_min(n, value) AS small_n, arg_max(n, value) AS big_n
                         FROM outputs WHERE chain = $c GROUP BY txid, height
                         HAVING count(*) = 2 AND count(address_id) = 2),
                steps AS (SELECT o.txid, o.height, i.prev_txid, i.prev_n, o.small, o.big, o.small_n, o.big_n,
                                 po.script_type AS in_type, i.sequence, t.version, t.locktime <> 0 AS locked
                          FROM outs o JOIN ins i USING (txid, height)
                          JOIN txs t ON t.chain = $c AND t.txid = o.txid AND t.height = o.height
                          LEFT JOIN outputs po ON po.chain = $c AND po.txid = i.prev_txid AND po.n = i.prev_n
                          WHERE o.small < o.big AND o.small <= $share * (o.small + o.big))
           SELECT (row_number() OVER (ORDER BY height, txid) - 1)::BIGINT AS idx, * FROM steps""",
        {"c": chain, "share": max_payment_share})
    links = con.execute(
        """SELECT s.idx, coalesce(p.idx, -1) AS pred FROM _peel_steps s
           LEFT JOIN _peel_steps p ON p.txid = s.prev_txid AND p.big_n = s.prev_n AND p.height <= s.height
                AND """ + _SAME_WALLET + """
           ORDER BY s.idx""").fetchnumpy()
    pred = np.asarray(links["pred"], dtype=np.int64)
    head, position = rank_paths(pred)
    length = np.bincount(head, minlength=len(pred))[head] if len(pred) else np.zeros(0, np.int64)
    keep = length >= min_length
    return PeelChains(step=np.flatnonzero(keep), root=head[keep], position=position[keep],
                      length=length[keep], chains=int(np.count_nonzero(keep & (position == 0))),
                      min_length=min_length)


def insert_peel_rows(store: ChainStore, chain: str, peel: PeelChains) -> None:
    """Insert the steps of ``peel`` into ``tx_patterns`` (inside the caller's transaction)."""
    ensure_table(store)
    con = store.con
    table = pa.table({"idx": pa.array(peel.step, pa.int64()), "root": pa.array(peel.root, pa.int64()),
                      "position": pa.array(peel.position, pa.int64()),
                      "length": pa.array(peel.length, pa.int64())})
    con.register("_peel_rows", table)
    try:
        con.execute(
            """INSERT INTO tx_patterns
               SELECT $c, s.txid, s.height, 'peel-chain', 'peel-chain',
                      least(0.95, 0.5 + 0.05 * r.length),
                      json_object('chain_id', h.txid, 'position', r.position, 'length', r.length,
                                  'payment_n', s.small_n, 'payment_value', s.small::VARCHAR,
                                  'continuing_n', s.big_n, 'continuing_value', s.big::VARCHAR,
                                  'min_length', $k::INTEGER)
               FROM _peel_rows r JOIN _peel_steps s ON s.idx = r.idx JOIN _peel_steps h ON h.idx = r.root""",
            {"c": chain, "k": peel.min_length})
    finally:
        con.unregister("_peel_rows")
        con.execute("DROP TABLE IF EXISTS _peel_steps")
