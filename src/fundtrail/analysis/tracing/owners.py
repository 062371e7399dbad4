"""Which steps stay inside one owner: the rules by which a spend uses no owner hop.

A UTXO output stays with its transaction's sender when it is the continuing output of a detected peel
chain (``tx_patterns``, the chain's next step spends it), when it is taken as the sender's change
(combined confidence of ``change_outputs`` >= :data:`fundtrail.analysis.graph.CHANGE_CONFIDENCE`, or
it pays an address that funded the transaction), or when its address is in the co-spend cluster of one
of the transaction's input addresses (``clusters``). On account chains a transfer stays inside one owner
when sender and receiver share a cluster.
"""

from __future__ import annotations

import numpy as np

from fundtrail.analysis.graph import UtxoGraph
from fundtrail.analysis.tracing.attribution import AttributionIndex

NONE, PEEL_CHAIN, CHANGE, CLUSTER = 0, 1, 2, 3
RULE_NAMES = {PEEL_CHAIN: "peel_chain", CHANGE: "change", CLUSTER: "cluster"}
"""Same-owner rule codes and their names in the trace document (``same_owner``)."""
RULE_EVIDENCE = {
    PEEL_CHAIN: "same owner: the next step of a detected peel chain (no hop)",
    CHANGE: "same owner: the sender's change (no hop)",
    CLUSTER: "same owner: an address of the sender's co-spend cluster (no hop)",
}


_FEW = 16
"""Up to this many outputs, :func:`pays_a_funder` looks at each output's inputs in Python (fewer calls)."""


def _pair_keys(a: np.ndarray, b: np.ndarray, width: int) -> np.ndarray:
    return a.astype(np.int64) * np.int64(width) + b.astype(np.int64)


def pays_a_funder(g: UtxoGraph, rows: np.ndarray) -> np.ndarray:
    """Outputs paying back to an address that funded the same transaction (address reuse)."""
    if len(rows) == 0:
        return np.zeros(0, dtype=bool)
    if len(rows) <= _FEW:  # a few outputs: look at their transactions' inputs directly
        ptr, in_addr = g.tx_in_ptr, g.in_addr
        found = []
        for tx, addr in zip(g.out_tx[rows].tolist(), g.out_addr[rows].tolist(), strict=True):
            found.append(addr >= 0 and addr in in_addr[ptr[tx]:ptr[tx + 1]].tolist())
        return np.array(found, dtype=bool)
    txs = np.unique(g.out_tx[rows])
    in_rows = g.inputs_of(txs)
    width = max(len(g.addr_degree), 1) + 1
    funded = g.in_addr[in_rows] >= 0
    in_keys = _pair_keys(g.in_tx[in_rows][funded], g.in_addr[in_rows][funded], width)
    out_keys = _pair_keys(g.out_tx[rows], g.out_addr[rows], width)
    return np.asarray((g.out_addr[rows] >= 0) & np.isin(out_keys, in_keys))


def _in_sender_cluster(g: UtxoGraph, att: AttributionIndex, rows: np.ndarray) -> np.ndarray:
    """Outputs whose address shares a co-spend cluster with an input address of their transaction."""
    out_cluster = att.cluster_ids(g.out_addr[rows])
    hit = np.zeros(len(rows), dtype=bool)
    if not (out_cluster >= 0).any():
        return hit
    txs = np.unique(g.out_tx[rows])
    in_rows = g.inputs_of(txs)
    in_cluster = att.cluster_ids(g.in_addr[in_rows])
    known = in_cluster >= 0
    width = int(max(out_cluster.max(initial=0), in_cluster.max(initial=0))) + 1
    in_keys = _pair_keys(g.in_tx[in_rows][known], in_cluster[known], width)
    clustered = out_cluster >= 0
    out_keys = _pair_keys(g.out_tx[rows][clustered], out_cluster[clustered], width)
    hit[clustered] = np.isin(out_keys, in_keys)
    return hit


def same_owner_rules(g: UtxoGraph, att: AttributionIndex, rows: np.ndarray) -> np.ndarray:
    """Per output row, the rule code that keeps it with its transaction's sender (``NONE``: a hand-over).

    Outputs of CoinJoins and coinbase transactions belong to others: always ``NONE``.
    """
    rows = np.asarray(rows, dtype=np.int64)
    code = np.zeros(len(rows), dtype=np.int8)
    if len(rows) == 0:
        return code
    code[_in_sender_cluster(g, att, rows)] = CLUSTER
    change = pays_a_funder(g, rows)
    if g.out_is_change is not None:
        change |= g.out_is_change[rows]
    code[change] = CHANGE
    if g.out_peel is not None:
        code[g.out_peel[rows]] = PEEL_CHAIN
    tx = g.out_tx[rows]
    code[g.tx_coinjoin[tx] | g.tx_coinbase[tx] | (g.out_addr[rows] < 0)] = NONE
    return code


def same_cluster(att: AttributionIndex, a: int, b: int) -> bool:
    """Account chains: whether two addresses share a cluster."""
    if a < 0 or b < 0 or a == b:
        return a == b and a >= 0
    found = att.cluster_ids(np.array([a, b], dtype=np.int64))
    return bool(found[0] >= 0 and found[0] == found[1])
