"""``fundtrail ingest blocks`` end to end: real blocks 1-255, look-ups, idempotency, bad input."""

from __future__ import annotations

import bz2
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from fundtrail.chains.bitcoin.raw import iter_block_bytes
from fundtrail.store import ChainStore

MAGIC = bytes.fromhex("f9beb4d9")
HAL = "1Q2TWHE3GMdB6BZKafqwxXtWAWgFt5Jvm3"
SATOSHI_9 = "12cbQLTFMXRnSzktFkuoG3eHoMeFtpTu3S"  # paid by the block-9 coinbase
HAL_TX = "f4184fc596403b9d638783cf57adfe4c75c605f6356fbc91338530e9831e9e16"
BTC = 10**8


@pytest.fixture(scope="module")
def raw_dir(shared_data: Path) -> Path:
    return shared_data / "bitcoin_raw_blocks"


@pytest.fixture(scope="module")
def blocks(raw_dir: Path) -> list[bytes]:
    with bz2.open(raw_dir / "blocks1-256.bz2", "rb") as f:
        return list(iter_block_bytes(f, MAGIC, "blocks1-256.bz2"))  # type: ignore[arg-type]


def _framed(data: list[bytes], magic: bytes = MAGIC) -> bytes:
    return b"".join(magic + struct.pack("<I", len(b)) + b for b in data)


def _counts(home: Path) -> list[dict[str, Any]]:
    with ChainStore.open_home(home, read_only=True) as store:
        return store.summary()


def _ingest(cli: Any, home: Path, *files: Path) -> Any:
    return cli("ingest", "blocks", *map(str, files), "--chain", "btc", "--home", str(home),
               "--format", "json")


def _json(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture()
def ingested(cli: Any, home: Path, raw_dir: Path) -> Path:
    report = _json(_ingest(cli, home, raw_dir / "blocks1-256.bz2"))
    assert (report["blocks_written"], report["txs_written"]) == (255, 262)
    return home


def test_blocks_1_to_255_and_lookups(cli: Any, ingested: Path, raw_dir: Path) -> None:
    home = str(ingested)
    (summary,) = _counts(ingested)
    assert (summary["blocks"], summary["min_height"], summary["max_height"]) == (255, 1, 255)
    assert (summary["txs"], summary["inputs"], summary["outputs"]) == (262, 7, 267)

    tx = _json(cli("tx", HAL_TX, "--chain", "btc", "--home", home, "--format", "json"))
    assert tx["height"] == 170
    assert tx["block_hash"] == "00000000d1145790a8694403d4063f323d499e655c83426834d4ce2f8dd4a2ee"
    assert tx["coinbase"] is False and tx["segwit"] is False
    assert [(o["n"], o["address"], o["value"], o["script_type"]) for o in tx["outputs"]] == [
        (0, HAL, str(10 * BTC), "p2pk"), (1, SATOSHI_9, str(40 * BTC), "p2pk")]
    assert [(i["prev_txid"], i["prev_n"], i["address"], i["value"]) for i in tx["inputs"]] == [
        ("0437cd7f8525ceed2324359c2d0ba26006d92d856a9c20fa0241106ee5a597c9", 0, SATOSHI_9, str(50 * BTC))]
    assert tx["fee"] == "0"

    hal = _json(cli("address", HAL, "--chain", "btc", "--home", home, "--format", "json"))
    assert (hal["received"], hal["sent"], hal["balance"]) == (str(10 * BTC), "0", str(10 * BTC))
    # 12cbQ...: 50 (block 9 coinbase) + change 40 (170), 30 (181), 29 (182), 28 (183), 18 (248) received;
    # 50, 40, 30, 29, 28 spent again by the payments of blocks 170, 181, 182, 183 and 248.
    sat = _json(cli("address", SATOSHI_9, "--chain", "btc", "--home", home, "--format", "json"))
    assert (sat["received"], sat["sent"], sat["balance"]) == (str(195 * BTC), str(177 * BTC), str(18 * BTC))


def test_ingesting_twice_changes_nothing(cli: Any, ingested: Path, raw_dir: Path) -> None:
    before = _counts(ingested)
    report = _json(_ingest(cli, ingested, raw_dir / "blocks1-256.bz2"))
    assert (report["blocks_written"], report["blocks_skipped"], report["txs_written"]) == (0, 255, 0)
    assert _counts(ingested) == before


def _bad(cli: Any, home: Path, path: Path, *expected: str, names_file: bool = True) -> None:
    before = _counts(home)
    result = _ingest(cli, home, path)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert (str(path) in result.stderr) == names_file
    for text in expected:
        assert text in result.stderr
    assert result.stdout == ""
    assert _counts(home) == before


def test_truncated_file(cli: Any, ingested: Path, blocks: list[bytes], tmp_path: Path) -> None:
    path = tmp_path / "truncated.dat"
    path.write_bytes(_framed(blocks)[:-100])
    _bad(cli, ingested, path, "truncated")


def test_wrong_magic(cli: Any, ingested: Path, blocks: list[bytes], tmp_path: Path) -> None:
    path = tmp_path / "ltc-framed.dat"
    path.write_bytes(_framed(blocks[:5], bytes.fromhex("fbc0b6db")))
    _bad(cli, ingested, path, "fbc0b6db", "ltc")


def test_flipped_byte_merkle_mismatch(cli: Any, ingested: Path, blocks: list[bytes], tmp_path: Path) -> None:
    b170 = bytearray(blocks[169])
    b170[b170.find(bytes.fromhex("04ae1a62fe09c5f5")) + 20] ^= 0x40  # inside Hal's public key
    path = tmp_path / "flipped.dat"
    path.write_bytes(_framed([*blocks[:169], bytes(b170), *blocks[170:]]))
    _bad(cli, ingested, path, "merkle root",
         "00000000d1145790a8694403d4063f323d499e655c83426834d4ce2f8dd4a2ee")


def test_garbage_file(cli: Any, ingested: Path, tmp_path: Path) -> None:
    path = tmp_path / "garbage.bin"
    path.write_bytes(b"this is not a block file at all " * 50)
    _bad(cli, ingested, path, "not a btc block file")


def test_conflicting_block_at_a_stored_height(cli: Any, ingested: Path, raw_dir: Path) -> None:
    # btcd's constructed chain shares the real genesis but has another block 1: a conflict, not a reorg.
    _bad(cli, ingested, raw_dir / "blk_0_to_4.dat.bz2", "height 1", "conflicts with stored block",
         "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048", names_file=False)


def test_fork_block_conflicts(cli: Any, home: Path, raw_dir: Path) -> None:
    report = _json(_ingest(cli, home, raw_dir / "blk_0_to_4.dat.bz2"))
    assert (report["blocks_written"], report["txs_written"]) == (5, 9)
    _bad(cli, home, raw_dir / "btcd_fork_blocks" / "blk_3A.dat.bz2", "height 3",
         "00000000474284d20067a4d33f6a02284e6ef70764a3a26d6a5b9df52ef663dd", names_file=False)


def test_ingest_keeps_the_transaction_graph_beside_the_store(ingested: Path) -> None:
    """The graph files an ingest leaves are the graph of the store as ingested (the next trace loads them)."""
    from fundtrail.analysis import graphstore
    from fundtrail.analysis.graph import build_utxo_graph, snapshot

    found = graphstore._load(ingested / "graph" / "btc", "btc")
    assert found is not None, "ingest left no graph"
    kept = found[0]
    with ChainStore.open_home(ingested, read_only=True) as store:
        assert kept.fingerprint == snapshot(store, "btc").graph
        fresh = build_utxo_graph(store, "btc")
    assert kept.tx_count == fresh.tx_count == 262
    assert kept.txid.to_pylist() == fresh.txid.to_pylist()
    for name in graphstore.ARRAYS:
        if name != "addr_order":  # built on first use in memory
            assert (getattr(kept, name) == getattr(fresh, name)).all(), name
    assert (kept._address_order() == fresh._address_order()).all()
