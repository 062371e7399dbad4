"""Change heuristics over the store: each rule on a hand-written chain, and agreement with the pure rules."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fundtrail.analysis.change import change_for, detect_change, ensure_change
from fundtrail.analysis.coinjoin import detect_patterns
from fundtrail.domain.heuristics import (
    COMBINED,
    ChangeRule,
    TxInput,
    TxOutput,
    TxView,
    change_evidence,
    combine_evidence,
)
from fundtrail.store import ChainStore
from fundtrail.testing.utxo import UtxoChain


def evidence(store: ChainStore, txid: str) -> set[tuple[int, str]]:
    return {(n, h) for n, h in store.query(
        "SELECT n, heuristic FROM change_outputs WHERE txid = ? AND heuristic <> 'combined'", [txid])}


def change_chain() -> UtxoChain:
    """One transaction per rule. Expected change outputs, and why:

    * ``reuse``: alice pays bob and returns 19k to her own input address ``alice`` (output 1, certain).
    * ``onetime``: ``bob`` is a known address, ``alice-new`` is new: output 1 is change.
    * ``types``: legacy inputs, one legacy output ``carol-legacy`` (output 0).
    * ``round``: 0.005 BTC to a seen shop is round, the 87,654 sat output 0 is change.
    * ``optimal``: inputs 60k and 50k; only the 3,210 sat output (1) is below both.
    """
    c = UtxoChain()
    cb = c.coinbase("cb", [("alice", 80_000), ("bob", 1_000), ("carol1", 60_000, "p2pkh"),
                           ("carol2", 50_000, "p2pkh"), ("dave", 700_000), ("erin1", 60_000),
                           ("erin2", 50_000),
                           ("shop", 1)])
    c.next_block()
    c.tx("reuse", [cb.out(0)], [("bob", 60_000), ("alice", 19_000)])
    c.tx("onetime", [("reuse", 1)], [("bob", 7_777), ("alice-new", 11_111)])
    c.tx("types", [cb.out(2), cb.out(3)], [("carol-legacy", 61_234, "p2pkh"), ("frank", 47_111)])
    c.tx("round", [cb.out(4)], [("dave-new", 187_654), ("shop", 500_000)])
    c.tx("optimal", [cb.out(5), cb.out(6)], [("gina", 105_000), ("erin-new", 3_210)])
    return c


def test_each_rule_names_its_change_output(store: ChainStore) -> None:
    change_chain().write(store)
    report = detect_change(store, "btc")
    assert (1, "address-reuse") in evidence(store, "reuse")
    assert (1, "one-time-change") in evidence(store, "onetime")
    assert (0, "address-type") in evidence(store, "types")
    assert (0, "round-number") in evidence(store, "round")
    assert (1, "optimal-change") in evidence(store, "optimal")
    # the rules that must not fire: bob (seen before) is no one-time change in "reuse"
    assert (0, "one-time-change") not in evidence(store, "reuse")
    assert report.by_rule["address-reuse"] == 1
    # the combined row of the certain reuse is 1.0, with the rules named by change_for
    (combined,) = [c for c in change_for(store, "btc", "reuse") if c.n == 1]
    assert combined.confidence == 1.0 and ChangeRule.ADDRESS_REUSE in combined.rules
    # address ids are stored with the evidence
    row = store.query("SELECT address_id FROM change_outputs WHERE txid = 'onetime' "
                      "AND heuristic = 'combined'")
    assert row == [(store.address_id("btc", "alice-new"),)]


def test_peel_chain_steps_mark_their_continuing_output(store: ChainStore) -> None:
    # three 1-in/2-out steps each paying 1% and passing 99% on: the large outputs are peel-chain change
    c = UtxoChain()
    cb = c.coinbase("cb", [("thief", 10_000_000)])
    c.next_block()
    p1 = c.tx("p1", [cb.out(0)], [("shop1", 100_000), ("t1", 9_890_000)])
    p2 = c.tx("p2", [p1.out(1)], [("t2", 9_780_000), ("shop2", 100_000)])
    c.tx("p3", [p2.out(0)], [("shop3", 100_000), ("t3", 9_670_000)])
    c.write(store)
    detect_change(store, "btc")
    assert (1, "peel-chain") in evidence(store, "p1")
    assert (0, "peel-chain") in evidence(store, "p2")
    assert (1, "peel-chain") in evidence(store, "p3")


def confidences(store: ChainStore, txid: str) -> dict[tuple[int, str], float]:
    return {(n, h): c for n, h, c in store.query(
        "SELECT n, heuristic, confidence FROM change_outputs WHERE txid = ?", [txid])}


def test_peel_steps_ending_their_chain_or_leaving_the_script_type_give_weaker_or_no_evidence(
        store: ChainStore) -> None:
    # p1-p3 peel 1% each off a P2WPKH coin. p3's larger output is spent by "sweep" (one output: no
    # peel step), so p3 ends the chain. q1-q3 is a second chain whose last step's
    # larger output is still unspent. x1-x3: x3's larger output goes to a P2PKH address
    c = UtxoChain()
    cb = c.coinbase("cb", [("thief", 10_000_000), ("eve", 10_000_000), ("zed", 10_000_000)])
    c.next_block()
    p1 = c.tx("p1", [cb.out(0)], [("shop1", 100_000), ("t1", 9_890_000)])
    p2 = c.tx("p2", [p1.out(1)], [("shop2", 100_000), ("t2", 9_780_000)])
    p3 = c.tx("p3", [p2.out(1)], [("shop3", 100_000), ("t3", 9_670_000)])
    c.tx("sweep", [p3.out(1)], [("u1", 9_660_000)])
    q1 = c.tx("q1", [cb.out(1)], [("shop4", 100_000), ("e1", 9_890_000)])
    q2 = c.tx("q2", [q1.out(1)], [("shop5", 100_000), ("e2", 9_780_000)])
    c.tx("q3", [q2.out(1)], [("shop6", 100_000), ("e3", 9_670_000)])
    x1 = c.tx("x1", [cb.out(2)], [("shop7", 100_000), ("z1", 9_890_000)])
    x2 = c.tx("x2", [x1.out(1)], [("shop8", 100_000), ("z2", 9_780_000)])
    c.tx("x3", [x2.out(1)], [("shop9", 100_000), ("legacy", 9_670_000, "p2pkh")])
    c.write(store)
    detect_change(store, "btc")
    # inside the chain: 0.8; at the end, its larger output spent otherwise: 0.55; unspent: still 0.8
    assert confidences(store, "p2")[(1, "peel-chain")] == pytest.approx(0.8)
    assert confidences(store, "p3")[(1, "peel-chain")] == pytest.approx(0.55)
    assert confidences(store, "q3")[(1, "peel-chain")] == pytest.approx(0.8)
    # x3's P2PKH output is no peel change (x3 still ends the chain: the address-type rule names shop9)
    assert (1, "peel-chain") not in confidences(store, "x3")
    assert (0, "address-type") in confidences(store, "x3")


def test_a_certain_change_output_makes_the_other_outputs_payments(store: ChainStore) -> None:
    # alice pays 700,000 to a fresh address and returns 299,000 to her input address: however the
    # other rules read it, output 0 is the payment (combined 0) and output 1 the change (combined 1)
    c = UtxoChain()
    cb = c.coinbase("cb", [("alice", 1_000_000, "p2pkh")])
    c.next_block()
    c.tx("pay", [cb.out(0)], [("shop-new", 700_000, "p2pkh"), ("alice", 299_000, "p2wpkh")])
    c.write(store)
    detect_change(store, "btc")
    got = confidences(store, "pay")
    assert (0, "address-type") in got and (0, "one-time-change") in got
    assert got[(0, COMBINED)] == 0.0 and got[(1, COMBINED)] == 1.0


def test_coinjoins_and_coinbases_get_no_change_evidence(store: ChainStore) -> None:
    c = UtxoChain()
    cb = c.coinbase("cb", [(f"p{i}", 1_000_300 + i) for i in range(5)])
    c.next_block()
    # a Whirlpool mix: p0 also receives an output (address reuse would otherwise be certain change)
    c.tx("mix", [cb.out(i) for i in range(5)], [("p0", 1_000_000)] + [(f"q{i}", 1_000_000) for i in range(4)])
    c.write(store)
    detect_change(store, "btc")
    assert store.query("SELECT count(*) FROM change_outputs")[0][0] == 0


def test_detection_replaces_rows_and_runs_pattern_detection_first(store: ChainStore) -> None:
    change_chain().write(store)
    detect_change(store, "btc")
    first = store.query("SELECT * FROM change_outputs ORDER BY ALL")
    assert ensure_change(store, "btc") is None  # current: not run again
    detect_change(store, "btc")
    assert store.query("SELECT * FROM change_outputs ORDER BY ALL") == first
    assert store.query("SELECT count(*) FROM tx_patterns WHERE chain = 'btc'")[0][0] == 0
    assert store.query("SELECT count(*) FROM meta WHERE key = 'analysis:patterns:btc'")[0][0] == 1


# ------------------------------------------------------------------ the batch driver agrees with the rules


def random_chain(seed: int) -> UtxoChain:
    """A small random chain with reused addresses, round values, mixed script types and some peel steps."""
    rnd = random.Random(seed)
    names = [f"a{i}" for i in range(10)]
    kinds = ["p2wpkh", "p2pkh", "p2sh"]
    c = UtxoChain()
    unspent: list[tuple[str, int]] = []
    cb = c.coinbase("cb", [(rnd.choice(names), rnd.choice([100_000, 250_000, 1_234_567]), rnd.choice(kinds))
                           for _ in range(6)])
    unspent += [cb.out(n) for n in range(6)]
    for t in range(rnd.randint(3, 14)):
        if rnd.random() < 0.3:
            c.next_block()
        if not unspent:
            break
        k = min(len(unspent), rnd.choice([1, 1, 2, 3]))
        spend = [unspent.pop(rnd.randrange(len(unspent))) for _ in range(k)]
        outs = []
        for _ in range(rnd.choice([1, 2, 2, 3])):
            value = rnd.choice([500_000, 100_000, rnd.randint(1, 900_000), rnd.randint(1, 50_000)])
            address = rnd.choice([*names, f"new{t}-{len(outs)}", None]) if rnd.random() < 0.9 else None
            outs.append((address, value, rnd.choice(kinds)) if address else (None, 0))
        ref = c.tx(f"t{t}", spend, outs)
        unspent += [ref.out(n) for n, o in enumerate(outs) if o[0] is not None]
    return c


def pure_views(store: ChainStore) -> list[tuple[TxView, bool, bool]]:
    """Each stored non-coinbase, non-CoinJoin transaction as a TxView, with its peel-chain flags.

    The second flag: the step ends its chain (last step, and its continuing output is spent).
    """
    txs = store.query("SELECT txid, height, tx_index, coinbase FROM txs ORDER BY height, tx_index")
    seen: set[str] = set()
    views = []
    mixes = {r[0] for r in store.query("SELECT txid FROM tx_patterns WHERE pattern = 'coinjoin'")}
    peels = {r[0] for r in store.query("SELECT txid FROM tx_patterns WHERE pattern = 'peel-chain'")}
    spent = set(store.query("SELECT prev_txid, prev_n FROM inputs"))
    ends = {t for t, pos, length, cn in store.query(
        "SELECT txid, (params->>'position')::INT, (params->>'length')::INT, (params->>'continuing_n')::INT "
        "FROM tx_patterns WHERE pattern = 'peel-chain'") if pos == length - 1 and (t, cn) in spent}
    for txid, _h, _i, coinbase in txs:
        ins = store.query("""SELECT i.address, i.value::BIGINT, o.script_type FROM inputs i
                             LEFT JOIN outputs o ON o.txid = i.prev_txid AND o.n = i.prev_n
                             WHERE i.txid = ? ORDER BY i.n""", [txid])
        outs = store.query("SELECT n, address, value::BIGINT, script_type FROM outputs WHERE txid = ? "
                           "ORDER BY n", [txid])
        view = TxView(txid, tuple(TxInput(a, v, s) for a, v, s in ins),
                      tuple(TxOutput(n, a, v, s, a in seen) for n, a, v, s in outs), bool(coinbase))
        seen.update(a for _, a, _, _ in outs if a is not None)
        if txid not in mixes:
            views.append((view, txid in peels, txid in ends))
    return views


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32))
def test_batch_driver_agrees_with_the_single_transaction_rules(seed: int) -> None:
    with ChainStore(":memory:") as store:
        random_chain(seed).write(store)
        detect_patterns(store, "btc", peel_min_length=2)
        detect_change(store, "btc")
        stored = store.query("SELECT txid, n, heuristic, confidence FROM change_outputs ORDER BY ALL")
        expected = []
        for view, peel, end in pure_views(store):
            found = change_evidence(view, peel_chain=peel, peel_end=end)
            expected += [(view.txid, e.n, e.rule.value, e.confidence) for e in found]
            expected += [(view.txid, c.n, COMBINED, c.confidence) for c in combine_evidence(found)]
        assert [r[:3] for r in stored] == [r[:3] for r in sorted(expected)]
        assert [r[3] for r in stored] == pytest.approx([r[3] for r in sorted(expected)])
