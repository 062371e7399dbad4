"""Accuracy scoring: pairwise clustering scores, detection scores, trace scores, and the evaluate command."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from fundtrail.scenarios.evaluate import change_metrics, pairwise_scores, score_trace, set_scores, spread
from fundtrail.scenarios.groundtruth import CashOut, Typology, TypologyKind


def _naive(truth: list[object], predicted: list[object]) -> tuple[int, int, int]:
    tp = pp = tr = 0
    for i, j in itertools.combinations(range(len(truth)), 2):
        same_t, same_p = truth[i] == truth[j], predicted[i] == predicted[j]
        tp += same_t and same_p
        pp += same_p
        tr += same_t
    return tp, pp, tr


def test_pairwise_scores_by_hand() -> None:
    # Owners A A A B B C; clusters 1 1 2 2 2 3.
    # True pairs: A has 3 pairs, B 1, C none: 4. Predicted pairs: cluster 1 has 1, cluster 2 has 3: 4.
    # Pairs right in both: (0,1) in A and cluster 1, (3,4) in B and cluster 2: 2.
    s = pairwise_scores(["A", "A", "A", "B", "B", "C"], [1, 1, 2, 2, 2, 3])
    assert (s.true_positive_pairs, s.predicted_pairs, s.true_pairs) == (2, 4, 4)
    assert s.precision == 0.5 and s.recall == 0.5 and s.f1 == 0.5


def test_pairwise_scores_extremes() -> None:
    singletons = pairwise_scores(["A", "A", "B", "B"], [1, 2, 3, 4])
    assert singletons.precision == 1.0 and singletons.recall == 0.0  # nothing merged: no false merge
    lumped = pairwise_scores(["A", "A", "B", "B"], [7, 7, 7, 7])
    assert (lumped.true_positive_pairs, lumped.predicted_pairs, lumped.true_pairs) == (2, 6, 2)
    assert lumped.precision == pytest.approx(1 / 3) and lumped.recall == 1.0
    perfect = pairwise_scores([5, 5, 9], ["x", "x", "y"])
    assert perfect.precision == perfect.recall == perfect.f1 == 1.0
    empty = pairwise_scores([], [])
    assert empty.precision == empty.recall == 1.0
    with pytest.raises(ValueError):
        pairwise_scores([1, 2], [1])


def test_pairwise_scores_agree_with_counting_every_pair() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(2, 60))
        truth = rng.integers(0, 8, n).tolist()
        predicted = rng.integers(0, 12, n).tolist()
        s = pairwise_scores(truth, predicted)
        assert (s.true_positive_pairs, s.predicted_pairs, s.true_pairs) == _naive(truth, predicted)


def test_set_scores_and_spread() -> None:
    s = set_scores({"a", "b", "c"}, {"b", "c", "d", "e"})
    assert (s.true_positives, s.precision, s.recall) == (2, 0.5, pytest.approx(2 / 3))
    assert set_scores(set(), set()).precision == 1.0
    two = spread([0.5, 1.0])
    assert (two.mean, two.min, two.max, two.n) == (0.75, 0.5, 1.0, 2)
    assert two.std == pytest.approx(math.sqrt(0.125))
    assert spread([0.3]).std == 0.0


def _cash(address: str, exchange: str, value: int, route: str) -> CashOut:
    return CashOut(address, exchange.lower(), exchange, "EE", value, "00" * 32, 1, route)


def test_score_trace_by_hand() -> None:
    typology = Typology(
        "ransomware-1",
        TypologyKind.RANSOMWARE,
        "ransomware-1",
        "Test",
        ("seed",),
        (),
        (),
        (),
        (
            _cash("X", "Ex A", 100, "peel"),
            _cash("X", "Ex A", 50, "wasabi"),
            _cash("Y", "Ex B", 200, "direct"),
            _cash("Z", "Ex A", 100, "whirlpool"),
        ),
    )

    def end(
        address: str | None, entity: str | None, category: str | None, value: int, reason: str = "service"
    ):
        return {
            "address": address,
            "entity": entity,
            "category": category,
            "tainted_value": str(value),
            "reason": reason,
        }

    document = {
        "endpoints": [
            end("X", "Ex A", "exchange", 120),
            end("Y", "Ex B", "exchange", 250),
            end("H", "Ex A", "exchange", 30),
            end(None, None, "coinjoin", 80, "coinjoin"),
            end("W", "Ex C", "exchange", 40),
            end("U", None, None, 9, "unspent"),
        ]
    }
    m = score_trace(document, typology).metrics("t")
    # Deposits X (150, mixed), Y (200), Z (100, mixed): credited min(120, 150) + min(250, 200) = 320 of 450.
    assert m["t.deposit_recall_count"] == pytest.approx(2 / 3)
    assert m["t.deposit_recall_value"] == pytest.approx(320 / 450)
    assert m["t.unmixed_deposit_recall_count"] == 1.0
    # Per exchange: A gets 150 of its true 250, B 200 of 200 (250 traced), C 0 of 40 traced.
    assert m["t.exchange_recall_value"] == pytest.approx(350 / 450)
    assert m["t.exchange_precision_value"] == pytest.approx(350 / 440)


def test_change_metrics_by_hand() -> None:
    from fundtrail.analysis.change import ensure_table
    from fundtrail.store import ChainStore
    from fundtrail.testing.utxo import UtxoChain

    chain = UtxoChain()
    c1 = chain.coinbase("c1", [("alice1", 50_000)])
    c2 = chain.coinbase("c2", [("carol1", 20_000)])
    chain.next_block()
    t1 = chain.tx("t1", [c1.out(0)], [("bob1", 30_000), ("alice2", 19_000)])  # change: alice2
    t2 = chain.tx("t2", [c2.out(0)], [("dave1", 10_000), ("erin1", 9_000)])  # no change
    chain.next_block()
    chain.tx("t3", [t1.out(0)], [("bob2", 29_000)])  # one output: out of scope
    chain.tx("t4", [t1.out(1), t2.out(0)], [("frank1", 28_000), ("dave2", 500)])  # two owners: out of scope
    owners = {"alice1": "A", "alice2": "A", "bob1": "B", "bob2": "B", "carol1": "C", "dave1": "D",
              "dave2": "D", "erin1": "E", "frank1": "F"}
    with ChainStore(":memory:") as store:
        chain.write(store)
        ensure_table(store)
        store.con.executemany(
            "INSERT INTO change_outputs VALUES ('btc', ?, 2, ?, NULL, ?, ?)",
            [("t1", 1, "combined", 0.9),    # right
             ("t2", 0, "combined", 0.85),   # wrong: dave1 is a payee
             ("t1", 0, "combined", 0.5),    # below the threshold
             ("t1", 0, "reuse", 1.0),       # a single rule, not the combined evidence
             ("t4", 0, "combined", 0.9)],   # outside the scored transactions
        )
        metrics, counts = change_metrics(store, "btc", owners, 0.8)
    assert metrics == {"change.precision": 0.5, "change.recall": 1.0}
    assert counts == {"true_change": 1, "taken": 2, "taken_right": 1, "taken_outside_scope": 1,
                      "threshold": 0.8}


def test_evaluate_command_scores_a_small_world(cli) -> None:
    result = cli("evaluate", "--worlds", "1", "--seed", "4", "--size", "700", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["worlds"] == 1 and doc["seeds"] == [4]
    metrics = doc["metrics"]
    for name, s in metrics.items():
        assert 0.0 <= s["min"] <= s["mean"] <= s["max"] <= 1.0, name
        assert s["std"] == 0.0
    for policy in ("poison", "haircut", "fifo"):
        assert metrics[f"tracing.{policy}.unmixed_deposit_recall_count"]["mean"] > 0.3
    assert metrics["clustering.co_spend.precision"]["mean"] > 0.9
    assert metrics["coinjoin.whirlpool_mix.recall"]["mean"] > 0.9
    assert metrics["change.precision"]["mean"] > 0.9
    counts = doc["per_world"][0]["counts"]
    assert counts["clustering"]["true_pairs"] > counts["clustering"]["true_positive_pairs"] > 0


def test_evaluate_rejects_no_worlds(cli) -> None:
    result = cli("evaluate", "--worlds", "0")
    assert result.exit_code == 2
