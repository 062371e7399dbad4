"""The fast ingest paths give the same rows as the plain ones.

Real data (../shared/data: mainnet raw blocks, bitcoin-etl and ethereum-etl exports) is ingested with the
in-memory address index and write-time input resolution, and again with SQL interning (the anti-join
over the chain's addresses) and input resolution by a full join, as the store did before: every table
must be identical. Further tests cover a forced hash collision, addresses interned behind the index's
back, inputs left for the end of the run (also when a killed run is rerun), and the worker process that
parses large inputs.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from fundtrail.chains.bitcoin import etl as btc_etl
from fundtrail.chains.bitcoin.etl import read_bitcoin_etl
from fundtrail.chains.bitcoin.raw import read_block_files
from fundtrail.chains.evm.etl import read_ethereum_etl
from fundtrail.errors import ParseError
from fundtrail.store import ChainStore, chainstore, interning
from fundtrail.store.ingest import ingest_batches
from fundtrail.store.interning import AddressIndex

TABLES = ("addresses", "blocks", "txs", "outputs", "inputs", "transfers", "logs", "payloads")
ETL = ("blockchain_etl_fixtures", "bitcoin-etl", "test_export_blocks_job")
ETH = ("blockchain_etl_fixtures", "ethereum-etl")


def _ingest_real(shared: Path, target: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Ingest the real samples into a new store at ``target``; every table's rows, sorted."""
    store = ChainStore(target / "s.duckdb")
    raw = shared / "bitcoin_raw_blocks"
    files = [raw / "blocks1-256.bz2", raw / "277647.dat.bz2", *sorted(raw.glob("block-*.blk"))]
    ingest_batches(store, "btc", read_block_files(files, "btc", batch_size=300,
                                                  known_height=lambda h: store.height_of("btc", h)))
    etl = shared.joinpath(*ETL)
    ingest_batches(store, "btc", read_bitcoin_etl(
        [etl / "bitcoin" / n / "expected_transactions.json"
         for n in ("block_0", "block_1", "stream_50001_50002")],
        "btc", batch_size=2))
    ingest_batches(store, "doge", read_bitcoin_etl(
        [etl / "dogecoin" / "block_with_float_precision_loss" / "expected_transactions.json"], "doge"))
    source = shared.joinpath(*ETH) / "test_stream" / "blocks_17173049_17173050"
    export = target / "eth"
    export.mkdir()
    for name in ("blocks", "transactions", "logs", "token_transfers"):
        shutil.copyfile(source / f"expected_{name}.json", export / f"{name}.json")
    ingest_batches(store, "eth", read_ethereum_etl(export, "eth", batch_size=1))
    rows = {t: store.query(f"SELECT * FROM {t} ORDER BY ALL") for t in TABLES}
    store.close()
    return rows


def _plain(monkeypatch: pytest.MonkeyPatch) -> None:
    """Interning through SQL only, inputs resolved against all stored outputs as they are written."""
    monkeypatch.setattr(chainstore, "load_index", lambda con, chain: None)
    monkeypatch.setattr(chainstore, "RESOLVE_WINDOW", 10**12)


def test_fast_paths_store_the_same_rows_as_plain_ones_on_real_data(
        shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "fast").mkdir()
    fast = _ingest_real(shared_data, tmp_path / "fast")
    assert len(fast["addresses"]) > 7000 and len(fast["inputs"]) > 12000 and len(fast["transfers"]) > 800
    # the raw blocks span many batches, so ids and resolution crossed batch boundaries
    with monkeypatch.context() as m:
        _plain(m)
        (tmp_path / "plain").mkdir()
        plain = _ingest_real(shared_data, tmp_path / "plain")
    for table in TABLES:
        assert fast[table] == plain[table], table
    # no input resolution left to the end of the run, tiny resolution chunks: same rows again
    with monkeypatch.context() as m:
        m.setattr(chainstore, "RESOLVE_WINDOW", -(10**12))
        m.setattr(chainstore, "RESOLVE_CHUNK", 50)
        (tmp_path / "late").mkdir()
        late = _ingest_real(shared_data, tmp_path / "late")
    for table in TABLES:
        assert late[table] == plain[table], table


def test_a_hash_collision_falls_back_to_sql_interning(shared_data: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as m:
        _plain(m)
        (tmp_path / "plain").mkdir()
        plain = _ingest_real(shared_data, tmp_path / "plain")
    # a first hash of only the address's last character: collisions in the first batch
    monkeypatch.setattr(interning, "HASHES_SQL", "hash(right({col}, 1)) AS h1, hash({col} || chr(1)) AS h2")
    (tmp_path / "collide").mkdir()
    collided = _ingest_real(shared_data, tmp_path / "collide")
    for table in TABLES:
        assert collided[table] == plain[table], table


def _etl_rows(first_height: int, blocks: int, tag: str) -> list[bytes]:
    lines = []
    for h in range(first_height, first_height + blocks):
        for i in range(3):
            key = hashlib.sha256(f"{tag}{h}.{i}".encode()).digest()[:20]
            lines.append(orjson.dumps({
                "hash": hashlib.sha256(f"tx{tag}{h}.{i}".encode()).hexdigest(), "block_number": h,
                "block_hash": hashlib.sha256(f"b{h}".encode()).hexdigest(),
                "block_timestamp": 1_600_000_000 + h,
                "is_coinbase": i == 0, "index": i, "inputs": [],
                "outputs": [{"index": 0, "script_hex": "76a914" + key.hex() + "88ac", "value": 1000 + i}]}))
    return lines


def test_addresses_interned_behind_the_index_are_noticed(tmp_path: Path) -> None:
    export = tmp_path / "a.json"
    export.write_bytes(b"\n".join(_etl_rows(0, 4, "a")) + b"\n")
    later = tmp_path / "b.json"
    later.write_bytes(b"\n".join(_etl_rows(4, 4, "b")) + b"\n")
    with ChainStore(tmp_path / "s.duckdb") as store:
        ingest_batches(store, "btc", read_bitcoin_etl([export], "btc", batch_size=3, prefetch=False))
        # another writer interns two addresses (the next ids) without this store's index knowing
        top = store.query("SELECT max(id) FROM addresses WHERE chain = 'btc'")[0][0]
        store.con.execute("INSERT INTO addresses VALUES ('btc', ?, 'x1'), ('btc', ?, 'x2')",
                          [top + 1, top + 2])
        ingest_batches(store, "btc", read_bitcoin_etl([later], "btc", batch_size=3, prefetch=False))
        ids = store.query("SELECT count(*), count(DISTINCT id), count(DISTINCT address), min(id), max(id) "
                          "FROM addresses WHERE chain = 'btc'")[0]
        assert ids == (ids[0], ids[0], ids[0], 0, ids[0] - 1) and ids[0] == 12 * 2 + 2
        unlinked = store.query("SELECT count(*) FROM outputs o LEFT JOIN addresses a ON a.chain = o.chain "
                               "AND a.id = o.address_id WHERE a.address IS DISTINCT FROM o.address")
        assert unlinked == [(0,)]


def _spending_export(path: Path) -> None:
    """Block h's coinbase pays an output that block h + 1 spends (inputs not enriched: the store
    resolves them)."""
    rows = []
    for h in range(6):
        key = hashlib.sha256(f"k{h}".encode()).digest()[:20]
        coinbase = {"hash": hashlib.sha256(f"cb{h}".encode()).hexdigest(), "block_number": h,
                    "block_hash": hashlib.sha256(f"b{h}".encode()).hexdigest(),
                    "block_timestamp": 1_600_000_000 + h, "is_coinbase": True, "index": 0, "inputs": [],
                    "outputs": [{"index": 0, "script_hex": "76a914" + key.hex() + "88ac", "value": 5000}]}
        rows.append(coinbase)
        if h:
            rows.append({**coinbase, "hash": hashlib.sha256(f"sp{h}".encode()).hexdigest(),
                         "is_coinbase": False,
                         "index": 1, "outputs": [{"index": 0, "script_hex": "76a914" + key.hex() + "88ac",
                                                  "value": 4000}],
                         "inputs": [{"index": 0, "spent_transaction_hash":
                                     hashlib.sha256(f"cb{h - 1}".encode()).hexdigest(),
                                     "spent_output_index": 0}]})
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")


def test_inputs_left_unresolved_by_a_killed_run_are_resolved_by_the_rerun(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    export = tmp_path / "spend.json"
    _spending_export(export)
    monkeypatch.setattr(chainstore, "RESOLVE_WINDOW", -1)  # nothing resolved as it is written
    with ChainStore(tmp_path / "s.duckdb") as store:
        # the run "dies" after its batches are written, before the end-of-run resolution
        for batch in read_bitcoin_etl([export], "btc", batch_size=2, prefetch=False):
            store.write_batch(batch)
        assert store.query("SELECT count(*) FROM inputs WHERE value IS NULL") == [(5,)]
        report = ingest_batches(store, "btc", read_bitcoin_etl([export], "btc", batch_size=2, prefetch=False))
        assert report.blocks_written == 0 and report.inputs_resolved == 5
        resolved = store.query("SELECT count(*) FROM inputs WHERE value = 5000 AND address_id IS NOT NULL")
        assert resolved == [(5,)]
        assert store.query("SELECT count(*) FROM txs WHERE fee = 1000") == [(5,)]


def test_address_index_finds_what_it_holds_and_refuses_half_matches() -> None:
    rng = np.random.default_rng(3)
    h1 = rng.integers(0, 2**63, 5000, dtype=np.uint64)
    h2 = rng.integers(0, 2**63, 5000, dtype=np.uint64)
    index = AddressIndex(h1[:100], h2[:100], np.arange(100, dtype=np.int64), 100)
    for start in range(100, 5000, 700):  # runs of several sizes, merged as they come
        stop = min(start + 700, 5000)
        index.add(h1[start:stop], h2[start:stop], np.arange(start, stop, dtype=np.int64))
    assert index.size == 5000 and index.next_id == 5000 and len(index.runs) < 8
    order = rng.permutation(5000)
    found = index.lookup(h1[order], h2[order])
    assert found is not None and (found == order).all()
    unknown = rng.integers(0, 2**63, 50, dtype=np.uint64)
    missing = index.lookup(unknown, unknown)
    assert missing is not None and (missing == -1).all()
    assert index.lookup(h1[7:8], h2[7:8] + np.uint64(1)) is None  # same first hash, other second
    assert AddressIndex.build(h1[[1, 1]], h2[[1, 2]], np.arange(2, dtype=np.int64), 2) is None


def test_a_bad_line_read_in_the_worker_process_is_named_after_the_batches_before_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Any, home: Path) -> None:
    export = tmp_path / "bad.json"
    lines = _etl_rows(0, 4, "w")
    lines.insert(10, b'{"hash": "nope", "block_number": 3, ')
    export.write_bytes(b"\n".join(lines) + b"\n")
    monkeypatch.setattr(btc_etl, "AHEAD_MIN_BYTES", 0)  # the worker process for any size
    heights = []
    with pytest.raises(ParseError) as caught:
        for batch in read_bitcoin_etl([export], "btc", batch_size=3):
            heights += [b.height for b in batch.blocks]
    assert heights == [0, 1, 2]
    assert caught.value.source == str(export) and caught.value.where == "11"
    result = cli("ingest", "bitcoin-etl", str(export), "--home", str(home))
    assert result.exit_code == 2
    assert f"{export}:11: malformed JSON" in result.output and "Traceback" not in result.output
    with ChainStore(home / "chain.duckdb") as store:
        assert store.query("SELECT count(*) FROM blocks") == [(0,)]  # one 20,000-tx batch: not written
