"""Risk indicators on hand-written chains: each indicator fires on its pattern and not on a near miss.

Addresses are named (``addr("suspect")``); counterparties are tagged with small TagPacks written by the
tests, sanctions with small list files. Values are satoshi (BTC) or wei (ETH).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from fundtrail.analysis.risk import address_sections, evaluate_address, load_catalogue
from fundtrail.domain.addresses import segwit_address
from fundtrail.domain.records import AccountBatch, BlockRecord
from fundtrail.domain.risk import RiskLevel
from fundtrail.errors import InputError, ParseError
from fundtrail.intel.sanctions import import_list
from fundtrail.intel.tagpacks import import_tagpack
from fundtrail.store import ChainStore
from fundtrail.testing.utxo import UtxoChain


def addr(name: str) -> str:
    """A valid bech32 address named after ``name``."""
    return segwit_address("btc", 0, hashlib.sha256(name.encode()).digest()[:20])


def evm(name: str) -> str:
    """A lower-case EVM address named after ``name``."""
    return "0x" + hashlib.sha256(name.encode()).hexdigest()[:40]


S = addr("suspect")


def tag(store, tmp_path: Path, tags: list[dict], currency: str = "BTC") -> None:
    """Import a one-off TagPack for ``tags``."""
    path = tmp_path / f"pack-{len(list(tmp_path.glob('pack-*')))}.yaml"
    path.write_text(yaml.safe_dump({"title": "case tags", "creator": "Test Unit", "currency": currency,
                                    "confidence": "forensic", "source": "https://example.org/case-7",
                                    "tags": tags}))
    import_tagpack(store, path)


def fired(store, address: str = S, chain: str = "btc", **kw) -> dict[str, dict]:
    """The indicators that fire for ``address`` (no tracing unless asked), by id."""
    report = evaluate_address(store, chain, address, trace=kw.pop("trace", False), **kw)
    return {f.definition.id: f.to_dict() for f in report.assessment.indicators}


def funded(c: UtxoChain, name: str, value: int, to: str = S):
    """A counterparty ``name`` mined ``value`` and paid it all to ``to`` (fee 0)."""
    cb = c.coinbase(f"cb-{name}", [(addr(name), value)])
    c.next_block()
    return c.tx(f"pay-{name}", [cb.out(0)], [(to, value)])


# --------------------------------------------------------------------------------------------- lists


def test_sanctioned_address_is_severe(store, tmp_path) -> None:
    c = UtxoChain()
    funded(c, "payer", 1_000_000)
    c.write(store)
    listed = tmp_path / "sanctioned_addresses_XBT.txt"
    listed.write_text(f"{S}\n")
    import_list(store, listed, list_name="OFAC SDN")
    report = evaluate_address(store, "btc", S, trace=False)
    assert report.assessment.level is RiskLevel.SEVERE
    top = report.assessment.indicators[0]
    assert top.definition.id == "sanctioned_address"
    ev = top.evidence[0]
    assert (ev.kind, ev.label, ev.source) == ("sanction", "OFAC SDN XBT", str(listed.resolve()))


def test_sanctioned_cluster_mate_and_sanction_tag(store, tmp_path) -> None:
    from fundtrail.analysis.clustering import cluster_addresses

    c = UtxoChain()
    cb = c.coinbase("cb", [(S, 1_000_000), (addr("mate"), 1_000_000)])
    c.next_block()
    c.tx("co-spend", [cb.out(0), cb.out(1)], [(addr("shop"), 1_990_000)])
    c.write(store)
    cluster_addresses(store, "btc")
    listed = tmp_path / "sanctioned_addresses_XBT.txt"
    listed.write_text(addr("mate") + "\n")
    import_list(store, listed)
    found = fired(store)
    assert "sanctioned_address" in found
    assert found["sanctioned_address"]["evidence"][0]["address"] == addr("mate")
    # Switched off cluster propagation, the clean address alone is not sanctioned.
    catalogue = load_catalogue()
    strict = {**catalogue,
              "sanctioned_address": _with(catalogue["sanctioned_address"], include_cluster=False)}
    assert "sanctioned_address" not in fired(store, catalogue=strict)
    # An authority's sanction tag on the address counts as well.
    tag(store, tmp_path, [{"address": S, "label": "Lazarus Group", "abuse": "sanction"}])
    assert fired(store, catalogue=strict)["sanctioned_address"]["evidence"][0]["kind"] == "tag"


def _with(definition, **params):
    from dataclasses import replace

    return replace(definition, parameters={**definition.parameters, **params})


def test_direct_sanctions_exposure(store, tmp_path) -> None:
    c = UtxoChain()
    funded(c, "sdn", 2_000_000)
    c.write(store)
    listed = tmp_path / "sanctioned_addresses_XBT.txt"
    listed.write_text(addr("sdn") + "\n")
    import_list(store, listed)
    report = evaluate_address(store, "btc", S, trace=False)
    ids = [f.definition.id for f in report.assessment.indicators]
    assert "sanctions_exposure_direct" in ids and "sanctioned_address" not in ids
    assert report.assessment.level is RiskLevel.HIGH  # floor of direct sanctions exposure
    ind = next(f for f in report.assessment.indicators if f.definition.id == "sanctions_exposure_direct")
    assert ind.evidence[0].counterparty == addr("sdn") and ind.evidence[0].value == 2_000_000
    assert ind.evidence[0].txid == "pay-sdn"


# ---------------------------------------------------------------------------------------------- tags


def test_illicit_attribution_of_the_address_itself(store, tmp_path) -> None:
    c = UtxoChain()
    funded(c, "victim", 500_000)
    c.write(store)
    tag(store, tmp_path, [{"address": S, "label": "WannaCry", "abuse": "ransomware"}])
    report = evaluate_address(store, "btc", S, trace=False)
    assert report.assessment.level is RiskLevel.HIGH
    ind = report.assessment.indicators[0]
    assert ind.definition.id == "illicit_attribution"
    assert (ind.evidence[0].label, ind.evidence[0].source, ind.evidence[0].confidence) == (
        "WannaCry", "https://example.org/case-7", 50)


@pytest.mark.parametrize(("fields", "indicator"), [
    ({"abuse": "ransomware"}, "ransomware_exposure_direct"),
    ({"category": "market", "abuse": "drugs"}, "darknet_market_exposure_direct"),
    ({"abuse": "sextortion"}, "scam_exposure_direct"),
    ({"abuse": "pyramid_scheme"}, "scam_exposure_direct"),  # narrower than financial_crime
    ({"abuse": "service_hack"}, "theft_exposure_direct"),
    ({"abuse": "terrorism"}, "terrorism_exposure_direct"),
    ({"abuse": "child_sexual_abuse"}, "child_abuse_exposure_direct"),
    ({"category": "defi_bridge"}, "chain_hopping"),
])
def test_direct_exposure_indicators(store, tmp_path, fields, indicator) -> None:
    c = UtxoChain()
    funded(c, "source", 3_000_000)
    funded(c, "clean", 1_000_000)
    c.write(store)
    tag(store, tmp_path, [{"address": addr("source"), "label": "Tagged source", **fields},
                          {"address": addr("clean"), "label": "Exchange", "category": "exchange"}])
    found = fired(store)
    assert indicator in found
    ev = found[indicator]["evidence"][0]
    assert (ev["counterparty"], ev["value"], ev["label"]) == (addr("source"), "3000000", "Tagged source")
    assert found[indicator]["summary"].startswith("direct exposure: 75.0% of received")


def test_exposure_below_the_minimum_share_does_not_fire(store, tmp_path) -> None:
    c = UtxoChain()
    funded(c, "casino", 50_000)       # 5% of what S received: under gambling's 10%
    funded(c, "salary", 950_000)
    c.write(store)
    tag(store, tmp_path, [{"address": addr("casino"), "label": "Casino", "category": "gambling"}])
    assert "gambling_exposure_direct" not in fired(store)
    catalogue = load_catalogue()
    lax = {**catalogue,
           "gambling_exposure_direct": _with(catalogue["gambling_exposure_direct"], min_share=0.05)}
    assert "gambling_exposure_direct" in fired(store, catalogue=lax)


def test_indirect_exposure_indicator(store, tmp_path) -> None:
    c = UtxoChain()
    cb = c.coinbase("cb", [(addr("ransom"), 1_000_000)])
    c.next_block()
    hop = c.tx("t1", [cb.out(0)], [(addr("hop"), 1_000_000)])
    c.next_block()
    c.tx("t2", [hop.out(0)], [(S, 400_000), (addr("other"), 600_000)])
    c.write(store)
    tag(store, tmp_path, [{"address": addr("ransom"), "label": "Ryuk", "abuse": "ransomware"}])
    found = fired(store, trace=True)
    assert "ransomware_exposure_indirect" in found and "ransomware_exposure_direct" not in found
    ev = found["ransomware_exposure_indirect"]["evidence"][0]
    assert (ev["kind"], ev["counterparty"], ev["value"]) == ("traced", addr("ransom"), "400000")
    assert "100.0% of received" in found["ransomware_exposure_indirect"]["summary"]
    assert "ransomware_exposure_indirect" not in fired(store, trace=False)


# -------------------------------------------------------------------------------------------- mixers


def test_every_mixer_interaction_counts(store, tmp_path) -> None:
    c = UtxoChain()
    funded(c, "blender", 700_000)
    c.write(store)
    tag(store, tmp_path, [{"address": addr("blender"), "label": "Blender.io", "category": "mixing_service"}])
    found = fired(store)
    # One interaction, however small its share, fires the indicator.
    assert found["mixer_interaction"]["occurrences"] == 1
    assert found["mixer_interaction"]["evidence"][0]["txid"] == "pay-blender"


def test_coinjoin_participation_is_a_mixer_interaction(store) -> None:
    from fundtrail.analysis.coinjoin import detect_patterns

    c = UtxoChain()
    names = ["p1", "p2", "p3", "p4"]
    cb = c.coinbase("cb", [(S, 1_100_000)] + [(addr(n), 1_100_000) for n in names])
    c.next_block()
    # Five participants, five equal outputs of 1,000,000 and their change: a generic CoinJoin.
    outs = [(addr(f"mixed-{i}"), 1_000_000) for i in range(5)]
    outs += [(addr(f"chg-{i}"), 99_000) for i in range(5)]
    c.tx("cj", [cb.out(i) for i in range(5)], outs)
    c.write(store)
    assert "mixer_interaction" not in fired(store)  # patterns not detected yet: nothing known
    detect_patterns(store, "btc")
    found = fired(store)
    ev = found["mixer_interaction"]["evidence"][0]
    assert (ev["kind"], ev["txid"], ev["category"], ev["value"]) == (
        "transaction", "cj", "coinjoin", "1100000")


# ------------------------------------------------------------------------------------------ patterns


def _peel_chain(c: UtxoChain, start, steps: int, value: int) -> None:
    prev = start
    for i in range(steps):
        value -= 100_000
        prev = c.tx(f"peel-{i}", [prev], [(addr(f"payee-{i}"), 90_000), (addr(f"link-{i}"), value - 90_000)])
        value -= 90_000
        prev = prev.out(1)
        c.next_block()


def test_peel_chain(store) -> None:
    c = UtxoChain()
    cb = c.coinbase("cb", [(S, 10_000_000)])
    c.next_block()
    _peel_chain(c, cb.out(0), 4, 10_000_000)
    c.write(store)
    found = fired(store)
    assert found["peel_chain"]["summary"].startswith("peel chain of 4 steps")
    assert [e["txid"] for e in found["peel_chain"]["evidence"]] == [f"peel-{i}" for i in range(4)]
    assert found["peel_chain"]["evidence"][0]["counterparty"] == addr("payee-0")


def test_two_peel_steps_are_not_a_chain(store) -> None:
    c = UtxoChain()
    cb = c.coinbase("cb", [(S, 10_000_000)])
    c.next_block()
    _peel_chain(c, cb.out(0), 2, 10_000_000)
    c.write(store)
    assert "peel_chain" not in fired(store)


def _pass_through(hold_blocks: int) -> UtxoChain:
    """S receives twice and forwards each amount after ``hold_blocks`` blocks."""
    c = UtxoChain()
    for n in ("a", "b"):
        cb = c.coinbase(f"cb-{n}", [(addr(f"src-{n}"), 2_000_000)])
        c.next_block()
        rx = c.tx(f"in-{n}", [cb.out(0)], [(S, 2_000_000)])
        for i in range(hold_blocks):  # blocks of 600 seconds each, with an unrelated coinbase
            c.next_block()
            c.coinbase(f"filler-{n}-{i}", [(addr("miner"), 1)])
        c.tx(f"out-{n}", [rx.out(0)], [(addr(f"dst-{n}"), 1_990_000)])
        c.next_block()
    return c


def test_rapid_pass_through(store) -> None:
    _pass_through(hold_blocks=1).write(store)
    found = fired(store)
    summary = found["rapid_pass_through"]["summary"]
    assert summary.startswith("100% of the 0.04 BTC received left within 6 blocks")
    assert {e["txid"] for e in found["rapid_pass_through"]["evidence"]} == {"out-a", "out-b"}


def test_funds_held_for_long_are_not_rapid(store) -> None:
    _pass_through(hold_blocks=10).write(store)  # 10 blocks, 100 minutes: over 6 blocks and 60 minutes
    assert "rapid_pass_through" not in fired(store)


def _structured(store, values: list[int]) -> None:
    c = UtxoChain()
    for i, v in enumerate(values):
        funded(c, f"depositor-{i}", v)
        c.next_block()
    c.write(store)


def test_structuring_just_under_the_threshold(store, tmp_path) -> None:
    # The default catalogue's btc threshold is 1,000,000 sat with a 10% margin: 900,000 <= v < 1,000,000.
    _structured(store, [990_000, 950_000, 999_999, 400_000])
    found = fired(store)
    assert found["structuring"]["occurrences"] == 3
    assert sorted(e["value"] for e in found["structuring"]["evidence"]) == ["950000", "990000", "999999"]


def test_structuring_needs_repetition_and_takes_the_threshold_as_a_parameter(store, tmp_path, home) -> None:
    _structured(store, [990_000, 950_000, 1_000_000])  # 1,000,000 is not under the threshold
    assert "structuring" not in fired(store)
    # An agency's own threshold (in the home's indicators.yaml): 1,100,000 sat catches all three.
    (home / "indicators.yaml").write_text(yaml.safe_dump({"indicators": [
        {"id": "structuring", "parameters": {"thresholds": {"btc": 1_100_000}, "margin": 0.2}}]}))
    assert fired(store, home=home)["structuring"]["occurrences"] == 3


def test_dispersal_to_fresh_addresses(store) -> None:
    c = UtxoChain()
    cb = c.coinbase("cb", [(S, 6_000_000), (addr("old"), 1)])
    c.next_block()
    c.tx("split", [cb.out(0)], [(addr(f"fresh-{i}"), 1_000_000) for i in range(5)] + [(addr("old"), 990_000)])
    c.write(store)
    found = fired(store)
    assert found["fresh_address_dispersal"]["occurrences"] == 5
    # 5,000,000 of the 5,990,000 sent went to the five fresh addresses.
    assert found["fresh_address_dispersal"]["summary"] == "paid 5 fresh addresses, 83% of what it sent"


def test_paying_known_addresses_is_not_dispersal(store) -> None:
    c = UtxoChain()
    known = [addr(f"known-{i}") for i in range(5)]
    c.coinbase("cb0", [(a, 1_000) for a in known])
    cb = c.coinbase("cb", [(S, 6_000_000)])
    c.next_block()
    c.tx("split", [cb.out(0)], [(a, 1_000_000) for a in known])
    c.write(store)
    assert "fresh_address_dispersal" not in fired(store)


# ------------------------------------------------------------------------------------- account chain


def test_account_chain_mixer_and_rapid_movement(store, tmp_path) -> None:
    tornado, suspect, exchange = evm("tornado"), evm("suspect"), evm("exchange")
    batch = AccountBatch("eth", blocks=[
        BlockRecord("eth", h, f"0x{h:064x}", None, 1_700_000_000 + 12 * h, 1) for h in (1, 2, 3)])
    moves = ((1, "0xa1", tornado, suspect, 10**18), (2, "0xa2", suspect, exchange, 9 * 10**17),
             (3, "0xa3", tornado, suspect, 10**17))
    for h, txid, frm, to, value in moves:
        batch.add_tx(txid, h, 1_700_000_000 + 12 * h, 0, fee=21_000, status=True)
        batch.add_transfer(txid, h, 1_700_000_000 + 12 * h, 0, "native", "native", frm, to, value)
    store.write_batch(batch)
    tag(store, tmp_path, [{"address": tornado, "label": "Tornado Cash", "category": "mixing_service"}], "ETH")
    found = fired(store, suspect, "eth")
    assert found["mixer_interaction"]["occurrences"] == 2  # two deposits from the pool, one per transaction
    # 0.9 of the 1.1 ETH received left one block after arriving: 82% < 90%, not a pass-through ...
    assert "rapid_pass_through" not in found
    catalogue = load_catalogue()
    lax = {**catalogue,
           "rapid_pass_through": _with(catalogue["rapid_pass_through"], min_ratio=0.8, min_links=1)}
    # ... unless the agency sets 80%.
    assert "left within" in fired(store, suspect, "eth", catalogue=lax)["rapid_pass_through"]["summary"]


# ----------------------------------------------------------------------------------------- catalogue


def test_catalogue_files_override_and_extend(tmp_path, home) -> None:
    base = load_catalogue()
    assert len(base) >= 20 and all(d.source.startswith("FATF (2020)") for d in base.values())
    (home / "indicators.yaml").write_text(yaml.safe_dump({"indicators": [
        {"id": "mixer_interaction", "enabled": False}]}))
    extra = tmp_path / "agency.yaml"
    extra.write_text(yaml.safe_dump({"indicators": [
        {"id": "drugs_exposure", "title": "Drugs", "description": "Paid by drug sellers.",
         "source": "Agency manual", "section": "4.2", "check": "exposure", "weight": 70, "floor": "high",
         "parameters": {"mode": "direct", "categories": ["drugs"], "min_share": 0.2}}]}))
    merged = load_catalogue(extra, home=home)
    assert merged["mixer_interaction"].enabled is False
    drugs = merged["drugs_exposure"]
    assert drugs.floor is RiskLevel.HIGH and drugs.param("min_share") == 0.2
    incomplete = tmp_path / "bad.yaml"
    incomplete.write_text(yaml.safe_dump({"indicators": [{"id": "new_one", "weight": 5}]}))
    with pytest.raises(ParseError, match="new_one.*needs title"):
        load_catalogue(incomplete)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(yaml.safe_dump({"indicators": [{"id": "mixer_interaction", "check": "astrology"}]}))
    with pytest.raises(InputError, match="astrology"):
        load_catalogue(unknown)
    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml.safe_dump({"indicators": [{"id": "mixer_interaction", "wieght": 5}]}))
    with pytest.raises(ParseError, match="wieght"):
        load_catalogue(typo)


def test_clean_address_has_no_risk(store) -> None:
    c = UtxoChain()
    funded(c, "employer", 5_000_000)
    c.write(store)
    report = evaluate_address(store, "btc", S, trace=False)
    assert (report.assessment.level, report.assessment.score, report.assessment.indicators) == (
        RiskLevel.NONE, 0, ())


# ------------------------------------------------------------------------------------- fundtrail address


def test_address_command_sections(cli, home, tmp_path) -> None:
    c = UtxoChain()
    funded(c, "ransom", 3_000_000)
    funded(c, "blender", 1_000_000)
    with ChainStore.open_home(home) as store:
        c.write(store)
        tag(store, tmp_path, [
            {"address": addr("ransom"), "label": "LockBit", "abuse": "ransomware"},
            {"address": addr("blender"), "label": "Blender.io", "category": "mixing_service"}])
        sections = address_sections(store, home, "btc", S, trace=False)
        assert set(sections) == {"cluster", "tags", "sanctions", "exposure", "risk"}
        assert sections["cluster"] is None  # not clustered yet
        from fundtrail.analysis.clustering import cluster_addresses

        cluster_addresses(store, "btc")
    out = cli("address", S, "--chain", "btc", "--home", str(home), "--format", "json")
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert (doc["cluster"]["size"], doc["cluster"]["reason"]) == (1, "singleton")  # S never spent
    assert doc["sanctions"] == {"sanctioned": False, "matches": []}
    assert doc["tags"] == []  # S itself carries no tag
    received = doc["exposure"]["direct"]["native"]["received"]
    assert received["total"] == "4000000"
    assert received["by_category"]["ransomware"] == {"value": "3000000", "share": 0.75, "counterparties": 1}
    risk = doc["risk"]
    assert risk["level"] == "high" and {i["id"] for i in risk["indicators"]} >= {
        "ransomware_exposure_direct", "mixer_interaction"}
    ind = next(i for i in risk["indicators"] if i["id"] == "ransomware_exposure_direct")
    assert {"id", "title", "description", "source", "section", "evidence"} <= set(ind)
    assert ind["evidence"][0]["source"] == "https://example.org/case-7"
    human = cli("address", S, "--chain", "btc", "--home", str(home))
    assert "risk HIGH" in human.stdout and "ransomware_exposure_direct" in human.stdout
    # --indicators: an agency file switching the ransomware indicators off lowers the level.
    off = tmp_path / "off.yaml"
    off.write_text(yaml.safe_dump({"indicators": [{"id": "ransomware_exposure_direct", "enabled": False}]}))
    out = cli("address", S, "--chain", "btc", "--home", str(home), "--format", "json",
              "--indicators", str(off))
    assert "ransomware_exposure_direct" not in {i["id"] for i in json.loads(out.stdout)["risk"]["indicators"]}
