"""Taint policy rules on single transactions and balances: hand-computed cases and invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fundtrail.domain.taint import (
    TAINT,
    BalancePool,
    Coin,
    Direction,
    Lot,
    TaintPolicy,
    fifo_cut,
    haircut_shares,
    haircut_shares_grouped,
    lots_amount,
    merge_lots,
    poison_shares,
    propagate_back,
    propagate_tx,
)

# ------------------------------------------------------------------------------ haircut rounding


def test_policies_and_directions_are_named_enums() -> None:
    assert [p.value for p in TaintPolicy] == ["poison", "haircut", "fifo"]
    assert [d.value for d in Direction] == ["forward", "backward"]
    assert TaintPolicy("fifo") is TaintPolicy.FIFO


def test_haircut_shares_are_proportional_and_floor_cumulatively() -> None:
    # 100000 tainted of 150000 in, outputs 90000 and 59000 (fee 1000):
    # exact shares 60000 and 39333.33; cumulative flooring gives floor(100000*90000/150000) = 60000 and
    # floor(100000*149000/150000) - 60000 = 99333 - 60000 = 39333; the fee keeps 100000 - 99333 = 667.
    assert haircut_shares(100_000, 150_000, [90_000, 59_000]) == (60_000, 39_333)


def test_haircut_remainder_goes_to_the_later_parts() -> None:
    # 2 tainted over three parts of 1 (whole 3): exact 2/3 each; cumulative floors 0, 1, 2 -> 0, 1, 1.
    assert haircut_shares(2, 3, [1, 1, 1]) == (0, 1, 1)
    # 1 tainted over [2, 1] of 3: floor(2/3) = 0, floor(3/3) - 0 = 1: the small part rounds up.
    assert haircut_shares(1, 3, [2, 1]) == (0, 1)


def test_haircut_caps_taint_at_the_whole_and_uses_parts_when_the_whole_is_unknown() -> None:
    assert haircut_shares(10, 3, [1, 1, 1]) == (1, 1, 1)
    # whole 40 known but parts sum to 60 (inputs not all resolved): the denominator is 60.
    assert haircut_shares(50, 40, [30, 30]) == (25, 25)
    assert haircut_shares(0, 10, [5, 5]) == (0, 0)
    assert haircut_shares(5, 0, []) == ()


def test_haircut_rejects_negative_amounts() -> None:
    with pytest.raises(ValueError):
        haircut_shares(-1, 10, [5])
    with pytest.raises(ValueError):
        haircut_shares(1, 10, [-5])


def test_poison_shares() -> None:
    assert poison_shares(True, [3, 4]) == (3, 4)
    assert poison_shares(False, [3, 4]) == (0, 0)


# ------------------------------------------------------------------------------------------ fifo


def test_fifo_cut_fills_parts_in_order_and_marks_shortfall_unknown() -> None:
    lots = [Lot(10, TAINT), Lot(5, None)]
    cut, left = fifo_cut(lots, [8, 4])
    assert cut == ((Lot(8, TAINT),), (Lot(2, TAINT), Lot(2, None)))
    assert left == (Lot(3, None),)
    cut, left = fifo_cut([Lot(3, TAINT)], [2, 4])
    assert cut == ((Lot(2, TAINT),), (Lot(1, TAINT), Lot(3, None)))
    assert left == ()


def test_merge_lots_drops_empty_and_joins_neighbours() -> None:
    assert merge_lots([Lot(0, TAINT), Lot(2, TAINT), Lot(3, TAINT), Lot(1, None), Lot(1, None)]) == (
        Lot(5, TAINT), Lot(2, None))


# -------------------------------------------------------------------------------- transactions


# Inputs of the "mix" transaction of the UTXO test world: BOB 50000 clean first, THIEF 100000 tainted.
MIX_INPUTS = [Coin(50_000), Coin(100_000, 100_000)]
MIX_OUTPUTS = [90_000, 59_000]  # CAROL, DAVE; fee 1000


def test_propagate_tx_haircut() -> None:
    # see test_haircut_shares_are_proportional_and_floor_cumulatively
    result = propagate_tx(TaintPolicy.HAIRCUT, MIX_INPUTS, MIX_OUTPUTS)
    assert (result.parts, result.rest) == ((60_000, 39_333), 667)


def test_propagate_tx_poison() -> None:
    # any tainted input: both outputs fully tainted, and the fee (1000) too
    result = propagate_tx(TaintPolicy.POISON, MIX_INPUTS, MIX_OUTPUTS)
    assert (result.parts, result.rest) == ((90_000, 59_000), 1_000)
    clean = propagate_tx(TaintPolicy.POISON, [Coin(50_000)], [49_000])
    assert (clean.parts, clean.rest) == ((0,), 0)


def test_propagate_tx_fifo_follows_input_and_output_order() -> None:
    # Laid end to end: [BOB 50000 clean][THIEF 100000 tainted]. CAROL takes the first 90000: 50000 clean +
    # 40000 tainted; DAVE the next 59000: all tainted; the fee the last 1000: tainted.
    result = propagate_tx(TaintPolicy.FIFO, MIX_INPUTS, MIX_OUTPUTS)
    assert result.parts == (40_000, 59_000)
    assert result.rest == 1_000
    assert result.lots[0] == (Lot(50_000, None), Lot(40_000, TAINT))
    # The other input order puts the taint first: CAROL 90000 tainted, DAVE 10000 tainted + 49000 clean.
    swapped = propagate_tx(TaintPolicy.FIFO, MIX_INPUTS[::-1], MIX_OUTPUTS)
    assert (swapped.parts, swapped.rest) == ((90_000, 10_000), 0)


def test_fifo_coin_without_lots_has_its_taint_first() -> None:
    assert Coin(10, 4).ordered_lots() == (Lot(4, TAINT), Lot(6, None))
    assert Coin(10, 4, (Lot(6, None), Lot(4, TAINT))).ordered_lots() == (Lot(6, None), Lot(4, TAINT))


def test_propagate_back_haircut_poison_fifo() -> None:
    # Backward through "mix": 59500 of CAROL's 90000 output is of interest (it reached the exchange).
    outputs = [Coin(90_000, 59_500, (Lot(59_500, TAINT), Lot(30_500, None))), Coin(59_000)]
    inputs = [50_000, 100_000]
    # haircut: 59500 * 50000/150000 = 19833.33 -> 19833 (BOB); the rest 39667 (THIEF)
    haircut = propagate_back(TaintPolicy.HAIRCUT, outputs, inputs, fee=1_000)
    assert (haircut.parts, haircut.rest) == ((19_833, 39_667), 0)
    # poison: both inputs in full
    assert propagate_back(TaintPolicy.POISON, outputs, inputs, fee=1_000).parts == (50_000, 100_000)
    # fifo: positions 0..59500 of the outputs are of interest; BOB supplied positions 0..50000 and
    # THIEF 50000..150000, so BOB 50000 and THIEF 9500.
    fifo = propagate_back(TaintPolicy.FIFO, outputs, inputs, fee=1_000)
    assert (fifo.parts, fifo.rest) == ((50_000, 9_500), 0)
    assert fifo.lots[1] == (Lot(9_500, TAINT), Lot(90_500, None))


def test_propagate_back_reports_interest_no_input_accounts_for() -> None:
    result = propagate_back(TaintPolicy.HAIRCUT, [Coin(100, 100)], [60])
    assert (result.parts, result.rest) == ((60,), 40)


# ------------------------------------------------------------------------------------- balances


def test_fifo_pool_draws_oldest_first_and_reports_shortfall() -> None:
    pool = BalancePool(TaintPolicy.FIFO)
    pool.receive(600, TAINT)
    pool.receive(400, None)
    assert pool.send(10) == (Lot(10, TAINT),)
    assert pool.send(500) == (Lot(500, TAINT),)
    assert pool.send(300) == (Lot(90, TAINT), Lot(210, None))
    assert pool.held() == (Lot(190, None),)
    # 190 held clean, and 10 more than the balance: a shortfall of unknown source (None) as well
    assert pool.send(200) == (Lot(200, None),)
    assert pool.balance == 0
    pool.receive(5, TAINT)
    assert pool.send(8) == (Lot(5, TAINT), Lot(3, None))


def test_haircut_pool_draws_in_proportion() -> None:
    # 600 tainted and 400 clean: sending 10 takes floor(10*600/1000) = 6 tainted; then 500 of 990 takes
    # floor(500*594/990) = 300 tainted.
    pool = BalancePool(TaintPolicy.HAIRCUT)
    pool.receive(600, TAINT)
    pool.receive(400, None)
    assert pool.send(10) == (Lot(6, TAINT), Lot(4, None))
    assert pool.send(500) == (Lot(300, TAINT), Lot(200, None))
    assert lots_amount(pool.held()) == 294
    assert pool.balance == 490


def test_poison_pool_sends_only_taint_once_poisoned() -> None:
    pool = BalancePool(TaintPolicy.POISON)
    pool.receive(400, None)
    assert pool.send(100) == (Lot(100, None),)
    pool.receive(1, TAINT)
    assert pool.send(200) == (Lot(200, TAINT),)
    assert pool.held() == (Lot(101, TAINT),)


# ------------------------------------------------------------------------------------ invariants

values = st.integers(min_value=0, max_value=10**9)
big_values = st.integers(min_value=0, max_value=10**30)


@st.composite
def transactions(draw: st.DrawFn, amount: st.SearchStrategy[int] = values) -> tuple[list[Coin], list[int]]:
    """Inputs (value, tainted part, lots) and outputs worth at most the inputs."""
    n_in = draw(st.integers(1, 5))
    coins = []
    for _ in range(n_in):
        value = draw(amount)
        tainted = draw(st.integers(0, value))
        first = draw(st.booleans())
        lots = merge_lots([Lot(tainted, TAINT), Lot(value - tainted, None)] if first
                          else [Lot(value - tainted, None), Lot(tainted, TAINT)])
        coins.append(Coin(value, tainted, lots))
    total = sum(c.value for c in coins)
    n_out = draw(st.integers(1, 3))
    cuts = sorted(draw(st.lists(st.integers(0, total), min_size=n_out, max_size=n_out)))
    outputs = [b - a for a, b in zip([0, *cuts[:-1]], cuts, strict=True)]
    return coins, outputs


@settings(max_examples=300, deadline=None)
@given(transactions())
def test_taint_out_of_a_transaction_never_exceeds_taint_in(tx: tuple[list[Coin], list[int]]) -> None:
    coins, outputs = tx
    tainted_in = sum(c.tainted for c in coins)
    for policy in (TaintPolicy.HAIRCUT, TaintPolicy.FIFO):
        result = propagate_tx(policy, coins, outputs)
        assert sum(result.parts) <= tainted_in
        assert sum(result.parts) + result.rest == tainted_in  # conserved: outputs + fee
        assert all(0 <= p <= v for p, v in zip(result.parts, outputs, strict=True))
    poison = propagate_tx(TaintPolicy.POISON, coins, outputs)
    haircut = propagate_tx(TaintPolicy.HAIRCUT, coins, outputs)
    fifo = propagate_tx(TaintPolicy.FIFO, coins, outputs)
    assert all(p >= h for p, h in zip(poison.parts, haircut.parts, strict=True))
    assert all(p >= f for p, f in zip(poison.parts, fifo.parts, strict=True))


@settings(max_examples=200, deadline=None)
@given(transactions())
def test_one_fully_tainted_source_gives_the_same_result_under_every_policy(
        tx: tuple[list[Coin], list[int]]) -> None:
    coins, outputs = tx
    whole = [Coin(c.value, c.value) for c in coins]
    results = {p: propagate_tx(p, whole, outputs) for p in TaintPolicy}
    assert results[TaintPolicy.FIFO].parts == results[TaintPolicy.HAIRCUT].parts == tuple(outputs)
    assert results[TaintPolicy.POISON].parts == tuple(outputs)


@settings(max_examples=300, deadline=None)
@given(transactions())
def test_backward_interest_is_conserved(tx: tuple[list[Coin], list[int]]) -> None:
    coins, outputs = tx
    # reuse the generator backwards: "outputs" become input values, coins the outputs of interest
    input_values = [c.value for c in coins]
    interest_outputs = [Coin(v, v // 2) for v in outputs]
    fee = max(sum(input_values) - sum(outputs), 0)
    interest = sum(c.tainted for c in interest_outputs)
    for policy in (TaintPolicy.HAIRCUT, TaintPolicy.FIFO):
        result = propagate_back(policy, interest_outputs, input_values, fee)
        assert sum(result.parts) + result.rest == interest
        assert all(0 <= p <= v for p, v in zip(result.parts, input_values, strict=True))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10), big_values, big_values), min_size=1, max_size=12),
       st.data())
def test_grouped_haircut_equals_the_scalar_rule(groups: list[tuple[int, int, int]],
                                                data: st.DataObject) -> None:
    counts, tainted, whole, parts = [], [], [], []
    for n, t, w in groups:
        ps = data.draw(st.lists(st.integers(0, 10**30), min_size=n, max_size=n))
        counts.append(n)
        tainted.append(t)
        whole.append(w)
        parts.extend(ps)
    as_object = data.draw(st.booleans())
    dtype = object if as_object or max([*tainted, *whole, *parts, 0]) > 2**62 else np.int64
    got = haircut_shares_grouped(np.array(counts), np.array(tainted, dtype=dtype),
                                 np.array(whole, dtype=dtype), np.array(parts, dtype=dtype))
    expected: list[int] = []
    at = 0
    for n, t, w in zip(counts, tainted, whole, strict=True):
        expected.extend(haircut_shares(t, w, parts[at:at + n]))
        at += n
    assert [int(x) for x in got] == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-20, 20).filter(lambda x: x != 0), min_size=1, max_size=30),
       st.sampled_from([TaintPolicy.HAIRCUT, TaintPolicy.FIFO]))
def test_balance_pools_conserve_each_source(moves: list[int], policy: TaintPolicy) -> None:
    # positive: receive that much (odd steps tainted); negative: send that much
    pool = BalancePool(policy)
    received = {TAINT: 0, None: 0}
    sent = {TAINT: 0, None: 0}
    shortfall = 0
    for i, move in enumerate(moves):
        if move > 0:
            source = TAINT if i % 2 else None
            pool.receive(move, source)
            received[source] += move
        else:
            before = pool.balance
            out = pool.send(-move)
            shortfall += max(-move - before, 0)
            assert sum(lot.amount for lot in out) == -move
            for lot in out:
                sent[lot.source] += lot.amount
    held = pool.held()
    assert received[TAINT] == sent[TAINT] + lots_amount(held, TAINT)
    assert received[None] + shortfall == sent[None] + lots_amount(held, None)
