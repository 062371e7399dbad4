"""ethereum-etl export folders (CSV and JSON lines) read into the chain store."""

from __future__ import annotations

import csv
import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fundtrail.chains.evm.etl import read_ethereum_etl
from fundtrail.errors import InputError, ParseError
from fundtrail.store import ChainStore
from fundtrail.store.ingest import ingest_batches
from fundtrail.store.lookups import address_activity

ETL = ("blockchain_etl_fixtures", "ethereum-etl")


def _etl(shared_data: Path) -> Path:
    return shared_data.joinpath(*ETL)


def _export(target: Path, files: dict[str, Path]) -> Path:
    """An export folder: each fixture file copied under the name the reader expects."""
    target.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        shutil.copyfile(source, target / name)
    return target


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.open() if line.strip()]


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _ingest(folder: Path, **kw: Any) -> ChainStore:
    store = ChainStore(":memory:")
    ingest_batches(store, "eth", read_ethereum_etl(folder, "eth", **kw))
    return store


def _transfers(store: ChainStore, kind: str) -> set[tuple]:
    return {(t, int(i), a, f, to, int(v)) for t, i, a, f, to, v in store.query(
        "SELECT txid, transfer_index, asset, from_address, to_address, value FROM transfers "
        "WHERE kind = ?", [kind])}


def _token_row(e: dict[str, Any]) -> tuple:
    """An ethereum-etl token transfer row (CSV or JSON) as the store's token transfer."""
    return (e["transaction_hash"], int(e["log_index"]), e["token_address"], e["from_address"],
            e["to_address"], int(e["value"]))


def test_cli_reads_post_shapella_csv_export(shared_data: Path, tmp_path: Path, cli, home: Path) -> None:
    source = _etl(shared_data) / "test_export_blocks_job" / "blocks_with_transactions_and_withdrawals"
    folder = _export(tmp_path / "export", {"blocks.csv": source / "expected_blocks.csv",
                                           "transactions.csv": source / "expected_transactions.csv"})
    result = cli("ingest", "ethereum-etl", str(folder), "--chain", "eth", "--home", str(home),
                 "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["blocks_written"] == 2

    blocks = _csv(source / "expected_blocks.csv")
    txs = _csv(source / "expected_transactions.csv")
    with ChainStore.open_home(home, read_only=True) as store:
        assert store.query("SELECT height, hash, prev_hash, time, tx_count FROM blocks ORDER BY height") == [
            (int(b["number"]), b["hash"], b["parent_hash"], int(b["timestamp"]), int(b["transaction_count"]))
            for b in blocks]
        assert store.query("SELECT count(*), count(fee), count(status) FROM txs") == [(298, 0, 0)]
        # without receipts neither failures nor fees are known
        assert _transfers(store, "native") == {
            (t["hash"], 0, "native", t["from_address"], t["to_address"] or None, int(t["value"]))
            for t in txs}
        assert _transfers(store, "fee") == set()
        expected = set()
        for b in blocks:
            for position, w in enumerate(json.loads(f"[{b['withdrawals']}]")):  # objects joined by commas
                expected.add((int(b["number"]), position, w["address"], w["amount"] * 10**9))
        got = {(h, int(i), to, int(v)) for h, i, to, v in store.query(
            "SELECT height, transfer_index, to_address, value FROM transfers WHERE kind = 'withdrawal' "
            "AND from_address IS NULL")}
        assert got == expected and len(got) == 32


def _stream_folder(shared_data: Path, target: Path, tokens_from: str) -> Path:
    source = _etl(shared_data) / "test_stream" / "blocks_17173049_17173050"
    return _export(target, {"blocks.json": source / "expected_blocks.json",
                            "transactions.json": source / "expected_transactions.json",
                            f"{tokens_from}.json": source / f"expected_{tokens_from}.json"})


def test_streamed_json_export_with_receipts_and_logs(shared_data: Path, tmp_path: Path) -> None:
    source = _etl(shared_data) / "test_stream" / "blocks_17173049_17173050"
    txs = _jsonl(source / "expected_transactions.json")
    logs = _jsonl(source / "expected_logs.json")
    tokens = _jsonl(source / "expected_token_transfers.json")
    store = _ingest(_stream_folder(shared_data, tmp_path / "export", "logs"))

    failed = {t["hash"] for t in txs if t["receipt_status"] == 0}
    assert len(failed) == 9
    assert {t for t, s in store.query("SELECT txid, status FROM txs") if s is False} == failed
    assert {t: int(f) for t, f in store.query("SELECT txid, fee FROM txs")} == {
        t["hash"]: t["receipt_gas_used"] * t["receipt_effective_gas_price"] for t in txs}
    assert _transfers(store, "native") == {
        (t["hash"], 0, "native", t["from_address"], t["to_address"] or t["receipt_contract_address"],
         t["value"]) for t in txs if t["hash"] not in failed}
    nft = {(x["transaction_hash"], x["log_index"]) for x in logs
           if len(x["topics"]) == 4 and x["topics"][0].startswith("0xddf252ad")}
    assert len(nft) == 9
    assert _transfers(store, "token") == {
        _token_row(e) for e in tokens if (e["transaction_hash"], e["log_index"]) not in nft}


def test_token_transfers_file_is_read_as_it_is(shared_data: Path, tmp_path: Path) -> None:
    source = _etl(shared_data) / "test_stream" / "blocks_17173049_17173050"
    tokens = _jsonl(source / "expected_token_transfers.json")
    store = _ingest(_stream_folder(shared_data, tmp_path / "export", "token_transfers"))
    assert _transfers(store, "token") == {_token_row(e) for e in tokens}
    assert len(tokens) == 291


def test_csv_export_with_receipts_and_logs_files(shared_data: Path, tmp_path: Path) -> None:
    etl = _etl(shared_data)
    blocks = etl / "test_export_blocks_job" / "block_with_logs"
    receipts = etl / "test_export_receipts_job" / "receipts_with_logs"
    folder = _export(tmp_path / "export", {"blocks.csv": blocks / "expected_blocks.csv",
                                           "transactions.csv": blocks / "expected_transactions.csv",
                                           "receipts.csv": receipts / "expected_receipts.csv",
                                           "logs.csv": receipts / "expected_logs.csv"})
    store = _ingest(folder)
    expected_receipts = _csv(receipts / "expected_receipts.csv")
    assert {t: int(f) for t, f in store.query("SELECT txid, fee FROM txs")} == {
        r["transaction_hash"]: int(r["gas_used"]) * int(r["effective_gas_price"]) for r in expected_receipts}
    tokens = _csv(etl / "test_export_token_transfers_job" / "block_with_transfers"
                  / "expected_token_transfers.csv")
    assert _transfers(store, "token") == {_token_row(e) for e in tokens}
    assert _transfers(store, "native") == {
        (t["hash"], 0, "native", t["from_address"], t["to_address"], int(t["value"]))
        for t in _csv(blocks / "expected_transactions.csv")}


def _block_row(response: Path) -> dict[str, Any]:
    block = json.loads(response.read_text())["result"]
    return {"number": int(block["number"], 16), "hash": block["hash"], "parent_hash": block["parentHash"],
            "timestamp": int(block["timestamp"], 16), "transaction_count": len(block["transactions"])}


@pytest.mark.parametrize(("case", "block_file"), [
    ("blocks_508110_508110", "web3_response.eth_getBlockByNumber_0x7c0ce_false.json"),
    ("blocks_2112234_2112234", "web3_response.eth_getBlockByNumber_0x203aea_false.json")])
def test_traces_give_rewards_and_created_contracts(shared_data: Path, tmp_path: Path, case: str,
                                                   block_file: str) -> None:
    source = _etl(shared_data) / "test_stream" / case
    traces = _jsonl(source / "expected_traces.json")
    # the export has no transactions file: its top-level traces are the transactions
    top = [t for t in traces if t["trace_type"] in ("call", "create") and t["trace_address"] == []]
    folder = tmp_path / "export"
    folder.mkdir()
    _write_jsonl(folder / "blocks.json", [_block_row(source / block_file)])
    _write_jsonl(folder / "transactions.json", [
        {"hash": t["transaction_hash"], "block_number": t["block_number"],
         "transaction_index": t["transaction_index"], "from_address": t["from_address"],
         "to_address": t["to_address"] if t["trace_type"] == "call" else None, "value": t["value"]}
        for t in top])
    shutil.copyfile(source / "expected_traces.json", folder / "traces.json")
    store = _ingest(folder)
    assert _transfers(store, "reward") == {
        (None, i, "native", None, t["to_address"], t["value"])
        for i, t in enumerate(t for t in traces if t["trace_type"] == "reward")}
    # creations pay the created contract; the trace names it where the transaction row does not
    assert any(t["trace_type"] == "create" for t in top)
    assert _transfers(store, "native") == {
        (t["transaction_hash"], 0, "native", t["from_address"], t["to_address"], t["value"]) for t in top}
    assert _transfers(store, "internal") == set()


def test_genesis_allocations_from_traces(shared_data: Path, tmp_path: Path) -> None:
    etl = _etl(shared_data)
    genesis = _csv(shared_data / "graphsense_eth_fixtures" / "ingest_resources" / "eth_genesis_transfers.csv")
    folder = _export(tmp_path / "export", {
        "blocks.csv": etl / "test_export_blocks_job" / "block_without_transactions" / "expected_blocks.csv",
        "transactions.csv": etl / "test_export_blocks_job" / "block_without_transactions" /
        "expected_transactions.csv"})  # an empty file: block 0 has no transactions
    with (folder / "traces.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["block_number", "transaction_hash", "transaction_index", "from_address",
                         "to_address", "value", "trace_type", "call_type", "trace_address", "error",
                         "status"])
        for g in genesis:
            writer.writerow([0, "", "", "", g["address"], g["value"], "genesis", "", "", "", 1])
    store = _ingest(folder)
    [(count, total)] = store.query("SELECT count(*), sum(value) FROM transfers WHERE kind = 'genesis' "
                                   "AND height = 0 AND from_address IS NULL")
    assert len(genesis) == 8893
    assert count == sum(1 for g in genesis if int(g["value"])) == 8891  # two allocations of nothing
    assert Decimal(total) == Decimal("72009990.49948") * 10**18  # the known genesis supply
    first = genesis[0]
    assert address_activity(store, "eth", first["address"])["balance"] == first["value"]


# --------------------------------------------------------------------------- batching


def test_batches_hold_complete_blocks(shared_data: Path, tmp_path: Path) -> None:
    folder = _stream_folder(shared_data, tmp_path / "export", "logs")
    batches = list(read_ethereum_etl(folder, "eth", batch_size=100))
    assert [len(b.blocks) for b in batches] == [1, 1]  # 116 then 182 transactions: one block each
    for batch in batches:
        [block] = batch.blocks
        assert set(batch.tx_height) == set(batch.tr_height) == {block.height}
        assert batch.tx_count == block.tx_count
    assert len(list(read_ethereum_etl(folder, "eth"))) == 1


# --------------------------------------------------------------------------- bad input


def _small_csv_export(shared_data: Path, target: Path) -> Path:
    source = _etl(shared_data) / "test_export_blocks_job" / "blocks_with_transactions"
    return _export(target, {"blocks.csv": source / "expected_blocks.csv",
                            "transactions.csv": source / "expected_transactions.csv"})


def _rewrite(path: Path, edit) -> None:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    edit(rows)
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)


def test_cli_malformed_value_names_file_line_and_column(shared_data: Path, tmp_path: Path, cli,
                                                       home: Path) -> None:
    folder = _small_csv_export(shared_data, tmp_path / "export")

    def bad_value(rows: list[list[str]]) -> None:
        rows[2][rows[0].index("value")] = "8.14041639063076e+18"

    _rewrite(folder / "transactions.csv", bad_value)
    result = cli("ingest", "ethereum-etl", str(folder), "--chain", "eth", "--home", str(home))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert f"{folder / 'transactions.csv'}:3:" in result.stderr and "'value'" in result.stderr
    with ChainStore.open_home(home, read_only=True) as store:
        assert store.summary() == []


def test_cli_missing_column_is_named(shared_data: Path, tmp_path: Path, cli, home: Path) -> None:
    folder = _small_csv_export(shared_data, tmp_path / "export")

    def drop_from(rows: list[list[str]]) -> None:
        col = rows[0].index("from_address")
        for row in rows:
            del row[col]

    _rewrite(folder / "transactions.csv", drop_from)
    result = cli("ingest", "ethereum-etl", str(folder), "--chain", "eth", "--home", str(home))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert f"{folder / 'transactions.csv'}:1:" in result.stderr and "'from_address'" in result.stderr
    with ChainStore.open_home(home, read_only=True) as store:
        assert store.summary() == []


def test_cli_folder_without_blocks_file(tmp_path: Path, cli, home: Path) -> None:
    (tmp_path / "transactions.csv").write_text("hash\n")
    result = cli("ingest", "ethereum-etl", str(tmp_path), "--chain", "eth", "--home", str(home))
    assert result.exit_code == 2 and "blocks.csv" in result.stderr
    result = cli("ingest", "ethereum-etl", str(tmp_path / "nothing"), "--chain", "eth", "--home", str(home))
    assert result.exit_code == 2 and result.stderr.count("\n") == 1


@pytest.mark.parametrize(("edit", "line", "words"), [
    (lambda rows: rows[1].__setitem__(0, "0xzz"), 2, "'hash'"),                    # not a hash
    (lambda rows: rows[2].pop(), 3, "fields"),                                       # short row
    (lambda rows: rows[1].__setitem__(3, "47219"), 3, "block 47218 after block 47219"),  # out of order
    (lambda rows: rows[1].__setitem__(3, "47217"), 2, "not in the blocks file"),    # block not exported
    (lambda rows: rows[1].__setitem__(5, "0x1234"), 2, "'from_address'"),           # bad address
])
def test_bad_transaction_rows(shared_data: Path, tmp_path: Path, edit, line: int, words: str) -> None:
    folder = _small_csv_export(shared_data, tmp_path / "export")
    _rewrite(folder / "transactions.csv", edit)
    with pytest.raises(ParseError) as caught:
        list(read_ethereum_etl(folder, "eth"))
    assert caught.value.source == str(folder / "transactions.csv")
    assert caught.value.where == str(line)
    assert words in caught.value.problem


def test_bad_json_line(shared_data: Path, tmp_path: Path) -> None:
    folder = _stream_folder(shared_data, tmp_path / "export", "logs")
    lines = (folder / "logs.json").read_text().splitlines()
    lines[4] = lines[4][:50]
    (folder / "logs.json").write_text("\n".join(lines) + "\n")
    with pytest.raises(ParseError) as caught:
        list(read_ethereum_etl(folder, "eth"))
    assert caught.value.source == str(folder / "logs.json") and caught.value.where == "5"


def test_utxo_chain_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        read_ethereum_etl(tmp_path, "btc")


def test_internal_transfers_from_traces_rows(tmp_path: Path) -> None:
    """A hand-written block: A calls B with 10; B sends 5 to C, calls D (7) which reverts after sending
    3 to E, callcodes itself 2, delegatecalls C carrying 10, creates F with 1, and self-destructs to A."""
    a, b, c, d, e, f = ("0x" + ch * 40 for ch in "abcdef")
    tx, block = "0x" + "01" * 32, "0x" + "02" * 32
    parent = "0x" + "03" * 32
    (tmp_path / "blocks.csv").write_text(f"number,hash,parent_hash,timestamp\n7,{block},{parent},1000\n")
    (tmp_path / "transactions.csv").write_text(
        "hash,block_number,transaction_index,from_address,to_address,value,gas_price,receipt_status,"
        f"receipt_gas_used\n{tx},7,0,{a},{b},10,3,1,21000\n")
    header = "block_number,transaction_hash,transaction_index,from_address,to_address,value,trace_type," \
             "call_type,reward_type,trace_address,error,status\n"
    rows = [  # not in tree order: the reader orders them by trace address
        f"7,{tx},0,{b},{c},5,call,call,,0,,1",
        f"7,{tx},0,{d},{e},3,call,call,,\"1,0\",,0",
        f"7,{tx},0,{b},{d},7,call,call,,1,Reverted,0",
        f"7,{tx},0,{a},{b},10,call,call,,,,1",
        f"7,{tx},0,{b},{b},2,call,callcode,,2,,1",
        f"7,{tx},0,{b},{c},10,call,delegatecall,,3,,1",
        f"7,{tx},0,{b},{f},1,create,,,4,,1",
        f"7,{tx},0,{b},{a},4,suicide,,,5,,1",
        f"7,,,,{e},2000000000000000000,reward,,block,,,1",
    ]
    (tmp_path / "traces.csv").write_text(header + "\n".join(rows) + "\n")
    store = _ingest(tmp_path)
    assert _transfers(store, "internal") == {
        (tx, 1, "native", b, c, 5), (tx, 4, "native", b, b, 2), (tx, 6, "native", b, f, 1),
        (tx, 7, "native", b, a, 4)}
    assert _transfers(store, "native") == {(tx, 0, "native", a, b, 10)}
    assert _transfers(store, "fee") == {(tx, 0, "native", a, None, 21000 * 3)}
    assert _transfers(store, "reward") == {(None, 0, "native", None, e, 2 * 10**18)}
    assert address_activity(store, "eth", b)["balance"] == str(10 - 5 - 1 - 4)
