"""Conversion indicators of the address risk: a pool interaction, a bridge used to hop chains and a swap
into a privacy coin, each with the conversion's txid, rule and confidence as evidence (the multi-chain
world of ``test_trace_conversions``)."""

from __future__ import annotations

from typing import Any

import pytest
from test_trace_conversions import DAVE, RECEIVER, TOKEN_B, addr, build

from fundtrail.analysis.risk import evaluate_address
from fundtrail.store import ChainStore

POOL, WITHDRAWER = addr(0xC1), addr(0xC2)
DEPOSIT, WITHDRAWAL = "0x" + "c1" * 32, "0x" + "c2" * 32


@pytest.fixture()
def world(store: ChainStore) -> ChainStore:
    build(store)
    store.con.execute(
        """INSERT INTO conversions (kind, rule, confidence, candidates, anonymity_set, in_chain, in_txid,
               in_address, in_asset, in_value, in_time, out_chain, out_txid, out_address, out_asset,
               out_value, out_time, evidence)
           VALUES ('pool', 'pool-same-gas-price', 0.7, 2, 5, 'eth', ?, ?, 'native', 10, 7000, 'eth', ?, ?,
                   'native', 10, 8000, NULL)""", [DEPOSIT, POOL, WITHDRAWAL, WITHDRAWER])
    return store


def fired(store: ChainStore, chain: str, address: str) -> dict[str, list[dict[str, Any]]]:
    report = evaluate_address(store, chain, address, trace=False)
    return {i.definition.id: [e.to_dict() for e in i.evidence] for i in report.assessment.indicators}


def test_a_pool_withdrawal_is_an_indicator_with_its_heuristic(world: ChainStore) -> None:
    found = fired(world, "eth", WITHDRAWER)
    [evidence] = found["pool_interaction"]
    assert (evidence["kind"], evidence["txid"], evidence["label"], evidence["confidence"],
            evidence["category"]) == ("conversion", WITHDRAWAL, "pool-same-gas-price", 70, "pool")
    assert "anonymity set 5" in evidence["description"] and "2 candidates" in evidence["description"]
    assert "bridge_chain_hop" not in found and "privacy_coin_swap" not in found


def test_bridges_that_changed_chain_are_indicators_on_both_sides(world: ChainStore) -> None:
    dave = fired(world, "eth", DAVE)
    rules = [(e["label"], e["confidence"]) for e in dave["bridge_chain_hop"]]
    assert sorted(rules) == [("cbridge-transfer-id", 99), ("thorchain-memo", 99)]
    assert all(e["txid"] for e in dave["bridge_chain_hop"])
    receiver = fired(world, "bsc", RECEIVER)
    assert [e["label"] for e in receiver["bridge_chain_hop"]] == ["cbridge-transfer-id"]
    assert "pool_interaction" not in dave and "privacy_coin_swap" not in dave  # TOKEN_B is no privacy coin


def test_a_swap_into_a_token_tagged_as_privacy_coin_is_an_indicator(world: ChainStore) -> None:
    world.con.execute("INSERT INTO tags (chain, address, label, category, jurisdiction, confidence_level, "
                      "source) VALUES ('eth', ?, 'Wrapped privacy coin', 'privacy_coin', NULL, 80, 'test')",
                      [TOKEN_B])
    evidence = fired(world, "eth", DAVE)["privacy_coin_swap"]
    assert {(e["label"], e["category"]) for e in evidence} == {("uniswap-v2-swap", "swap")}
    assert all(e["txid"] and e["confidence"] == 99 for e in evidence)
