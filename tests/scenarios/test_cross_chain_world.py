"""Cross-chain worlds: ground truth consistent with the batches, and every rule scored > 0 where possible."""

from __future__ import annotations

from fundtrail.analysis.conversions import detect_conversions
from fundtrail.analysis.tracing import trace_funds
from fundtrail.scenarios.crosschain import (
    BRIDGE_RULES,
    POOL_RULES,
    SWAP_RULES,
    CrossChainConfig,
    CrossChainWorld,
    evaluate_world,
    generate_cross_chain,
)
from fundtrail.store import ChainStore

CONFIG = CrossChainConfig(seed=7, noise=200, swaps=15, bridges=3, pool_users=3, cases=1)


def test_ground_truth_is_consistent() -> None:
    world = generate_cross_chain(CONFIG)
    assert generate_cross_chain(CONFIG).truth_dict() == world.truth_dict()  # same seed, same world
    txids = {(b.chain, t) for b in world.batches for t in b.tx_txid}
    for c in world.conversions:
        assert (c.in_chain, c.in_txid) in txids and (c.out_chain, c.out_txid) in txids
    assert {c.rule for c in world.conversions} == set(SWAP_RULES + BRIDGE_RULES)
    assert len({p.withdrawal for p in world.pool_links}) == len(world.pool_links)
    for p in world.pool_links:
        assert (p.chain, p.deposit) in txids and (p.chain, p.withdrawal) in txids
        assert set(p.heuristics) <= set(POOL_RULES)
    assert {h for p in world.pool_links for h in p.heuristics} == set(POOL_RULES)
    assert any(not p.heuristics for p in world.pool_links)  # unlinkable users too
    assert {b.chain for b in world.batches} == {"btc", "eth", "bsc", "polygon"}
    tagged = {(c, a) for c, a, _, category in world.tags if category == "exchange"}
    assert all((o.chain, o.address) in tagged for case in world.cases for o in case.cash_outs)


def test_each_rule_and_heuristic_is_scored() -> None:
    scores = evaluate_world(generate_cross_chain(CONFIG), policies=("haircut", "poison", "fifo"))
    m = scores.metrics
    for rule in SWAP_RULES + BRIDGE_RULES:
        assert m[f"conversions.{rule}.precision"] > 0 and m[f"conversions.{rule}.recall"] > 0, rule
    for rule in POOL_RULES:
        assert m[f"pool.{rule}.precision"] > 0 and m[f"pool.{rule}.recall"] > 0, rule
    assert scores.counts["pool.any"]["unlinkable_claimed"] == 0
    assert m["pool.any.recall"] < 1  # unlinkable withdrawals stay unlinked
    for policy in ("haircut", "poison", "fifo"):
        assert m[f"tracing.{policy}.hack-pool-swap-bridge.cash_out_recall_count"] == 1
        assert m[f"tracing.{policy}.ransom-btc-memo-bridge.cash_out_recall_count"] == 1
        assert m[f"tracing.{policy}.theft-lock-mint.cash_out_recall_count"] == 1
        assert m[f"tracing.{policy}.hack-unlinkable-pool.cash_out_recall_count"] == 0
        assert m[f"tracing.{policy}.ransom-btc-service-pool-dex-bridge.cash_out_recall_count"] == 1


def test_earlier_cases_unchanged_by_the_service_pool_case() -> None:
    world = generate_cross_chain(CONFIG)
    kinds = [c.kind for c in world.cases]
    assert kinds[-CONFIG.cases :] == ["ransom-btc-service-pool-dex-bridge"] * CONFIG.cases
    assert "ransom-btc-service-pool-dex-bridge" not in kinds[: -CONFIG.cases]


def _service_pool_case(world: CrossChainWorld) -> tuple[str, list[str], str, str, int]:
    case = next(c for c in world.cases if c.kind == "ransom-btc-service-pool-dex-bridge")
    (out,) = case.cash_outs
    assert case.chain == "btc" and out.chain == "bsc"
    return case.chain, list(case.seeds), out.address, out.exchange, out.value


def test_btc_ransom_through_service_pool_dex_and_bridge_reaches_the_bsc_exchange() -> None:
    world = generate_cross_chain(CONFIG)
    chain, seeds, address, exchange, value = _service_pool_case(world)
    with ChainStore(":memory:") as store:
        world.load(store)
        detect_conversions(store)
        doc = trace_funds(store, chain, seeds, policy="haircut").to_dict()
    rules = {c["rule"] for c in doc["conversions"]}
    assert {"thorchain-memo", "pool-linked-addresses", "tx-net-flow", "cbridge-transfer-id"} <= rules
    reached = [e for e in doc["endpoints"] if e.get("chain") == "bsc" and e.get("address") == address]
    assert len(reached) == 1
    assert reached[0]["entity"] == exchange
    # the memo paid 10.01 ETH; the relayer kept 0.5 % of the 10 ETH withdrawn, the 0.01 ETH sent to the
    # cash-out address ahead joined it there: every wei swapped and bridged is tainted, no rounding lost
    assert int(reached[0]["tainted_value"]) == value
