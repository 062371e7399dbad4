"""Etherscan labels as tags: category mapping, Etherscan as the source, export round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from fundtrail.intel.etherscan import category_for_labels, import_etherscan_labels
from fundtrail.intel.tagpacks import export_tagpacks, import_tagpack, stored_resolved_tags, tagpack_files
from fundtrail.intel.tagstore import attribute_addresses, tags_for
from fundtrail.store import ChainStore


@pytest.fixture()
def labels(shared_data: Path) -> Path:
    """The real Etherscan labels folder."""
    return shared_data / "etherscan_labels"


def test_label_slugs_map_to_categories() -> None:
    assert category_for_labels(["binance"]) == ("exchange", None)
    assert category_for_labels(["tornado-cash", "ofac-sanctions-lists"]) == ("mixing_service", "sanction")
    assert category_for_labels(["ethereum-mixer"]) == ("mixing_service", None)
    assert category_for_labels(["hop-protocol"]) == ("defi_bridge", None)
    assert category_for_labels(["gambling"]) == ("gambling", None)
    assert category_for_labels(["ofac-sanctions-lists"]) == (None, "sanction")
    assert category_for_labels(["blocked", "meme"]) == (None, None)


def test_accounts_csv(store, labels) -> None:
    result = import_etherscan_labels(store, labels / "accounts" / "tornado-cash.csv")
    assert result.tags == 63 and result.chains == {"eth": 63}
    pool = "0x12d66f87a04a9e220743712ce6d9bb1b5616b8fc"
    tag, = tags_for(store, "eth", pool)
    assert (tag.label, tag.category, tag.confidence) == (
        "Tornado.Cash: 0.1 ETH", "mixing_service", "web_crawl")
    assert tag.source == f"https://etherscan.io/address/{pool}" and tag.tagpack_title.startswith("Etherscan")
    import_etherscan_labels(store, labels / "accounts" / "binance.csv")
    binance = attribute_addresses(store, "eth", ["0x3f5ce5fbfe3e9af3971dd833d26ba9b5c936f0be"])
    assert binance["0x3f5ce5fbfe3e9af3971dd833d26ba9b5c936f0be"].category == "exchange"
    assert binance["0x3f5ce5fbfe3e9af3971dd833d26ba9b5c936f0be"].entity == "Binance"


def test_combined_labels_and_both_roles_of_a_pool(store, labels) -> None:
    result = import_etherscan_labels(store, labels / "combined" / "combinedAccountLabels.json")
    assert result.tags == 23_288
    # A pool labelled both tornado-cash and ofac-sanctions-lists is a mixer and sanctioned.
    pool = attribute_addresses(store, "eth", ["0x910Cbd523D972eb0a6f4cAe4618aD62622b39DbF"])
    att = pool["0x910cbd523d972eb0a6f4cae4618ad62622b39dbf"]
    assert (att.category, att.abuse) == ("mixing_service", "sanction")
    tokens = import_etherscan_labels(store, labels / "combined" / "combinedTokenLabels.json")
    assert tokens.tags == 7_253
    mkr = tags_for(store, "eth", "0x9f8f72aa9304c8b593d555f12ef6589cc3a579a2")
    assert "Maker (MKR)" in {t.label for t in mkr}


def test_etherscan_packs_export_and_reimport(store, labels, tmp_path) -> None:
    for name in ("bridge.csv", "ofac-sanctions-lists.csv", "gambling.csv"):
        import_etherscan_labels(store, labels / "accounts" / name)
    before = stored_resolved_tags(store)
    assert len(before) == 166 + 72 + 45
    export_tagpacks(store, tmp_path / "out")
    again = ChainStore(":memory:")
    try:
        for path in tagpack_files([tmp_path / "out"]):
            import_tagpack(again, path)
        assert stored_resolved_tags(again) == before
    finally:
        again.close()
