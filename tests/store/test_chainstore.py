"""The chain store: block-level idempotency, conflicts, rollback, exact amounts, Parquet round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fundtrail.domain.records import AccountBatch, BlockRecord, UtxoBatch
from fundtrail.errors import ChainConflictError, InputError
from fundtrail.store import ChainStore


def _utxo_chain() -> UtxoBatch:
    """Block 1: coinbase pays 50 to A. Block 2: A pays 30 to B and 19 to C (fee 1)."""
    b = UtxoBatch("btc")
    b.blocks += [BlockRecord("btc", 1, "h1", "h0", 1000, 1), BlockRecord("btc", 2, "h2", "h1", 1600, 2)]
    b.add_tx("cb1", 1, 1000, 0, coinbase=True)
    b.add_output("cb1", 0, "A", 50, "p2pkh")
    b.add_tx("cb2", 2, 1600, 0, coinbase=True)
    b.add_output("cb2", 0, "M", 51, "p2pkh")
    b.add_tx("t1", 2, 1600, 1)
    b.add_input("t1", 0, "cb1", 0)
    b.add_output("t1", 0, "B", 30, "p2wpkh")
    b.add_output("t1", 1, "C", 19, "p2wpkh")
    return b


def _counts(store: ChainStore) -> dict[str, int]:
    return {t: store.query(f"SELECT count(*) FROM {t}")[0][0]
            for t in ("blocks", "txs", "outputs", "inputs", "transfers", "addresses")}


def test_inputs_and_fees_are_resolved_from_spent_outputs(store: ChainStore) -> None:
    store.write_batch(_utxo_chain())
    assert store.query("SELECT address, value FROM inputs WHERE txid = 't1'") == [("A", 50)]
    assert store.query("SELECT fee FROM txs WHERE txid = 't1'") == [(1,)]
    assert store.query("SELECT fee FROM txs WHERE txid = 'cb1'") == [(None,)]


def test_writing_the_same_blocks_twice_changes_nothing(store: ChainStore) -> None:
    first = store.write_batch(_utxo_chain())
    before = _counts(store)
    second = store.write_batch(_utxo_chain())
    assert (first.blocks_written, second.blocks_written, second.blocks_skipped) == (2, 0, 2)
    assert _counts(store) == before


def test_inputs_spending_outputs_of_a_later_batch_resolve_afterwards(store: ChainStore) -> None:
    full = _utxo_chain()
    late = UtxoBatch("btc", blocks=[full.blocks[1]])
    late.add_tx("t1", 2, 1600, 1)
    late.add_input("t1", 0, "cb1", 0)
    late.add_output("t1", 0, "B", 30, "p2wpkh")
    store.write_batch(late)
    assert store.query("SELECT value FROM inputs") == [(None,)]
    store.write_batch(full)  # block 2 skipped, block 1 written
    assert store.resolve_inputs("btc") == 1
    assert store.query("SELECT address, value FROM inputs") == [("A", 50)]


def test_a_block_conflicting_with_the_stored_one_is_refused_and_nothing_changes(store: ChainStore) -> None:
    store.write_batch(_utxo_chain())
    before = _counts(store)
    other = UtxoBatch("btc", blocks=[BlockRecord("btc", 2, "OTHER", "h1", 1600, 1)])
    other.add_tx("x", 2, 1600, 0, coinbase=True)
    other.add_output("x", 0, "Z", 50, "p2pkh")
    with pytest.raises(ChainConflictError, match="height 2 conflicts with stored block h2"):
        store.write_batch(other)
    assert _counts(store) == before


def test_rollback_removes_blocks_above_the_fork_and_unresolves_their_spends(store: ChainStore) -> None:
    store.write_batch(_utxo_chain())
    assert store.rollback_to("btc", 1) == 1
    assert store.query("SELECT height FROM blocks") == [(1,)]
    assert store.query("SELECT txid FROM txs") == [("cb1",)]
    assert store.query("SELECT count(*) FROM outputs WHERE height = 2") == [(0,)]


def test_amounts_beyond_int64_are_exact(store: ChainStore) -> None:
    wei = 123_456_789_012_345_678_901_234_567_890
    b = AccountBatch("eth", blocks=[BlockRecord("eth", 7, "0xb7", "0xb6", 5, 1)])
    b.add_tx("0x1", 7, 5, 0, fee=21_000 * 10**9, status=True)
    b.add_transfer("0x1", 7, 5, 0, "native", "native", "0xaa", "0xbb", wei)
    b.add_transfer("0x1", 7, 5, 0, "fee", "native", "0xaa", None, 21_000 * 10**9)
    b.add_transfer("0x1", 7, 5, 3, "token", "0xtoken", "0xaa", "0xbb", 2**256 - 1)
    store.write_batch(b)
    assert store.query("SELECT value FROM transfers WHERE kind = 'native'")[0][0] == wei
    # beyond DECIMAL(38,0): kept exactly as text, never rounded
    assert store.query("SELECT value, value_text FROM transfers WHERE kind = 'token'") == [
        (None, str(2**256 - 1))]


def test_two_different_blocks_at_one_height_in_a_batch_are_bad_input(store: ChainStore) -> None:
    b = UtxoBatch("btc", blocks=[BlockRecord("btc", 1, "a", None, 0, 0),
                                 BlockRecord("btc", 1, "b", None, 0, 0)])
    with pytest.raises(InputError, match="two different blocks at height 1"):
        store.write_batch(b)


def test_parquet_round_trip_reproduces_every_table(store: ChainStore, tmp_path: Path) -> None:
    store.write_batch(_utxo_chain())
    counts = store.export_parquet(tmp_path / "export")
    assert counts["txs"] == 3 and counts["outputs"] == 4
    other = ChainStore(":memory:")
    other.import_parquet(tmp_path / "export")
    tables = (("txs", "txid"), ("outputs", "txid, n"), ("inputs", "txid, n"), ("blocks", "height"))
    for table, order in tables:
        assert other.query(f"SELECT * EXCLUDE (chain) FROM {table} ORDER BY {order}") == \
            store.query(f"SELECT * EXCLUDE (chain) FROM {table} ORDER BY {order}")
    # importing again changes nothing
    again = other.import_parquet(tmp_path / "export")
    assert again["txs"] == 0
    other.close()


def test_parquet_import_of_a_foreign_folder_is_refused(store: ChainStore, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a FundTrail Parquet export"):
        store.import_parquet(tmp_path)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("ABCDEFG"), st.integers(1, 10**15)), min_size=1, max_size=12),
       st.integers(1, 5))
def test_address_ids_are_dense_unique_and_stable(outputs: list[tuple[str, int]], split: int) -> None:
    """However blocks are batched, each address gets one id, ids are 0..n-1, and re-ingest keeps them."""
    store = ChainStore(":memory:")
    batches = []
    for i, (addr, value) in enumerate(outputs):
        b = UtxoBatch("btc", blocks=[BlockRecord("btc", i, f"h{i}", None, i, 1)])
        b.add_tx(f"cb{i}", i, i, 0, coinbase=True)
        b.add_output(f"cb{i}", 0, addr, value, "p2pkh")
        batches.append(b)
    for b in batches[::split] + batches:
        store.write_batch(b)
    rows = store.query("SELECT id, address FROM addresses ORDER BY id")
    assert [r[0] for r in rows] == list(range(len({a for a, _ in outputs})))
    assert sorted(r[1] for r in rows) == sorted({a for a, _ in outputs})
    received = dict(store.query("SELECT address, sum(value) FROM outputs GROUP BY address"))
    for addr in {a for a, _ in outputs}:
        assert received[addr] == sum(v for a, v in outputs if a == addr)
    store.close()
