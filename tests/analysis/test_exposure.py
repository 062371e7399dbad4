"""Direct and indirect exposure on hand-written chains, counterparties tagged by small TagPacks."""

from __future__ import annotations

import hashlib
import types
from pathlib import Path

import yaml

from fundtrail.analysis.exposure import direct_exposure, indirect_exposure
from fundtrail.domain.addresses import segwit_address
from fundtrail.domain.records import AccountBatch, BlockRecord
from fundtrail.intel.sanctions import import_list
from fundtrail.intel.tagpacks import import_tagpack
from fundtrail.testing.utxo import UtxoChain


def addr(name: str) -> str:
    """A valid bech32 address named after ``name``."""
    return segwit_address("btc", 0, hashlib.sha256(name.encode()).digest()[:20])


def evm(name: str) -> str:
    """A lower-case EVM address named after ``name``."""
    return "0x" + hashlib.sha256(name.encode()).hexdigest()[:40]


def tag(store, tmp_path: Path, currency: str, tags: list[dict]) -> None:
    """Import a one-off TagPack tagging ``tags`` (address, label, category/abuse)."""
    path = tmp_path / f"pack-{currency}-{len(list(tmp_path.glob('pack-*')))}.yaml"
    path.write_text(yaml.safe_dump({"title": "test tags", "creator": "Test Unit", "currency": currency,
                                    "confidence": "forensic", "source": "https://example.org/case-7",
                                    "tags": tags}))
    import_tagpack(store, path)


R, E, S, X2, M, G, E2 = (addr(n) for n in ("ransom", "exchange", "suspect", "suspect-2", "mixer", "casino",
                                           "other"))


def scenario(store, tmp_path: Path) -> None:
    """S receives from R (ransomware) and, in a co-spend, from R and E (exchange); sends to M (mixer),
    back to its own X2, and to G (gambling, sanctioned). Values in satoshi, fee 10,000 where spent.

    cb1: R 10,000,000 | E 2,010,000 | X2 3,000,000
    t1:  R(cb1:0) -> S 6,000,000, R 3,990,000
    t2:  R(t1:1) + E(cb1:1) -> S 4,000,000, E2 1,990,000
         S gets 4,000,000 * 3,990,000 / 6,000,000 = 2,660,000 from R and 1,340,000 from E
    t3:  S(t1:0) + X2(cb1:2) -> M 5,000,000, X2 3,990,000
         S's share of the inputs is 6/9: 3,333,333 to M, 2,660,000 to X2
    t4:  S(t2:0) -> S 3,000,000 (change, not received), G 990,000
    """
    c = UtxoChain()
    cb = c.coinbase("cb1", [(R, 10_000_000), (E, 2_010_000), (X2, 3_000_000)])
    c.next_block()
    t1 = c.tx("t1", [cb.out(0)], [(S, 6_000_000), (R, 3_990_000)])
    c.next_block()
    t2 = c.tx("t2", [t1.out(1), cb.out(1)], [(S, 4_000_000), (E2, 1_990_000)])
    c.next_block()
    c.tx("t3", [t1.out(0), cb.out(2)], [(M, 5_000_000), (X2, 3_990_000)])
    c.next_block()
    c.tx("t4", [t2.out(0)], [(S, 3_000_000), (G, 990_000)])
    c.write(store)
    tag(store, tmp_path, "BTC", [
        {"address": R, "label": "LockBit", "abuse": "ransomware"},
        {"address": E, "label": "Northwind Exchange", "category": "exchange"},
        {"address": M, "label": "Blender", "category": "mixing_service"},
        {"address": G, "label": "Lucky Casino", "category": "gambling"},
    ])
    listed = tmp_path / "sanctioned_addresses_XBT.txt"
    listed.write_text(G + "\n")
    import_list(store, listed)


def test_direct_exposure_splits_co_spends_and_skips_change(store, tmp_path) -> None:
    scenario(store, tmp_path)
    exposure = direct_exposure(store, "btc", S)
    received = exposure.by_category("native", "received")
    assert exposure.totals[("native", "received")] == 10_000_000  # t4's change back to S is not received
    assert received["ransomware"].value == 6_000_000 + 2_660_000
    assert received["ransomware"].share == 0.866 and received["ransomware"].counterparties == 1
    assert received["exchange"].value == 1_340_000
    sent = exposure.by_category("native", "sent")
    assert exposure.totals[("native", "sent")] == 3_333_333 + 2_660_000 + 990_000
    assert sent["mixing_service"].value == 3_333_333
    # G is both a gambling service and on a sanctions list: it counts towards both.
    assert sent["gambling"].value == sent["sanction"].value == 990_000
    # Without clusters, S's own X2 is just an unattributed counterparty.
    assert sent["unattributed"].value == 2_660_000
    flow = next(f for f in exposure.flows if f.counterparty == R)
    assert (flow.direction, flow.tx_count, flow.txids) == ("received", 2, ("t1", "t2"))
    doc = exposure.to_dict()
    assert doc["native"]["received"]["by_category"]["ransomware"] == {
        "value": "8660000", "share": 0.866, "counterparties": 1}


def test_cluster_mates_are_not_counterparties(store, tmp_path) -> None:
    from fundtrail.analysis.clustering import cluster_addresses

    scenario(store, tmp_path)
    cluster_addresses(store, "btc")  # t3 spends S and X2 together: one wallet
    sent = direct_exposure(store, "btc", S).by_category("native", "sent")
    assert "unattributed" not in sent
    assert sent["mixing_service"].value == 3_333_333


def test_unknown_address_has_no_exposure(store, tmp_path) -> None:
    scenario(store, tmp_path)
    exposure = direct_exposure(store, "btc", addr("nobody"))
    assert exposure.flows == () and exposure.to_dict() == {}


def test_account_chain_exposure_per_asset(store, tmp_path) -> None:
    tornado, binance, phisher, suspect = evm("tornado"), evm("binance"), evm("phisher"), evm("suspect")
    usdt = evm("usdt-contract")
    batch = AccountBatch("eth", blocks=[BlockRecord("eth", 1, "0x" + "01" * 32, None, 1_700_000_000, 4)])
    txs = [("0xa1", True), ("0xa2", True), ("0xa3", True), ("0xa4", False)]
    for i, (txid, ok) in enumerate(txs):
        batch.add_tx(txid, 1, 1_700_000_000, i, fee=21_000, status=ok)
    batch.add_transfer("0xa1", 1, 1_700_000_000, 0, "native", "native", tornado, suspect, 10**18)
    batch.add_transfer("0xa2", 1, 1_700_000_000, 0, "native", "native", suspect, binance, 6 * 10**17)
    batch.add_transfer("0xa2", 1, 1_700_000_000, 0, "fee", "native", suspect, None, 21_000)
    batch.add_transfer("0xa3", 1, 1_700_000_000, 3, "token", usdt, phisher, suspect, 100_000_000)
    # 0xa4 failed: its value did not move.
    batch.add_transfer("0xa4", 1, 1_700_000_000, 0, "native", "native", suspect, binance, 3 * 10**17)
    store.write_batch(batch)
    tag(store, tmp_path, "ETH", [
        {"address": tornado, "label": "Tornado Cash", "category": "mixing_service"},
        {"address": binance, "label": "Binance", "category": "exchange"},
        {"address": phisher, "label": "Fake wallet drainer", "abuse": "phishing"},
    ])
    exposure = direct_exposure(store, "eth", suspect.upper().replace("0X", "0x"))
    assert exposure.assets() == ["native", usdt]
    assert exposure.by_category("native", "received")["mixing_service"].value == 10**18
    sent = exposure.by_category("native", "sent")
    assert exposure.totals[("native", "sent")] == 6 * 10**17  # the failed transfer and the fee do not count
    assert sent["exchange"].share == 1.0
    assert exposure.by_category(usdt, "received")["phishing"].value == 100_000_000


def test_indirect_exposure_through_a_real_trace(store, tmp_path) -> None:
    """miner -> R (ransomware) -> H -> S -> H2 -> G (gambling, sanctioned); haircut, values by hand.

    Backward from S: the 9,000,000 S received came whole from R, two hops away (H, one hop away, is
    direct exposure and unattributed). Forward: 8,000,000 of it reached G two hops away; 990,000 went to
    S2 and 10,000 to the fee.
    """
    c = UtxoChain()
    cb = c.coinbase("cb", [(addr("miner"), 10_000_000)])
    c.next_block()
    t0 = c.tx("t0", [cb.out(0)], [(R, 10_000_000)])
    c.next_block()
    t1 = c.tx("t1", [t0.out(0)], [(addr("hop"), 9_000_000), (addr("x"), 1_000_000)])
    c.next_block()
    t2 = c.tx("t2", [t1.out(0)], [(S, 9_000_000)])
    c.next_block()
    t3 = c.tx("t3", [t2.out(0)], [(addr("hop2"), 8_000_000), (addr("s2"), 990_000)])
    c.next_block()
    c.tx("t4", [t3.out(0)], [(G, 8_000_000)])
    c.write(store)
    tag(store, tmp_path, "BTC", [{"address": R, "label": "LockBit", "abuse": "ransomware"},
                                 {"address": G, "label": "Lucky Casino", "category": "gambling"}])
    listed = tmp_path / "sanctioned_addresses_XBT.txt"
    listed.write_text(G + "\n")
    import_list(store, listed)
    assert direct_exposure(store, "btc", S).by_category("native", "received").keys() == {"unattributed"}
    result = indirect_exposure(store, "btc", S, max_hops=4)
    received = result.by_category("native", "received")
    assert list(received) == ["ransomware"]  # the miner three hops back carries no tag: left out
    assert (received["ransomware"].value, received["ransomware"].share) == (9_000_000, 1.0)
    sent = result.by_category("native", "sent")
    assert sent["gambling"].value == sent["sanction"].value == 8_000_000
    assert round(sent["gambling"].share, 6) == 0.888889
    party = next(p for p in result.parties if p.address == R)
    assert (party.hops, party.entity) == (2, "LockBit")
    assert result.to_dict()["native"]["received"]["by_category"]["ransomware"]["value"] == "9000000"


def test_indirect_exposure_of_trace_stops_and_caps(store, tmp_path, monkeypatch) -> None:
    scenario(store, tmp_path)
    calls = []

    def fake_trace(store_, chain, seeds, params):
        direction = params.direction.value
        calls.append((chain, tuple(seeds), direction, params.policy.value, params.max_hops))
        flow = types.SimpleNamespace
        if direction == "backward":
            # R two and three hops back on one path: both count, capped at the traced total.
            return types.SimpleNamespace(seeded={"native": 1_000_000}, endpoints=(), flows=(
                flow(from_address=E, to_address=S, asset="native", tainted_value=1_000_000, hop=1),
                flow(from_address=R, to_address=E, asset="native", tainted_value=800_000, hop=2),
                flow(from_address=R, to_address=R, asset="native", tainted_value=800_000, hop=3)))
        return types.SimpleNamespace(seeded={"native": 600_000}, flows=(), endpoints=(
            types.SimpleNamespace(address=None, txid="cj-tx", asset="native", category="coinjoin",
                                  entity=None, tainted_value=600_000, hops=3),))

    import fundtrail.analysis.tracing as tracing

    monkeypatch.setattr(tracing, "trace_funds", fake_trace)
    result = indirect_exposure(store, "btc", S, max_hops=3)
    assert calls == [("btc", (S,), "backward", "haircut", 3), ("btc", (S,), "forward", "haircut", 3)]
    received = result.by_category("native", "received")
    assert "exchange" not in received  # E is one hop away: direct exposure, not indirect
    assert (received["ransomware"].value, received["ransomware"].share) == (1_000_000, 1.0)
    sent = result.by_category("native", "sent")
    assert (sent["coinjoin"].value, sent["coinjoin"].counterparties) == (600_000, 1)
    assert next(p for p in result.parties if p.category == "coinjoin").txid == "cj-tx"
