"""Attribution from tags: direct tags first, then cluster tags; highest confidence wins."""

from __future__ import annotations

import pytest

from fundtrail.domain.records import BlockRecord, UtxoBatch
from fundtrail.intel.attribution import attribute
from fundtrail.intel.tagpacks import import_tagpack
from fundtrail.intel.tagstore import (
    attribute_ids,
    cluster_attribution,
    cluster_of,
    propagate_to_clusters,
    tags_for,
)

# Five addresses paid by one coinbase; ids are interned in address order.
A = "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"   # id 0: tagged twice (web crawl 20, authority 60)
B = "1BoatSLRHtKNngkdXEeobR76b53LETtpyT"   # id 1: untagged, clustered with C
C = "1CounterpartyXXXXXXXXXXXXXXXUWLpVr"   # id 2: tagged ransomware, clustered with B and D
D = "1dice8EMZmqKvrGE4Qc9bUFf9PX3xaYDp"    # id 3: tagged exchange (low confidence), clustered with C
E = "1FeexV6bAHb8ybZjqQMjJrcCrHGW9sb6uF"   # id 4: untagged, not clustered

PACK = f"""
    title: Store test
    creator: Test Unit
    currency: BTC
    source: https://example.org
    tags:
    - address: {A}
      label: crawled name
      category: exchange
      confidence: web_crawl
    - address: {A}
      label: Authority Exchange
      category: exchange
      confidence: authority_data
    - address: {C}
      label: LockCrypt
      abuse: ransomware
      confidence: forensic
    - address: {D}
      label: Dice
      category: gambling
      confidence: heuristic
"""


@pytest.fixture()
def tagged(store, write_pack):
    batch = UtxoBatch("btc", blocks=[BlockRecord("btc", 0, "b0", None, 1_600_000_000, 1)])
    batch.add_tx("cb", 0, 1_600_000_000, 0, coinbase=True)
    for n, address in enumerate((A, B, C, D, E)):
        batch.add_output("cb", n, address, 1_000, "p2pkh")
    store.write_batch(batch)
    import_tagpack(store, write_pack("store.yaml", PACK))
    return store


def _ids(store):
    return {a: i for i, a in store.query("SELECT id, address FROM addresses WHERE chain = 'btc'")}


def _clusters(store, rows):
    store.con.execute("CREATE TABLE IF NOT EXISTS clusters (chain VARCHAR NOT NULL, "
                      "address_id BIGINT NOT NULL, cluster_id BIGINT NOT NULL, reason VARCHAR)")
    ids = _ids(store)
    store.con.executemany("INSERT INTO clusters VALUES ('btc', ?, ?, 'multi-input')",
                          [(ids[a], c) for a, c in rows])


def test_direct_tags_only_without_clusters(tagged) -> None:
    ids = _ids(tagged)
    found = attribute(tagged, "btc", ids.values())
    assert set(found) == {ids[A], ids[C], ids[D]}
    # Of A's two tags the authority tag (60) beats the web crawl (20).
    assert (found[ids[A]].entity, found[ids[A]].confidence, found[ids[A]].via_cluster) == (
        "Authority Exchange", 60, False)
    assert found[ids[C]].abuse == "ransomware" and found[ids[C]].category is None


def test_cluster_tags_propagate_and_direct_tags_win(tagged) -> None:
    _clusters(tagged, [(B, 7), (C, 7), (D, 7)])
    ids = _ids(tagged)
    found = attribute_ids(tagged, "btc", list(ids.values()))
    # B has no tag of its own: the best tag of its cluster, ransomware (forensic 50 > heuristic 10).
    b = found[ids[B]]
    assert (b.entity, b.abuse, b.via_cluster) == ("LockCrypt", "ransomware", True)
    # D keeps its own (weaker) tag: a direct tag comes before any cluster tag.
    assert (found[ids[D]].entity, found[ids[D]].via_cluster) == ("Dice", False)
    assert ids[E] not in found
    assert cluster_of(tagged, "btc", B) == (7, 3)
    assert cluster_attribution(tagged, "btc", 7).abuse == "ransomware"
    assert set(propagate_to_clusters(tagged, "btc")) == {ids[A], ids[B], ids[C], ids[D]}


def test_tags_for_shows_confidence_source_and_cluster(tagged) -> None:
    _clusters(tagged, [(B, 7), (C, 7), (D, 7)])
    direct = tags_for(tagged, "btc", A)
    assert [(t.label, t.confidence, t.confidence_level, t.via_cluster) for t in direct] == [
        ("Authority Exchange", "authority_data", 60, False), ("crawled name", "web_crawl", 20, False)]
    assert direct[0].source == "https://example.org" and direct[0].tagpack_title == "Store test"
    via = tags_for(tagged, "btc", B)
    assert [(t.address, t.label, t.via_cluster) for t in via] == [(C, "LockCrypt", True), (D, "Dice", True)]
