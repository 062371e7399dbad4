"""Ingest keeps what conversions need: swap/bridge/pool logs, call-data memos and gas prices."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from fundtrail.chains.evm.events import TOPIC_OF, EventName
from fundtrail.store import ChainStore

SEND = TOPIC_OF[EventName.CBRIDGE_SEND]
TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
TX = "0x" + "12" * 32
OTHER = "0x" + "34" * 32


def _write(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _export(folder: Path) -> Path:
    folder.mkdir()
    a, b = "0x" + "0a" * 20, "0x" + "0b" * 20
    _write(folder / "blocks.csv", ["number", "hash", "parent_hash", "timestamp"],
           [[1, "0x" + "01" * 32, "0x" + "00" * 32, 1000]])
    memo = ("=:ETH.ETH:" + a).encode().hex()
    _write(folder / "transactions.csv",
           ["hash", "block_number", "transaction_index", "from_address", "to_address", "value", "input",
            "gas_price"],
           [[TX, 1, 0, a, b, 0, "0x", 23_000_000_001], [OTHER, 1, 1, a, b, 5, "0x" + memo, 1]])
    _write(folder / "receipts.csv", ["transaction_hash", "block_number", "status", "gas_used"],
           [[TX, 1, 1, 21000], [OTHER, 1, 1, 21000]])
    word = "00" * 32
    _write(folder / "logs.csv",
           ["log_index", "transaction_hash", "block_number", "address", "data", "topics"],
           [[0, TX, 1, b, "0x" + word * 8, SEND],
            [1, TX, 1, b, "0x" + "00" * 31 + "05", f"{TRANSFER},0x{'00' * 12}{a[2:]},0x{'00' * 12}{b[2:]}"],
            [2, TX, 1, b, "0x", "0x" + "99" * 32]])
    return folder


def test_ethereum_etl_keeps_conversion_logs_on_any_evm_chain(tmp_path: Path, cli, home: Path) -> None:
    folder = _export(tmp_path / "export")
    for _ in range(2):  # idempotent: the second run writes nothing
        result = cli("ingest", "ethereum-etl", str(folder), "--chain", "arbitrum", "--home", str(home),
                     "--format", "json")
        assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["blocks_written"] == 0
    with ChainStore.open_home(home, read_only=True) as store:
        assert store.query("SELECT chain, txid, height, log_index, topics FROM logs") == [
            ("arb", TX, 1, 0, [SEND])]
        assert store.query("SELECT txid, kind, data FROM payloads ORDER BY txid") == [
            (TX, "gas_price", "23000000001"), (OTHER, "memo", "=:ETH.ETH:0x" + "0a" * 20)]
        assert store.query("SELECT count(*) FROM transfers WHERE kind = 'token'") == [(1,)]
        store_rows = store.query("SELECT count(*) FROM logs")
    assert store_rows == [(1,)]


def test_rollback_removes_logs_and_payloads(tmp_path: Path) -> None:
    from fundtrail.chains.evm.etl import read_ethereum_etl
    from fundtrail.store.ingest import ingest_batches

    store = ChainStore(":memory:")
    ingest_batches(store, "bsc", read_ethereum_etl(_export(tmp_path / "export"), "bsc"))
    assert store.query("SELECT count(*) FROM logs WHERE chain = 'bsc'") == [(1,)]
    store.rollback_to("bsc", 0)
    assert store.query("SELECT count(*) FROM logs") == [(0,)]
    assert store.query("SELECT count(*) FROM payloads") == [(0,)]
