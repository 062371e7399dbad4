"""CoinJoin classifiers on single hand-written transactions."""

from __future__ import annotations

from fundtrail.domain.heuristics import TxInput, TxOutput, TxView
from fundtrail.domain.patterns import (
    Pattern,
    PatternParams,
    PatternRule,
    classify_tx,
    generic_coinjoin,
    is_coinjoin,
    joinmarket,
    standard_denominations,
    wabisabi,
    wasabi_1,
    whirlpool_mix,
    whirlpool_tx0,
)


def view(inputs: list[tuple[str, int]], outputs: list[tuple[str | None, int]]) -> TxView:
    outs = tuple(TxOutput(n, a, v, "nulldata" if a is None else "p2wpkh") for n, (a, v) in enumerate(outputs))
    return TxView("t", tuple(TxInput(a, v, "p2wpkh") for a, v in inputs), outs)


def rules_of(tx: TxView) -> set[PatternRule]:
    return {m.rule for m in classify_tx(tx)}


def test_whirlpool_mix_is_five_in_five_out_of_one_pool_denomination() -> None:
    # five premixed/remixed coins of at least 0.01 BTC go in, five 0.01 BTC coins come out
    mix = view([(f"in{i}", 1_000_000 + 300 * i) for i in range(5)],
               [(f"out{i}", 1_000_000) for i in range(5)])
    m = whirlpool_mix(mix)
    assert m is not None and m.pattern is Pattern.COINJOIN and m.params["pool"] == 1_000_000
    assert is_coinjoin(mix)
    # the same shape at a value that is no pool is not Whirlpool (generic still fires: 5 equal outputs)
    other = view([(f"in{i}", 2_000_000) for i in range(5)], [(f"out{i}", 1_234_567) for i in range(5)])
    assert whirlpool_mix(other) is None and PatternRule.GENERIC_COINJOIN in rules_of(other)
    # six inputs: not a Whirlpool mix
    six = view([(f"in{i}", 1_000_000) for i in range(6)], [(f"out{i}", 1_000_000) for i in range(5)])
    assert whirlpool_mix(six) is None
    # an input smaller than the pool cannot fund it
    short = view([("in0", 900_000)] + [(f"in{i}", 1_000_000) for i in range(1, 5)],
                 [(f"out{i}", 1_000_000) for i in range(5)])
    assert whirlpool_mix(short) is None


def test_whirlpool_tx0_has_op_return_premixes_of_pool_plus_fee_and_other_outputs() -> None:
    # alice splits 0.056 BTC: OP_RETURN, coordinator fee, five premixes of 0.01 BTC + 450 sat, change
    tx0 = view([("alice", 5_600_000)],
               [(None, 0), ("fee", 42_500), *[(f"pre{i}", 1_000_450) for i in range(5)], ("alice2", 550_000)])
    m = whirlpool_tx0(tx0)
    assert m is not None and m.pattern is Pattern.COINJOIN_PREMIX
    assert m.params["pool"] == 1_000_000
    assert (m.params["premix_outputs"], m.params["premix_value"]) == (5, 1_000_450)
    assert not is_coinjoin(tx0)  # a premix is not a mix: a trace may follow it
    # without the OP_RETURN it is an ordinary payment
    assert whirlpool_tx0(view([("alice", 5_600_000)], [("fee", 42_500), ("pre0", 1_000_450),
                                                       ("alice2", 4_550_000)])) is None


def test_generic_coinjoin_needs_k_equal_outputs_and_as_many_inputs_from_several_addresses() -> None:
    # three participants, three inputs, three equal 0.02 BTC outputs and three changes
    cj = view([("p1", 3_000_000), ("p2", 2_500_000), ("p3", 2_100_000)],
              [("o1", 2_000_000), ("o2", 2_000_000), ("o3", 2_000_000), ("c1", 999_000), ("c2", 499_000),
               ("c3", 99_000)])
    m = generic_coinjoin(cj)
    assert m is not None and m.params["equal_outputs"] == 3 and m.params["inputs"] == 3
    # an exchange batch: one input paying three equal withdrawals is not a CoinJoin
    batch = view([("hot", 9_000_000)], [("w1", 2_000_000), ("w2", 2_000_000), ("w3", 2_000_000),
                                        ("hot2", 2_990_000)])
    assert generic_coinjoin(batch) is None
    # raising k to 4 drops the three-party join
    assert generic_coinjoin(cj, PatternParams(generic_min_equal=4)) is None


def test_joinmarket_is_n_equal_outputs_plus_n_or_n_minus_one_changes() -> None:
    # maker/taker join of n = 3: three 0.02 BTC outputs, two maker changes (the taker swept)
    jm = view([("taker", 2_000_100), ("m1", 2_600_000), ("m2", 3_100_000)],
              [("o1", 2_000_000), ("o2", 2_000_000), ("o3", 2_000_000), ("c1", 600_050), ("c2", 1_100_040)])
    m = joinmarket(jm)
    assert m is not None and (m.params["equal_outputs"], m.params["change_outputs"]) == (3, 2)
    # n = 2 is below the minimum
    small = view([("a", 3_000_000), ("b", 3_000_000)], [("o1", 2_000_000), ("o2", 2_000_000), ("c1", 999_000),
                                                         ("c2", 999_500)])
    assert joinmarket(small) is None
    # too many other outputs for n = 3
    many = view([("a", 9_000_000), ("b", 9_000_000), ("c", 9_000_000)],
                [("o1", 2_000_000), ("o2", 2_000_000), ("o3", 2_000_000),
                 *[(f"x{i}", 100_000 + i) for i in range(5)]])
    assert joinmarket(many) is None


def test_a_tx0_with_three_premixes_is_no_joinmarket_or_generic_coinjoin() -> None:
    # alice enters the 0.05 BTC pool from three coins at two addresses: OP_RETURN, the coordinator's
    # 175,000 sat fee, three premixes of 0.05 BTC + 1,232 sat, and her change. Three equal outputs plus two
    # others from three inputs is the JoinMarket shape (n = 3, n - 1 changes), but it is one wallet's Tx0
    tx0 = view([("alice1", 1_024_162), ("alice2", 4_880_218), ("alice2", 16_623_968)],
               [(None, 0), ("fee", 175_000), *[(f"pre{i}", 5_001_232) for i in range(3)],
                ("alice3", 7_347_574)])
    assert rules_of(tx0) == {PatternRule.WHIRLPOOL_TX0}
    assert joinmarket(tx0) is None and generic_coinjoin(tx0) is None and not is_coinjoin(tx0)
    # a JoinMarket round of 0.05 BTC + 1,232 sat without the OP_RETURN is still a JoinMarket round
    jm = view([("taker", 5_001_300), ("m1", 5_600_000), ("m2", 6_100_000)],
              [*[(f"o{i}", 5_001_232) for i in range(3)], ("c1", 598_900), ("c2", 1_098_900)])
    assert {PatternRule.JOINMARKET, PatternRule.GENERIC_COINJOIN} <= rules_of(jm)
    # an OP_RETURN next to equal outputs that are no premix (0.02 BTC fits no pool) does not hide a round
    odd = view([("taker", 2_000_100), ("m1", 2_600_000), ("m2", 3_100_000)],
               [(None, 0), *[(f"o{i}", 2_000_000) for i in range(3)], ("c1", 600_050), ("c2", 1_100_040)])
    assert PatternRule.JOINMARKET in rules_of(odd) and PatternRule.WHIRLPOOL_TX0 not in rules_of(odd)


def test_wasabi_1_needs_many_outputs_near_a_tenth_of_a_bitcoin_and_names_the_coordinator() -> None:
    coordinator = "bc1qs604c7jv6amk4cxqlnvuxv26hv3e48cds4m0ew"
    ins = [(f"in{i}", 12_000_000 + i) for i in range(12)]
    outs = [(f"o{i}", 10_012_345) for i in range(10)] + [(f"m{i}", 20_024_690) for i in range(2)]
    with_fee = view(ins, [*outs, (coordinator, 300_000), ("ch1", 1_000_000)])
    m = wasabi_1(with_fee)
    assert m is not None and m.params["coordinator"] == coordinator and m.confidence == 0.95
    assert m.params["mixing_levels"] == {"1": 2}  # two outputs at twice the base denomination
    without = wasabi_1(view(ins, outs))
    assert without is not None and without.params["coordinator"] is None and without.confidence < 0.95
    # the same round at 0.05 BTC is not Wasabi 1.x
    assert wasabi_1(view(ins, [(f"o{i}", 5_000_000) for i in range(10)])) is None


def test_wabisabi_needs_many_inputs_and_outputs_mostly_on_standard_denominations() -> None:
    denominations = sorted(standard_denominations())
    assert {5_000, 6_561, 8_192, 10_000, 13_122, 20_000, 50_000, 100_000} <= set(denominations)
    assert 7_000 not in denominations
    ins = [(f"in{i}", 1_000_000 + i) for i in range(60)]
    standard = [100_000, 131_072, 200_000, 262_144, 500_000, 531_441, 1_000_000]
    outs = [(f"o{i}", standard[i % len(standard)]) for i in range(50)]
    outs += [(f"ch{i}", 77_777 + i) for i in range(10)]
    m = wabisabi(view(ins, outs))
    assert m is not None and m.params["standard_outputs"] == 50
    # same counts but arbitrary values: not WabiSabi
    assert wabisabi(view(ins, [(f"o{i}", 123_457 + i) for i in range(60)])) is None
    # too few inputs
    assert wabisabi(view(ins[:20], outs)) is None


def test_ordinary_payment_is_no_pattern() -> None:
    assert classify_tx(view([("alice", 100_000)], [("bob", 60_000), ("alice2", 39_000)])) == []
