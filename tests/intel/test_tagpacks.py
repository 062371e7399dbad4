"""TagPack import and export: inheritance, chains, taxonomy checks, invalid addresses, round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from fundtrail.errors import ParseError
from fundtrail.intel.tagpacks import (
    chain_for_network,
    export_tagpacks,
    import_actorpack,
    import_tagpack,
    load_tagpack,
    load_taxonomy,
    pack_uri,
    read_yaml,
    resolved_tags_of,
    stored_resolved_tags,
    tagpack_files,
)
from fundtrail.intel.tagstore import attribute_addresses, tags_for

HAND_PACK = """
    title: Hand-made pack
    creator: Test Unit
    description: header fields are inherited by every tag
    currency: BTC
    confidence: authority_data
    category: exchange
    label: Header Exchange
    source: https://example.org/header
    lastmod: 2023-05-01
    tags:
    - address: 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa
    - address: 12c6DSiU4Rq3P4ZxziKxzrGq8TgCN7GSHD
      label: Own Label
      category: mixing_service
      confidence: ownership
    - address: '0xFA8E3920daF271daB92Be9B87d9998DDd94FEF08'
      currency: ETH
      abuse: scam
      source: https://example.org/tag
    - address: rGeyCsqc6vKXuyTGF39WJxmTRemoV3c97h
      currency: XRP
    - address: 'LM2WMpR1Rp6j3Sa59cMXMs1SPzj9eXpGc1'
      network: LTC
"""


def test_header_inheritance_and_overrides(store, write_pack) -> None:
    result = import_tagpack(store, write_pack("hand.yaml", HAND_PACK))
    assert result.tags == 5
    rows = {r[1]: r for r in store.query(
        "SELECT chain, address, label, category, abuse, confidence, confidence_level, source, lastmod "
        "FROM tags")}
    # Tag 0 sets nothing but its address: every tag field comes from the header.
    assert rows["1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"] == (
        "btc", "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "Header Exchange", "exchange", None, "authority_data",
        60, "https://example.org/header", "2023-05-01")
    # Tag 1 overrides label, category and confidence (ownership = 100) and inherits the rest.
    assert rows["12c6DSiU4Rq3P4ZxziKxzrGq8TgCN7GSHD"][2:7] == (
        "Own Label", "mixing_service", None, "ownership", 100)
    # Tag 2: another chain, EVM address canonicalised to lower case, abuse added, source overridden.
    eth = rows["0xfa8e3920daf271dab92be9b87d9998ddd94fef08"]
    assert eth[0] == "eth" and eth[3:5] == ("exchange", "scam") and eth[7] == "https://example.org/tag"
    # A chain FundTrail does not know is kept under its lower-case code, never dropped.
    assert rows["rGeyCsqc6vKXuyTGF39WJxmTRemoV3c97h"][0] == "xrp"
    assert result.unknown_chains == ("xrp",)
    # `network` names the chain as well as `currency` does.
    assert rows["LM2WMpR1Rp6j3Sa59cMXMs1SPzj9eXpGc1"][0] == "ltc"


def test_network_codes_map_to_fundtrail_chains() -> None:
    expected = {"BTC": "btc", "ETH": "eth", "LTC": "ltc", "BCH": "bch", "DOGE": "doge", "ZEC": "zec",
                "DASH": "dash", "BSC": "bsc", "BEP20": "bsc", "MATIC": "polygon", "AVAX": "avax",
                "TRX": "trx", "XMR": "xmr", "BEP2": "bep2", "Luna": "luna"}
    assert {code: chain_for_network(code) for code in expected} == expected


def test_confidence_levels_come_from_the_taxonomy() -> None:
    levels = load_taxonomy().confidence_levels
    assert levels["ownership"] == 100 and levels["authority_data"] == 60 and levels["service_data"] == 50
    assert len(levels) == 14


def test_unknown_concept_names_pack_tag_and_field(store, write_pack) -> None:
    path = write_pack("bad.yaml", """
        title: Bad
        creator: Test Unit
        currency: BTC
        confidence: forensic
        label: x
        source: https://example.org
        tags:
        - address: 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa
        - address: 12c6DSiU4Rq3P4ZxziKxzrGq8TgCN7GSHD
          abuse: not_a_concept
    """)
    with pytest.raises(ParseError) as info:
        import_tagpack(store, path)
    message = str(info.value)
    assert str(path) in message and "tag 1" in message and "abuse" in message and "not_a_concept" in message
    assert store.query("SELECT count(*) FROM tags") == [(0,)]


def test_unknown_confidence_and_missing_label_are_errors(write_pack) -> None:
    base = """
        title: Bad
        creator: Test Unit
        currency: BTC
        source: https://example.org
        {header}
        tags:
        - address: 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa
          {tag}
    """
    with pytest.raises(ParseError, match="tag 0.*label"):
        load_tagpack(write_pack("nolabel.yaml", base.format(header="", tag="")))
    with pytest.raises(ParseError, match="tag 0.*confidence.*'sure'"):
        load_tagpack(write_pack("conf.yaml", base.format(header="label: x", tag="confidence: sure")))
    with pytest.raises(ParseError, match="header.*category.*'nope'"):
        load_tagpack(write_pack("hdr.yaml", base.format(header="category: nope", tag="label: y")))


def test_invalid_addresses_are_reported_and_kept(store, packs) -> None:
    # plustoken.yaml has 12 tags; two addresses fail their base58 checks.
    result = import_tagpack(store, packs / "plustoken.yaml")
    assert result.tags == 12
    assert {t.address for t in result.invalid} == {"1MFgcyJ7ZNSknbTBRaih6zWDE6V1A64tRYs",
                                                  "14bwh6gmvol5ntwbvxqjkjdtzv4y5ebtvm"}
    assert store.query("SELECT count(*) FROM tags WHERE tagpack LIKE '%plustoken.yaml'") == [(12,)]
    flagged = store.query("SELECT count(*) FROM tags WHERE extra->>'invalid_address' IS NOT NULL")
    assert flagged == [(2,)]


def test_ofac_pack_flags_the_tron_address_filed_as_btc(store, packs) -> None:
    result = import_tagpack(store, packs / "ofac.yaml")
    assert result.tags == 572
    invalid = {t.address: t.reason for t in result.invalid}
    assert "Tron" in invalid["TUCsTq7TofTCJRRoHk6RvhMoS2mJLm5Yzq"]
    # Packs without a confidence rank at the taxonomy's "unknown" level.
    assert store.query("SELECT DISTINCT confidence, confidence_level FROM tags") == [(None, 5)]


def test_readme_addresses_resolve(store, packs) -> None:
    import_tagpack(store, packs / "ransomware.yaml")
    import_tagpack(store, packs / "tornado_cash.yaml")
    found = attribute_addresses(store, "btc", ["1Lud76Q98VRHCUiyK7XUs7AgFofrqXeP78"])
    att = found["1Lud76Q98VRHCUiyK7XUs7AgFofrqXeP78"]
    assert att.abuse == "ransomware" and att.entity == "7ev3n" and not att.via_cluster
    mixed_case = "0xd90e2f925DA726b50C4Ed8D0Fb90Ad053324F31b"
    tornado = attribute_addresses(store, "eth", [mixed_case])["0xd90e2f925da726b50c4ed8d0fb90ad053324f31b"]
    assert tornado.category == "mixing_service" and tornado.is_service
    shown = tags_for(store, "eth", mixed_case)
    assert [(t.category, t.confidence, t.confidence_level, t.via_cluster) for t in shown] == [
        ("mixing_service", "authority_data", 60, False)]
    assert shown[0].source == "https://home.treasury.gov/policy-issues/financial-sanctions/recent-actions/20220808"


def test_reimport_replaces_the_pack(store, write_pack) -> None:
    path = write_pack("hand.yaml", HAND_PACK)
    import_tagpack(store, path)
    import_tagpack(store, path)
    assert store.query("SELECT count(*) FROM tags") == [(5,)]
    assert store.query("SELECT count(*) FROM tagpacks") == [(1,)]
    # The pack loses a tag and changes a label: the stored rows follow it, nothing stale remains.
    text = path.read_text().replace("  label: Own Label\n", "  label: Renamed\n")
    text = text.replace("- address: rGeyCsqc6vKXuyTGF39WJxmTRemoV3c97h\n  currency: XRP\n", "")
    path.write_text(text)
    import_tagpack(store, path)
    assert store.query("SELECT count(*) FROM tags") == [(4,)]
    assert store.query("SELECT label FROM tags WHERE address = '12c6DSiU4Rq3P4ZxziKxzrGq8TgCN7GSHD'") == [
        ("Renamed",)]


def test_failed_reimport_keeps_the_previous_version(store, write_pack) -> None:
    path = write_pack("hand.yaml", HAND_PACK)
    import_tagpack(store, path)
    path.write_text(path.read_text().replace("category: mixing_service", "category: wizardry"))
    with pytest.raises(ParseError):
        import_tagpack(store, path)
    assert store.query("SELECT count(*) FROM tags") == [(5,)]


NORTHWIND_PACK = """
    title: Exchange tags
    creator: Test Unit
    currency: BTC
    confidence: service_data
    category: exchange
    source: https://example.org
    label: northwind hot wallet
    actor: northwind
    tags:
    - address: 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa
"""
"""A pack of one exchange address whose actor an ActorPack names."""


def test_actorpack_gives_jurisdictions_and_entity(store, write_pack) -> None:
    pack = write_pack("ex.yaml", NORTHWIND_PACK)
    actors = write_pack("test.actorpack.yaml", """
        title: Actors
        creator: Test Unit
        lastmod: 2024-01-01
        actors:
        - id: northwind
          label: Northwind Exchange
          uri: https://northwind.example
          categories: [exchange]
          jurisdictions: [AT, DE]
    """)
    import_tagpack(store, pack)  # tags first, actors later: jurisdictions are filled in afterwards
    assert import_actorpack(store, actors) == 1
    att = attribute_addresses(store, "btc", ["1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"])[
        "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"]
    assert (att.entity, att.jurisdiction, att.category) == ("Northwind Exchange", "AT,DE", "exchange")
    bad = write_pack("bad.actorpack.yaml", actors.read_text().replace("[AT, DE]", "[XX]"))
    with pytest.raises(ParseError, match="northwind.*jurisdictions.*XX"):
        import_actorpack(store, bad)


def test_real_actorpack_loads(store, shared_data) -> None:
    path = shared_data / "graphsense_tagpacks" / "actors" / "graphsense.actorpack.yaml.xz"
    assert import_actorpack(store, path) == 3813


SMALL_PACKS = ["demo.yaml", "tornado_cash.yaml", "walletexplorer.yaml", "exchange-wallets-bitfinexcom.yaml",
               "ofac.yaml", "etherhiding.yaml", "interpol-real_services.yaml", "lazarus.yaml",
               "plustoken.yaml", "etherscan-wordcloud-exchange.yaml",
               "defi_updated/defi-protocols_1inch.yaml", "hacks.yaml"]


def _header(path: Path) -> dict:
    doc = read_yaml(path)
    return {k: v for k, v in doc.items() if k != "tags"}


@pytest.mark.parametrize("by", ["pack", "category"])
def test_round_trip_of_real_packs(store, packs, tmp_path, by) -> None:
    from fundtrail.store import ChainStore

    originals = set()
    for name in SMALL_PACKS:
        import_tagpack(store, packs / name)
        originals |= resolved_tags_of(load_tagpack(packs / name))
    assert stored_resolved_tags(store) == originals
    out = tmp_path / "export"
    written = export_tagpacks(store, out, by=by)
    assert written and all(p.parent == out for p in written)
    again = ChainStore(":memory:")
    try:
        for path in tagpack_files([out]):
            import_tagpack(again, path)
        assert stored_resolved_tags(again) == originals
        if by == "pack":
            # Each exported pack keeps the original header, field for field.
            exported = {p.stem: _header(p) for p in written}
            for name in SMALL_PACKS:
                stem = Path(name).name.removesuffix(".yaml")
                assert exported[stem] == _header(packs / name), name
    finally:
        again.close()


def test_export_of_one_chain(store, packs, tmp_path) -> None:
    import_tagpack(store, packs / "demo.yaml")  # one tag each on BTC, BCH, ETH, XRP and ZEC
    written = export_tagpacks(store, tmp_path / "eth", chain="eth")
    assert len(written) == 1
    tags = read_yaml(written[0])["tags"]
    assert tags == [{"address": "0xFA8E3920daF271daB92Be9B87d9998DDd94FEF08", "currency": "ETH"}]


@pytest.mark.slow
def test_all_real_packs_import_and_a_big_pack_round_trips(store, packs, tmp_path) -> None:
    from fundtrail.store import ChainStore

    files = tagpack_files([packs])
    assert len(files) == 86
    total = sum(import_tagpack(store, f).tags for f in files)
    assert total == 524_170
    assert store.query("SELECT count(*) FROM tags WHERE tagpack LIKE '%samourai.yaml.xz'") == [(36_548,)]
    big = packs / "miners.yaml.xz"
    original = resolved_tags_of(load_tagpack(big))
    assert len(original) == 37_439
    written = export_tagpacks(store, tmp_path / "btc", chain="btc", uri=pack_uri(big))
    again = ChainStore(":memory:")
    try:
        exported, = written
        assert exported.name == "miners.yaml"
        import_tagpack(again, exported)
        assert stored_resolved_tags(again) == original
        assert _header(exported) == _header(big)
    finally:
        again.close()


@pytest.mark.parametrize("by", ["pack", "category"])
def test_export_carries_actor_jurisdictions_to_a_fresh_store(store, write_pack, tmp_path, by) -> None:
    from fundtrail.store import ChainStore

    pack = write_pack("ex.yaml", NORTHWIND_PACK)
    actors = write_pack("test.actorpack.yaml", """
        title: Actors
        creator: Test Unit
        actors:
        - id: northwind
          label: Northwind Exchange
          uri: https://northwind.example
          categories: [exchange]
          jurisdictions: [AT, DE]
        - id: unrelated
          label: Not named by any tag
          uri: https://unrelated.example
          categories: [exchange]
          jurisdictions: [FR]
    """)
    import_tagpack(store, pack)
    import_actorpack(store, actors)
    written = export_tagpacks(store, tmp_path / "out", by=by)
    assert (tmp_path / "out" / "actors.actorpack.yaml") in written
    assert "unrelated" not in (tmp_path / "out" / "actors.actorpack.yaml").read_text()
    fresh = ChainStore(":memory:")
    for path in written:
        (import_actorpack if ".actorpack." in path.name else import_tagpack)(fresh, path)
    address = "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"
    att = attribute_addresses(fresh, "btc", [address])[address]
    assert (att.entity, att.jurisdiction) == ("Northwind Exchange", "AT,DE")
