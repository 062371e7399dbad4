"""The bitcoin-etl JSON-lines reader: streaming, block batching, address rules and bad input.

Rows are written by hand in bitcoin-etl's format; the script/address pairs come from bitcoin-etl's
own export of Bitcoin block 50001 (shared_data/blockchain_etl_fixtures).
"""

from __future__ import annotations

import gzip
import hashlib
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from fundtrail.chains.bitcoin.etl import read_bitcoin_etl
from fundtrail.errors import InputError, ParseError
from fundtrail.store import ChainStore
from fundtrail.store.ingest import ingest_batches

# From bitcoin-etl's export of block 50001: the P2PKH script of 1HaHTfmvoUW6i6nhJf8jJs6tU4cHNmBQHQ
# and the P2PK script whose key hashes to 1PkqKGbNLDdDJGveCcNUMV9CEFH77ADrPQ.
P2PKH_HEX = "76a914b5cd7aaed869cd5ccb45868e8666e7e934a2373688ac"
P2PKH_ADDRESS = "1HaHTfmvoUW6i6nhJf8jJs6tU4cHNmBQHQ"
P2PK_HEX = ("4104c1b5671c8975087cc796d6ea73d2407591528b5c669106f9b6ab6ef6e373a57553e14866aaeffc44a9f58e5ee0c7"
            "faa7add7474f0a2c55a22cb40b949fdc933cac")
P2PK_ADDRESS = "1PkqKGbNLDdDJGveCcNUMV9CEFH77ADrPQ"


def txid(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def block_hash(height: int) -> str:
    return hashlib.sha256(f"block {height}".encode()).hexdigest()


def row(height: int, label: str, *, index: int = 0, coinbase: bool = False,
        outputs: list[dict[str, Any]] | None = None, inputs: list[dict[str, Any]] | None = None,
        **fields: Any) -> dict[str, Any]:
    """One bitcoin-etl transaction row."""
    doc = {"hash": txid(label), "size": 200, "virtual_size": 200, "version": 1, "lock_time": 0,
           "block_number": height, "block_hash": block_hash(height),
           "block_timestamp": 1_600_000_000 + height,
           "is_coinbase": coinbase, "index": index, "inputs": inputs or [],
           "outputs": outputs if outputs is not None else [out(0, P2PKH_HEX, 5_000)]}
    doc.update(fields)
    return doc


def out(n: int, script_hex: str | None, value: int, addresses: list[str] | None = None,
        kind: str = "pubkeyhash") -> dict[str, Any]:
    return {"index": n, "script_asm": "", "script_hex": script_hex, "required_signatures": 1, "type": kind,
            "addresses": addresses if addresses is not None else [], "value": value}


def inp(n: int, prev_label: str, prev_n: int, value: int | None = None,
        addresses: list[str] | None = None) -> dict[str, Any]:
    return {"index": n, "spent_transaction_hash": txid(prev_label), "spent_output_index": prev_n,
            "script_asm": "", "script_hex": "00", "sequence": 4294967295, "required_signatures": None,
            "type": None, "addresses": addresses or [], "value": value}


def write(path: Path, rows: list[dict[str, Any]], *, compress: bool = False) -> Path:
    data = b"".join(orjson.dumps(r) + b"\n" for r in rows)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def chain_rows(blocks: int, per_block: int) -> list[dict[str, Any]]:
    """Blocks of one coinbase and ``per_block - 1`` spends of the previous block's coinbase outputs."""
    rows = []
    for h in range(blocks):
        rows.append(row(h, f"cb{h}", coinbase=True,
                        outputs=[out(i, P2PKH_HEX, 1_000) for i in range(per_block)]))
        for i in range(1, per_block if h else 1):
            rows.append(row(h, f"t{h}.{i}", index=i, inputs=[inp(0, f"cb{h - 1}", i)],
                            outputs=[out(0, P2PK_HEX, 900)]))
    return rows


# ----------------------------------------------------------------------------------------- reading


def test_files_are_one_stream_and_a_block_may_span_two_files(tmp_path: Path, store: ChainStore) -> None:
    rows = chain_rows(3, 4)
    first = write(tmp_path / "a.json", rows[:6])   # block 0 (1 row), block 1 (4 rows), 1 row of block 2
    second = write(tmp_path / "b.json.gz", rows[6:], compress=True)
    batches = list(read_bitcoin_etl([first, second], "btc"))
    assert [[b.height for b in batch.blocks] for batch in batches] == [[0, 1, 2]]
    assert [b.tx_count for b in batches[0].blocks] == [1, 4, 4]
    ingest_batches(store, "btc", batches)
    assert store.query("SELECT count(*), count(DISTINCT txid) FROM txs") == [(9, 9)]
    # every spend found its coinbase output in the store
    assert store.query("SELECT count(*) FROM inputs WHERE value = 1000 AND address = ?",
                       [P2PKH_ADDRESS]) == [(6,)]
    assert store.query("SELECT count(*) FROM txs WHERE NOT coinbase AND fee = 100") == [(6,)]


def test_gzip_is_recognised_by_content(tmp_path: Path) -> None:
    path = write(tmp_path / "export.jsonl", chain_rows(2, 2), compress=True)
    assert [b.tx_count for b in read_bitcoin_etl([path], "btc")] == [3]


def test_batches_end_at_block_boundaries(tmp_path: Path) -> None:
    path = write(tmp_path / "t.json", chain_rows(6, 3))
    batches = list(read_bitcoin_etl([path], "btc", batch_size=4))
    # blocks hold 1, 3, 3, 3, 3, 3 txs: a batch closes once it holds 4 or more
    assert [[b.height for b in batch.blocks] for batch in batches] == [[0, 1], [2, 3], [4, 5]]
    for batch in batches:
        heights = {b.height for b in batch.blocks}
        assert set(batch.tx_height) == heights
        assert sum(b.tx_count for b in batch.blocks) == batch.tx_count


def test_prefetching_keeps_order_and_raises_errors_after_the_good_batches(tmp_path: Path) -> None:
    path = write(tmp_path / "t.json", chain_rows(6, 3))
    with path.open("ab") as f:
        f.write(b"{broken\n")
    got = []
    with pytest.raises(ParseError, match=r"t.json:17: malformed JSON"):
        for batch in read_bitcoin_etl([path], "btc", batch_size=4):
            got.append([b.height for b in batch.blocks])
    # the last complete block (5) cannot be handed over: the bad line might have belonged to it
    assert got == [[0, 1], [2, 3]]
    plain = [[b.height for b in batch.blocks]
             for batch in read_bitcoin_etl([write(tmp_path / "u.json", chain_rows(6, 3))], "btc",
                                           batch_size=4, prefetch=False)]
    assert plain == [[0, 1], [2, 3], [4, 5]]


def test_an_abandoned_reader_stops_its_thread(tmp_path: Path) -> None:
    path = write(tmp_path / "t.json", chain_rows(30, 3))
    batches = read_bitcoin_etl([path], "btc", batch_size=3)
    next(batches)
    batches.close()
    deadline = time.monotonic() + 5
    while any(t.name == "bitcoin-etl-reader" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "reader thread still running"
        time.sleep(0.05)


def test_block_records_come_from_the_rows(tmp_path: Path) -> None:
    path = write(tmp_path / "t.json", chain_rows(2, 3))
    (batch,) = read_bitcoin_etl([path], "btc")
    assert [(b.height, b.hash, b.prev_hash, b.time, b.tx_count) for b in batch.blocks] == [
        (0, block_hash(0), None, 1_600_000_000, 1), (1, block_hash(1), None, 1_600_000_001, 3)]


def test_a_block_that_comes_back_later_is_refused(tmp_path: Path) -> None:
    rows = chain_rows(3, 2)
    rows.append(row(1, "late", index=5))
    path = write(tmp_path / "unsorted.json", rows)
    with pytest.raises(InputError, match=r"unsorted.json:6: block 1 appears again.*sort the export"):
        list(read_bitcoin_etl([path], "btc"))


def test_rows_of_one_block_must_agree_on_its_hash(tmp_path: Path) -> None:
    path = write(tmp_path / "t.json", [row(7, "a"), row(7, "b", index=1, block_hash="f" * 64)])
    with pytest.raises(ParseError, match=r"t.json:2: field 'block_hash'"):
        list(read_bitcoin_etl([path], "btc"))


def test_missing_tx_index_falls_back_to_position_in_block(tmp_path: Path) -> None:
    path = write(tmp_path / "t.json", [row(7, "a", index=None), row(7, "b", index=None)])
    (batch,) = read_bitcoin_etl([path], "btc")
    assert batch.tx_index == [0, 1]


# ----------------------------------------------------------------------------------------- content


def test_addresses_come_from_the_script_not_the_listed_ones(tmp_path: Path) -> None:
    rows = [row(1, "a", outputs=[out(0, P2PKH_HEX, 1, ["1BoatSLRHtKNngkdXEeobR76b53LETtpyT"]),
                                 out(1, P2PK_HEX, 2, [P2PK_ADDRESS], kind="pubkey")])]
    (batch,) = read_bitcoin_etl([write(tmp_path / "t.json", rows)], "btc")
    assert batch.out_address == [P2PKH_ADDRESS, P2PK_ADDRESS]
    assert batch.out_script_type == ["p2pkh", "p2pk"]


def test_made_up_nonstandard_addresses_are_not_stored(tmp_path: Path) -> None:
    placeholder = "nonstandard" + "0" * 40
    rows = [row(1, "a", outputs=[out(0, "6a0401020304", 0, [placeholder], kind="nulldata"),
                                 out(1, "51", 7, [placeholder], kind="nonstandard"),
                                 out(2, None, 8, [placeholder], kind="nonstandard"),
                                 out(3, None, 9, [P2PKH_ADDRESS], kind="pubkeyhash")])]
    (batch,) = read_bitcoin_etl([write(tmp_path / "t.json", rows)], "btc")
    assert batch.out_address == [None, None, None, P2PKH_ADDRESS]
    assert batch.out_script_type == ["nulldata", "nonstandard", "nonstandard", "p2pkh"]


def test_enriched_inputs_keep_value_address_and_fee(tmp_path: Path) -> None:
    rows = [row(9, "spend", inputs=[inp(0, "x", 1, 7_000, [P2PK_ADDRESS]), inp(1, "y", 0, 3_000, [])],
                outputs=[out(0, P2PKH_HEX, 9_500)], fee=500)]
    (batch,) = read_bitcoin_etl([write(tmp_path / "t.json", rows)], "btc")
    assert batch.in_value == [7_000, 3_000]
    assert batch.in_address == [P2PK_ADDRESS, None]
    assert batch.in_prev_txid == [txid("x"), txid("y")] and batch.in_prev_n == [1, 0]
    assert batch.tx_fee == [500]


def test_fee_is_unknown_while_an_input_value_is_unknown(tmp_path: Path) -> None:
    # bitcoin-etl writes input_value 0 and a negative fee for unenriched rows
    rows = [row(9, "spend", inputs=[inp(0, "x", 1, None)], outputs=[out(0, P2PKH_HEX, 9_500)], fee=-9_500)]
    (batch,) = read_bitcoin_etl([write(tmp_path / "t.json", rows)], "btc")
    assert batch.tx_fee == [None] and batch.in_value == [None] and batch.in_address == [None]


def test_coinbase_has_no_inputs_and_no_fee(tmp_path: Path) -> None:
    (batch,) = read_bitcoin_etl([write(tmp_path / "t.json", [row(3, "cb", coinbase=True, fee=0)])], "btc")
    assert batch.tx_coinbase == [True] and batch.tx_fee == [None] and batch.in_txid == []


def test_shielded_pseudo_rows_are_left_out_but_count_in_the_fee(tmp_path: Path) -> None:
    shielded_in = {"index": 0, "spent_transaction_hash": None, "spent_output_index": None, "type": "shielded",
                   "addresses": [], "value": 1_200_010_000}
    rows = [row(462085, "unshield", inputs=[shielded_in],
                outputs=[out(0, "76a914920dec8a1ef9f3a3a59dd13c5bd0f0c41c3ef7b788ac", 1_200_000_000)]),
            row(462085, "shield", index=1, inputs=[inp(0, "p", 0, 86_300_000, [])],
                outputs=[out(0, None, 86_290_000, kind="shielded")])]
    (batch,) = read_bitcoin_etl([write(tmp_path / "t.json", rows)], "zec")
    assert batch.in_txid == [txid("shield")]
    assert batch.out_txid == [txid("unshield")]
    assert batch.tx_fee == [10_000, 10_000]


def test_amounts_are_exact_integers(tmp_path: Path) -> None:
    big = 8_484_129_938_700_000  # beyond float precision at satoshi resolution
    (batch,) = read_bitcoin_etl([write(tmp_path / "t.json", [row(1, "a", outputs=[out(0, P2PKH_HEX, big)])])],
                                "doge")
    assert batch.out_value == [big] and type(batch.out_value[0]) is int


# ----------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("mutate", "problem"), [
    (lambda r: r.pop("block_number"), "t.json:2: missing field 'block_number'"),
    (lambda r: r.update(block_number="12"), "t.json:2: field 'block_number' must be an integer, got str"),
    (lambda r: r.pop("hash"), "t.json:2: missing field 'hash'"),
    (lambda r: r.pop("block_timestamp"), "t.json:2: missing field 'block_timestamp'"),
    (lambda r: r.pop("outputs"), "t.json:2: missing field 'outputs'"),
    (lambda r: r["outputs"][0].pop("value"), "t.json:2: outputs[0]: missing field 'value'"),
    (lambda r: r["outputs"][0].update(value=1.5), "t.json:2: outputs[0]: field 'value' must be an integer"),
    (lambda r: r["outputs"][0].update(script_hex="zz"), "t.json:2: field 'script_hex' is not hex"),
    (lambda r: r.update(inputs=[{"spent_output_index": 0, "value": None}]),
     "t.json:2: inputs[0]: missing field 'spent_transaction_hash'"),
    (lambda r: r.update(inputs=[{"spent_transaction_hash": "ab", "spent_output_index": "0"}]),
     "t.json:2: inputs[0]: field 'spent_output_index' must be an integer"),
    (lambda r: r.update(inputs=[{"spent_transaction_hash": "ab", "spent_output_index": 0, "value": "5"}]),
     "t.json:2: inputs[0]: field 'value' must be an integer"),
], ids=["block_number", "block_number-type", "hash", "block_timestamp", "outputs", "output-value",
        "output-value-float", "script_hex", "spent_transaction_hash", "spent_output_index", "input-value"])
def test_bad_rows_name_file_line_and_field(tmp_path: Path, mutate: Any, problem: str) -> None:
    rows = [row(1, "a"), row(1, "b", index=1)]
    mutate(rows[1])
    with pytest.raises(ParseError) as caught:
        list(read_bitcoin_etl([write(tmp_path / "t.json", rows)], "btc"))
    assert str(caught.value).endswith(problem)


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_bytes(orjson.dumps(row(1, "a")) + b"\n\n" + b'{"hash": "ab", \n')
    with pytest.raises(ParseError, match=r"t.json:3: malformed JSON"):
        list(read_bitcoin_etl([path], "btc"))


def test_truncated_gzip_is_a_parse_error(tmp_path: Path) -> None:
    data = gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in chain_rows(40, 5)))
    path = tmp_path / "t.json.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ParseError, match=r"t.json.gz.*truncated or corrupt gzip"):
        list(read_bitcoin_etl([path], "btc"))


def test_cli_reads_standard_input_plain_or_gzip(home: Path, cli: Any) -> None:
    data = b"".join(orjson.dumps(r) + b"\n" for r in chain_rows(3, 2))
    result = cli("ingest", "bitcoin-etl", "-", "--chain", "btc", "--home", str(home), "--format", "json",
                 input=data.decode())
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["txs_written"] == 5
    other = home.parent / "other"
    result = cli("ingest", "bitcoin-etl", "-", "--chain", "btc", "--home", str(other), "--format", "json",
                 input=gzip.compress(data))
    assert result.exit_code == 0, result.output
    assert digest(other) == digest(home)


def cli_fails_cleanly(cli: Any, home: Path, path: Path, expected: str) -> None:
    before = digest(home)
    result = cli("ingest", "bitcoin-etl", str(path), "--chain", "btc", "--home", str(home))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert digest(home) == before


def test_cli_bad_files_exit_2_with_one_line_and_leave_the_store_alone(tmp_path: Path, home: Path,
                                                                       cli: Any) -> None:
    good = write(tmp_path / "good.json", chain_rows(2, 2))
    assert cli("ingest", "bitcoin-etl", str(good), "--chain", "btc", "--home", str(home)).exit_code == 0

    malformed = tmp_path / "malformed.json"
    malformed.write_bytes(orjson.dumps(row(5, "a")) + b"\n{not json\n")
    cli_fails_cleanly(cli, home, malformed, "malformed.json:2: malformed JSON")

    data = gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in chain_rows(40, 5)))
    truncated = tmp_path / "truncated.json.gz"
    truncated.write_bytes(data[: len(data) - 40])
    cli_fails_cleanly(cli, home, truncated, "truncated or corrupt gzip")

    bad = row(5, "b", index=1)
    del bad["outputs"][0]["value"]
    missing = write(tmp_path / "missing.json", [row(5, "a"), bad])
    cli_fails_cleanly(cli, home, missing, "missing.json:2: outputs[0]: missing field 'value'")

    unsorted = write(tmp_path / "unsorted.json", [row(5, "a"), row(6, "b"), row(5, "c", index=1)])
    cli_fails_cleanly(cli, home, unsorted, "sort the export")

    cli_fails_cleanly(cli, home, tmp_path / "absent.json", "absent.json")


def digest(home: Path) -> str:
    with ChainStore.open_home(home, read_only=True) as store:
        rows = [store.query(f"SELECT * FROM {t} ORDER BY ALL")
                for t in ("blocks", "txs", "outputs", "inputs")]
    return hashlib.sha256(repr(rows).encode()).hexdigest()
