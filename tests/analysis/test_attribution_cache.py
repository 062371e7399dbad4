"""The attribution cache of tracing notices addresses that arrive after their tags (a long-lived store,
as the server and the watcher keep it)."""

from __future__ import annotations

from textwrap import dedent

from fundtrail.analysis.tracing.attribution import attribution_index
from fundtrail.domain.addresses import segwit_address
from fundtrail.intel.tagpacks import import_tagpack
from fundtrail.store import ChainStore
from fundtrail.testing.utxo import UtxoChain


def _addr(n: int) -> str:
    return segwit_address("btc", 0, bytes([n]) * 20)


def test_an_address_ingested_after_its_tag_is_attributed_without_reopening_the_store(tmp_path) -> None:
    exchange = _addr(7)
    pack = tmp_path / "ex.yaml"
    pack.write_text(dedent(f"""
        title: Exchange
        creator: Test Unit
        currency: BTC
        confidence: service_data
        category: exchange
        source: https://example.org
        label: exchange deposit
        tags:
        - address: {exchange}
    """).lstrip())
    store = ChainStore(":memory:")
    import_tagpack(store, pack)
    first = UtxoChain()
    first.coinbase("c1", [(_addr(1), 50_000)])
    store.write_utxo_batch(first.batch())
    before = attribution_index(store, "btc")
    assert len(before.services) == 0  # the tagged address is not in the store yet
    later = UtxoChain(start_height=2)
    later.tx("t1", [("c1", 0)], [(exchange, 49_000)])
    store.write_utxo_batch(later.batch())
    after = attribution_index(store, "btc")
    (exchange_id,) = store.con.execute(
        "SELECT id FROM addresses WHERE chain = 'btc' AND address = ?", [exchange]).fetchone()
    assert after.service_mask([exchange_id]).tolist() == [True]
