"""Change-address rules on single hand-written transactions, and how their evidence combines."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fundtrail.domain.heuristics import (
    ChangeEvidence,
    ChangeParams,
    ChangeRule,
    TxInput,
    TxOutput,
    TxView,
    change_evidence,
    combine_evidence,
    is_round,
    peel_split,
)


def tx(inputs: list[tuple[str, int] | tuple[str, int, str]], outputs: list[tuple],
       coinbase: bool = False) -> TxView:
    """Inputs ``(address, value[, type])``; outputs ``(address, value[, type[, seen_before]])``."""
    ins = tuple(TxInput(i[0], i[1], i[2] if len(i) > 2 else "p2wpkh") for i in inputs)
    outs = tuple(TxOutput(n, o[0], o[1], o[2] if len(o) > 2 else "p2wpkh", o[3] if len(o) > 3 else False)
                 for n, o in enumerate(outputs))
    return TxView("t", ins, outs, coinbase)


def rules(view: TxView, **kw: bool) -> set[tuple[int, ChangeRule]]:
    return {(e.n, e.rule) for e in change_evidence(view, **kw)}


def test_address_reuse_names_the_output_back_to_an_input_address_as_certain_change() -> None:
    # alice pays bob and sends the rest back to her own input address: output 1 is change, certainly
    view = tx([("alice", 100_000)], [("bob", 60_000, "p2wpkh", True), ("alice", 39_000, "p2wpkh", True)])
    evidence = [e for e in change_evidence(view) if e.rule is ChangeRule.ADDRESS_REUSE]
    assert evidence == [ChangeEvidence(1, ChangeRule.ADDRESS_REUSE, 1.0)]


def test_one_time_change_needs_exactly_one_new_address_and_the_others_seen() -> None:
    # bob (a known merchant address) is paid; alice2 is new: alice2 is change
    view = tx([("alice1", 100_000)], [("bob", 61_234, "p2wpkh", True), ("alice2", 38_111, "p2wpkh", False)])
    assert (1, ChangeRule.ONE_TIME_CHANGE) in rules(view)
    # both outputs new: nothing to tell them apart
    both_new = tx([("alice1", 100_000)], [("bob", 61_234), ("alice2", 38_111)])
    assert not any(r is ChangeRule.ONE_TIME_CHANGE for _, r in rules(both_new))


def test_address_type_match_names_the_only_output_of_the_inputs_type() -> None:
    # legacy inputs, one legacy and one segwit output: the legacy output (n=1) is change
    view = tx([("alice1", 70_000, "p2pkh"), ("alice2", 40_000, "p2pkh")],
              [("bob", 61_234, "p2wpkh"), ("alice3", 48_111, "p2pkh")])
    assert (1, ChangeRule.ADDRESS_TYPE) in rules(view)
    # inputs of mixed types: the rule does not apply
    mixed = tx([("alice1", 70_000, "p2pkh"), ("alice2", 40_000, "p2wpkh")],
               [("bob", 61_234, "p2wpkh"), ("alice3", 48_111, "p2pkh")])
    assert not any(r is ChangeRule.ADDRESS_TYPE for _, r in rules(mixed))


def test_round_payment_makes_the_other_output_change() -> None:
    # bob gets exactly 0.005 BTC (500,000 sat, round): the odd 373,118 sat output (n=0) is change
    view = tx([("alice1", 874_000)], [("alice2", 373_118), ("bob", 500_000)])
    assert (0, ChangeRule.ROUND_NUMBER) in rules(view)
    # both round: no evidence
    assert not any(r is ChangeRule.ROUND_NUMBER for _, r in rules(tx([("a", 900_000)], [("b", 500_000),
                                                                                           ("c", 300_000)])))


def test_optimal_change_is_the_only_output_smaller_than_every_input() -> None:
    # inputs 50k and 40k; outputs 85k and 4k: only 4k is below the smallest input (40k), so it is change
    view = tx([("alice1", 50_000), ("alice2", 40_000)], [("bob", 85_001), ("alice3", 4_123)])
    assert (1, ChangeRule.OPTIMAL_CHANGE) in rules(view)
    # an unresolved input value: the rule cannot judge
    unknown = TxView("t", (TxInput("a", None, "p2wpkh"), TxInput("b", 40_000, "p2wpkh")), view.outputs)
    assert not any(r is ChangeRule.OPTIMAL_CHANGE for _, r in rules(unknown))


def test_peel_chain_names_the_large_continuing_output_only_inside_a_detected_chain() -> None:
    # 1-in/2-out: 3k paid to a shop, 96k continues: the continuing output (n=1) is change
    view = tx([("peel1", 100_000)], [("shop", 3_000), ("peel2", 96_000)])
    assert (1, ChangeRule.PEEL_CHAIN) in rules(view, peel_chain=True)
    assert not any(r is ChangeRule.PEEL_CHAIN for _, r in rules(view))


def test_peel_chain_needs_the_continuing_output_to_keep_the_spent_coins_script_type() -> None:
    # a P2WPKH coin of 1,000,000 sat: 300,000 to a P2WPKH address, 695,000 to a P2PKH address. The larger
    # output left the wallet's script type: it is a payment to another wallet, so no peel evidence
    crossed = tx([("bob", 1_000_000, "p2wpkh")], [("bob-new", 300_000, "p2wpkh"), ("shop", 695_000, "p2pkh")])
    assert not any(r is ChangeRule.PEEL_CHAIN for _, r in rules(crossed, peel_chain=True))
    # the same step with the larger output on P2WPKH: peel evidence on it (n=1), at full confidence
    kept = tx([("bob", 1_000_000, "p2wpkh")], [("shop", 300_000, "p2pkh"), ("bob-new", 695_000, "p2wpkh")])
    peel = [e for e in change_evidence(kept, peel_chain=True) if e.rule is ChangeRule.PEEL_CHAIN]
    assert peel == [ChangeEvidence(1, ChangeRule.PEEL_CHAIN, 0.8)]
    # an unresolved input type cannot contradict the rule
    unknown = TxView("t", (TxInput("bob", 1_000_000, None),), crossed.outputs)
    assert (1, ChangeRule.PEEL_CHAIN) in rules(unknown, peel_chain=True)


def test_a_step_ending_its_peel_chain_needs_a_second_rule_to_pass_0_8() -> None:
    # the last step of a chain whose 96,000 sat output is spent by something other than a further step:
    # alone it gives 0.55; with the address-type rule (0.6) on the same output 1 - 0.45 * 0.4 = 0.82
    view = tx([("peel3", 100_000)], [("shop", 3_000), ("peel4", 96_000)])
    alone = change_evidence(view, peel_chain=True, peel_end=True)
    assert alone == [ChangeEvidence(1, ChangeRule.PEEL_CHAIN, 0.55)]
    assert combine_evidence(alone)[0].confidence == pytest.approx(0.55)
    # the same step inside its chain (the next step spends output 1): 0.8, enough on its own
    assert change_evidence(view, peel_chain=True) == [ChangeEvidence(1, ChangeRule.PEEL_CHAIN, 0.8)]
    typed = tx([("peel3", 100_000, "p2pkh")], [("shop", 3_000, "p2wpkh"), ("peel4", 96_000, "p2pkh")])
    (combined,) = combine_evidence(change_evidence(typed, peel_chain=True, peel_end=True))
    assert combined.n == 1 and combined.confidence == pytest.approx(0.82)
    assert combined.rules == (ChangeRule.ADDRESS_TYPE, ChangeRule.PEEL_CHAIN)


def test_no_evidence_for_coinbase_single_output_or_no_inputs() -> None:
    assert change_evidence(tx([], [("miner", 1), ("pool", 2)], coinbase=True)) == []
    assert change_evidence(tx([("a", 10)], [("b", 9)])) == []
    # OP_RETURN is not an output a rule can speak about
    assert change_evidence(tx([("a", 100_000)], [("b", 90_000), (None, 0, "nulldata")])) == []


def test_helpers_round_and_peel_split() -> None:
    assert is_round(500_000, 5) and not is_round(500_001, 5) and not is_round(0, 5)
    assert peel_split((3_000, 96_000), 0.5) == (0, 1)
    assert peel_split((50_000, 50_000), 0.5) is None       # equal: no payment to tell apart
    assert peel_split((40_000, 60_000), 0.1) is None       # the payment is too large a share


def test_combined_evidence_agreeing_rules_strengthen_and_conflicting_rules_weaken() -> None:
    p = ChangeParams()
    agree = combine_evidence([ChangeEvidence(1, ChangeRule.ONE_TIME_CHANGE, 0.7),
                              ChangeEvidence(1, ChangeRule.ADDRESS_TYPE, 0.6)])
    # 1 - 0.3 * 0.4 = 0.88, both rules named
    assert agree[0].n == 1 and agree[0].confidence == pytest.approx(0.88)
    assert agree[0].rules == (ChangeRule.ONE_TIME_CHANGE, ChangeRule.ADDRESS_TYPE)
    conflict = combine_evidence([ChangeEvidence(0, ChangeRule.ROUND_NUMBER, p.round_confidence),
                                 ChangeEvidence(1, ChangeRule.OPTIMAL_CHANGE, p.optimal_confidence)])
    # output 0: 0.6 * (1 - 0.5) = 0.3; output 1: 0.5 * (1 - 0.6) = 0.2
    assert [c.confidence for c in conflict] == pytest.approx([0.3, 0.2])
    certain = combine_evidence([ChangeEvidence(0, ChangeRule.ADDRESS_REUSE, 1.0),
                                ChangeEvidence(1, ChangeRule.ONE_TIME_CHANGE, 0.7)])
    # reuse is certain: output 0 is the change, so output 1 is a payment whatever else names it
    assert [c.confidence for c in certain] == pytest.approx([1.0, 0.0])
    assert certain[1].rules == (ChangeRule.ONE_TIME_CHANGE,)


def test_a_certain_change_output_overrules_a_peel_step_naming_the_other_output() -> None:
    # alice spends 1,000,000 sat: 700,000 to a fresh shop address, the 299,000 rest back to her own
    # input address. As a peel step the larger output would be change, but the reuse is certain:
    # output 1 is the change and output 0 (the larger one) the payment.
    view = tx([("alice", 1_000_000)], [("shop-new", 700_000), ("alice", 299_000, "p2wpkh", True)])
    combined = {c.n: c.confidence for c in combine_evidence(change_evidence(view, peel_chain=True))}
    assert combined == pytest.approx({0: 0.0, 1: 1.0})


evidence_lists = st.lists(
    st.builds(ChangeEvidence, st.integers(0, 4), st.sampled_from(list(ChangeRule)),
              st.floats(0.0, 0.99, allow_nan=False)), max_size=12)


@given(evidence_lists)
def test_combined_scores_of_uncertain_outputs_behave_like_probabilities_of_one_change(
        evidence: list[ChangeEvidence]) -> None:
    combined = combine_evidence(evidence)
    assert all(0.0 <= c.confidence <= 1.0 for c in combined)
    # the chance that exactly one output is the change: the scores sum to at most 1, so at most one
    # output can score above one half
    assert sum(c.confidence for c in combined) <= 1.0 + 1e-9
    assert sum(1 for c in combined if c.confidence > 0.5) <= 1


@given(evidence_lists, st.randoms())
def test_combined_evidence_does_not_depend_on_the_order_of_the_evidence(evidence: list[ChangeEvidence],
                                                                         rnd) -> None:
    shuffled = list(evidence)
    rnd.shuffle(shuffled)
    a, b = combine_evidence(evidence), combine_evidence(shuffled)
    assert [(c.n, sorted(c.rules)) for c in a] == [(c.n, sorted(c.rules)) for c in b]
    assert [c.confidence for c in a] == pytest.approx([c.confidence for c in b])


@given(evidence_lists, st.integers(0, 4), st.sampled_from(list(ChangeRule)), st.floats(0.01, 0.99))
def test_more_evidence_for_an_output_never_lowers_its_score(evidence: list[ChangeEvidence], n: int,
                                                             rule: ChangeRule, c: float) -> None:
    before = {x.n: x.confidence for x in combine_evidence(evidence)}.get(n, 0.0)
    after = {x.n: x.confidence for x in combine_evidence([*evidence, ChangeEvidence(n, rule, c)])}[n]
    assert after >= before - 1e-12
