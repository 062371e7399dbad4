"""Peel-chain detection on a small hand-written chain, and the path ranking behind it."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fundtrail.analysis.coinjoin import detect_patterns, list_patterns
from fundtrail.analysis.peel import rank_paths
from fundtrail.store import ChainStore
from fundtrail.testing.utxo import UtxoChain


def peel_chain() -> UtxoChain:
    """thief peels 1 BTC: p1..p4 each pay a small amount and pass the rest on; a decoy spends a payment.

    Expected: p1-p4 form one chain (chain_id p1, positions 0-3, length 4). ``decoy`` is 1-in/2-out but
    spends ``p2``'s *payment* output, so it continues nothing; ``short1``-``short2`` are only two steps.
    """
    c = UtxoChain()
    cb = c.coinbase("cb", [("thief", 100_000_000), ("eve", 50_000_000)])
    c.next_block()
    p1 = c.tx("p1", [cb.out(0)], [("shop1", 2_000_000), ("t1", 97_990_000)])
    p2 = c.tx("p2", [p1.out(1)], [("t2", 95_980_000), ("shop2", 2_000_000)])  # continuing output first
    c.next_block()
    p3 = c.tx("p3", [p2.out(0)], [("shop3", 3_000_000), ("t3", 92_970_000)])
    c.tx("p4", [p3.out(1)], [("shop4", 1_000_000), ("t4", 91_960_000)])
    c.tx("decoy", [p2.out(1)], [("x1", 1_000_000), ("x2", 990_000)])
    s1 = c.tx("short1", [cb.out(1)], [("e1", 1_000_000), ("e2", 48_990_000)])
    c.tx("short2", [s1.out(1)], [("e3", 1_000_000), ("e4", 47_980_000)])
    return c


def test_peel_chain_steps_carry_chain_id_position_and_length(store: ChainStore) -> None:
    peel_chain().write(store)
    report = detect_patterns(store, "btc")
    assert (report.peel_chains, report.peel_steps) == (1, 4)
    rows = list_patterns(store, "btc", pattern="peel-chain")
    steps = [(r["txid"], r["params"]["position"], r["params"]["length"], r["params"]["chain_id"])
             for r in rows]
    assert steps == [("p1", 0, 4, "p1"), ("p2", 1, 4, "p1"), ("p3", 2, 4, "p1"), ("p4", 3, 4, "p1")]
    # p2 lists its continuing output first: the rule follows values, not positions
    p2 = next(r for r in rows if r["txid"] == "p2")
    assert (p2["params"]["continuing_n"], p2["params"]["payment_n"]) == (0, 1)
    assert p2["params"]["continuing_value"] == "95980000" and p2["rule"] == "peel-chain"


def test_min_length_and_payment_share_are_parameters(store: ChainStore) -> None:
    peel_chain().write(store)
    # with chains of two steps allowed, short1-short2 counts too
    assert detect_patterns(store, "btc", peel_min_length=2).peel_chains == 2
    # a payment may be at most 2.5% of the outputs: p3 (3.1%) is no step, so it breaks the chain
    # into p1-p2 and a lone p4
    report = detect_patterns(store, "btc", peel_min_length=2, peel_max_payment_share=0.025)
    chains = {(r["params"]["chain_id"], r["params"]["length"]) for r in list_patterns(store, "btc")}
    assert chains == {("p1", 2), ("short1", 2)} and report.peel_steps == 4


def test_a_change_of_wallet_fingerprint_ends_the_chain(store: ChainStore) -> None:
    # the chain of peel_chain(), with p3 signed differently: its input signals RBF (nSequence
    # 0xfffffffd) where p1 and p2 use 0xffffffff. p2's larger output went to another wallet, so p1-p2 is
    # one chain (too short for the default minimum of 3) and p3-p4 another.
    peel_chain().write(store)
    store.con.execute("UPDATE inputs SET sequence = 4294967295 WHERE txid IN ('p1', 'p2', 'p4')")
    store.con.execute("UPDATE inputs SET sequence = 4294967293 WHERE txid = 'p3'")
    report = detect_patterns(store, "btc", peel_min_length=2)
    chains = {(r["txid"], r["params"]["chain_id"], r["params"]["position"])
              for r in list_patterns(store, "btc", pattern="peel-chain")}
    # p4 is final again, unlike p3: p3 and p4 each stand alone and form no chain
    assert chains == {("p1", "p1", 0), ("p2", "p1", 1), ("short1", "short1", 0), ("short2", "short1", 1)}
    assert report.peel_chains == 2
    # matching the fingerprint again (p3 and p4 both RBF) joins p3-p4; unknown (NULL) matches anything
    store.con.execute("UPDATE inputs SET sequence = 4294967293 WHERE txid = 'p4'")
    store.con.execute("UPDATE inputs SET sequence = NULL WHERE txid = 'p2'")
    detect_patterns(store, "btc")
    rows = list_patterns(store, "btc", pattern="peel-chain")
    assert [(r["txid"], r["params"]["length"]) for r in rows] == [("p1", 4), ("p2", 4), ("p3", 4), ("p4", 4)]


def test_a_continuing_output_of_another_script_type_ends_the_chain(store: ChainStore) -> None:
    # p1 and p2 spend P2WPKH coins; p2's larger output is P2PKH: it paid a legacy wallet, which peels on
    c = UtxoChain()
    cb = c.coinbase("cb", [("w0", 10_000_000)])
    c.next_block()
    p1 = c.tx("p1", [cb.out(0)], [("s1", 100_000), ("w1", 9_890_000)])
    p2 = c.tx("p2", [p1.out(1)], [("s2", 100_000), ("legacy1", 9_780_000, "p2pkh")])
    p3 = c.tx("p3", [p2.out(1)], [("s3", 100_000, "p2pkh"), ("legacy2", 9_670_000, "p2pkh")])
    c.tx("p4", [p3.out(1)], [("s4", 100_000, "p2pkh"), ("legacy3", 9_560_000, "p2pkh")])
    c.write(store)
    detect_patterns(store, "btc", peel_min_length=2)
    rows = list_patterns(store, "btc", pattern="peel-chain")
    assert [(r["txid"], r["params"]["chain_id"]) for r in rows] == [("p1", "p1"), ("p2", "p1"), ("p3", "p3"),
                                                                   ("p4", "p3")]


def naive_rank(pred: list[int]) -> tuple[list[int], list[int]]:
    head, pos = [], []
    for i in range(len(pred)):
        j, d = i, 0
        while pred[j] >= 0:
            j, d = pred[j], d + 1
        head.append(j)
        pos.append(d)
    return head, pos


@st.composite
def path_forests(draw) -> list[int]:
    """Predecessor arrays of disjoint simple paths over shuffled node ids."""
    n = draw(st.integers(0, 60))
    order = draw(st.permutations(list(range(n))))
    cuts = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    pred = [-1] * n
    for k in range(1, n):
        if not cuts[k]:
            pred[order[k]] = order[k - 1]
    return pred


@settings(max_examples=200)
@given(path_forests())
def test_pointer_jumping_ranks_like_walking_each_path(pred: list[int]) -> None:
    head, pos = rank_paths(np.asarray(pred, dtype=np.int64))
    assert (head.tolist(), pos.tolist()) == naive_rank(pred)
