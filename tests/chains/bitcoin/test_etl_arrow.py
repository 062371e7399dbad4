"""bitcoin-etl read by Arrow's JSON parser gives the exact reader's rows, batches and errors.

Real exports (shared_data/blockchain_etl_fixtures) and hand-written rows are read both ways: the same
blocks, transactions, outputs, inputs and payloads, cut into the same batches, and the same stores
after ingest. Rows the fast reader does not take (shielded pseudo-rows, listed addresses without a
script, bad values) are read on by the exact reader, which names the bad line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from test_etl import P2PK_HEX, P2PKH_ADDRESS, P2PKH_HEX, chain_rows, inp, out, row, write

from fundtrail.chains.bitcoin import etl as etl_module
from fundtrail.chains.bitcoin import etl_arrow
from fundtrail.chains.bitcoin.etl import read_bitcoin_etl
from fundtrail.chains.tables import UtxoTables, tables_of
from fundtrail.errors import InputError, ParseError
from fundtrail.limits import input_limits
from fundtrail.store import ChainStore
from fundtrail.store.ingest import ingest_batches

ETL = ("blockchain_etl_fixtures", "bitcoin-etl", "test_export_blocks_job")
TABLES = ("addresses", "blocks", "txs", "outputs", "inputs", "payloads")
OP_RETURN_HEX = "6a0b68656c6c6f20776f726c64"


def _read(paths: list[Path], chain: str, fast: bool, batch_size: int = 20_000) -> list[UtxoTables]:
    return [b if isinstance(b, UtxoTables) else tables_of(b)
            for b in read_bitcoin_etl(paths, chain, batch_size=batch_size, prefetch=False, fast=fast)]


def _payload_rows(t: UtxoTables) -> list[tuple[Any, ...]]:
    p = t.payloads
    return sorted(zip(p.txid, p.height, p.n, p.kind, p.data, strict=True))


def _assert_same(fast: list[UtxoTables], exact: list[UtxoTables]) -> None:
    assert len(fast) == len(exact)
    for a, b in zip(fast, exact, strict=True):
        assert a.blocks == b.blocks
        for name in ("txs", "outputs", "inputs"):
            assert getattr(a, name).to_pylist() == getattr(b, name).to_pylist(), name
        assert _payload_rows(a) == _payload_rows(b)


def _fixtures(shared: Path) -> list[tuple[str, Path]]:
    root = shared.joinpath(*ETL)
    chains = {"bitcoin": "btc", "dogecoin": "doge", "zcash": "zec", "bitcoin_cash": "bch"}
    return [(chains[p.parent.parent.name], p) for p in sorted(root.glob("*/*/expected_transactions.json"))]


def test_real_exports_read_the_same_both_ways(shared_data: Path) -> None:
    plain = 0
    for chain, path in _fixtures(shared_data):
        for size in (1, 20_000):
            fast = _read([path], chain, True, size)
            _assert_same(fast, _read([path], chain, False, size))
        try:
            list(etl_arrow.read_tables([path], chain, 20_000, input_limits()))
            plain += 1
        except etl_arrow.NotPlain:
            pass
    assert plain >= 4  # most fixtures are read by Arrow, not handed on to the exact reader


def test_real_exports_ingest_to_the_same_store(shared_data: Path, tmp_path: Path) -> None:
    dumps = []
    for fast in (True, False):
        store = ChainStore(tmp_path / f"{fast}.duckdb")
        for chain, path in _fixtures(shared_data):
            ingest_batches(store, chain, read_bitcoin_etl([path], chain, batch_size=2, prefetch=False,
                                                          fast=fast))
        dumps.append({t: store.query(f"SELECT * FROM {t} ORDER BY ALL") for t in TABLES})
        store.close()
    assert dumps[0] == dumps[1]
    assert dumps[0]["outputs"]


def _rich_rows() -> list[dict[str, Any]]:
    rows = chain_rows(30, 4)
    rows.append(row(30, "memo", outputs=[out(0, OP_RETURN_HEX, 0), out(1, P2PKH_HEX, 7)],
                    inputs=[inp(0, "cb29", 0, 1_000, [P2PKH_ADDRESS]),
                            inp(1, "cb29", 1, 1_000, ["nonstandardab"])]))
    rows.append(row(30, "enriched", index=1,
                    inputs=[inp(0, "cb29", 2, 1_000, [P2PKH_ADDRESS, P2PKH_ADDRESS])],
                    outputs=[out(0, P2PK_HEX, 100)], size=300, virtual_size=250))
    rows.append(row(31, "noindex", outputs=[{"script_hex": P2PKH_HEX, "value": 3}],
                    inputs=[{"spent_transaction_hash": "ab" * 32, "spent_output_index": 0, "value": None}],
                    index=None, size=None))
    return rows


@pytest.mark.parametrize("block_bytes", [1024, 4096, 1 << 20])
def test_blocks_cut_by_the_parser_are_joined_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   block_bytes: int) -> None:
    monkeypatch.setattr(etl_arrow, "BLOCK_BYTES", block_bytes)
    path = write(tmp_path / "t.json", _rich_rows())
    for size in (1, 3, 7, 1000):
        fast = list(etl_arrow.read_tables([path], "btc", size, input_limits()))
        _assert_same(fast, _read([path], "btc", False, size))
    tables = list(etl_arrow.read_tables([path], "btc", 1000, input_limits()))
    assert len(tables) == 1
    assert _payload_rows(tables[0])[0][3:] == ("op_return", "68656c6c6f20776f726c64")
    fees = dict(zip(tables[0].txs.column("txid").to_pylist(), tables[0].txs.column("fee").to_pylist(),
                    strict=True))
    assert sorted(fees.values(), key=str)[-1] is None  # the unenriched input leaves the fee unknown


def test_files_are_one_stream_with_a_block_across_two(tmp_path: Path) -> None:
    rows = chain_rows(6, 3)
    first, second = write(tmp_path / "a.json", rows[:7]), write(tmp_path / "b.json", rows[7:])
    fast = list(etl_arrow.read_tables([first, second], "btc", 4, input_limits()))
    _assert_same(fast, _read([first, second], "btc", False, 4))


@pytest.mark.parametrize(("mutate", "problem"), [
    (lambda r: r.pop("block_number"), "t.json:40: missing field 'block_number'"),
    (lambda r: r.update(block_number="12"), "t.json:40: field 'block_number' must be an integer, got str"),
    (lambda r: r["outputs"][0].update(value=1.5), "t.json:40: outputs[0]: field 'value' must be an integer"),
    (lambda r: r["outputs"][0].update(value=-1), "t.json:40: outputs[0]: field 'value'"),
    (lambda r: r["outputs"][0].update(script_hex="zz"), "t.json:40: field 'script_hex' is not hex"),
    (lambda r: r.update(inputs=[{"spent_transaction_hash": "ab", "spent_output_index": 0, "value": "5"}]),
     "t.json:40: inputs[0]: field 'value' must be an integer"),
    (lambda r: r.update(inputs=[{"spent_transaction_hash": "ab", "spent_output_index": 0, "value": 5,
                                 "addresses": ["1notanaddress"]}]), "t.json:40: field 'inputs[0].addresses'"),
    (lambda r: r.update(block_hash="00" * 32), "t.json:40: field 'block_hash' is"),
], ids=["block_number", "block_number-type", "value-float", "value-negative", "script_hex", "input-value",
        "input-address", "block_hash"])
def test_a_bad_line_is_named_after_the_good_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    mutate: Any, problem: str) -> None:
    monkeypatch.setattr(etl_arrow, "BLOCK_BYTES", 4096)  # the bad line is in a later parser block
    rows = chain_rows(20, 3)
    mutate(rows[39])
    path = write(tmp_path / "t.json", rows)
    got = []
    with pytest.raises(InputError) as caught:
        for batch in read_bitcoin_etl([path], "btc", batch_size=6, prefetch=False, fast=True):
            got.append(batch)
    assert problem in str(caught.value)
    assert isinstance(caught.value, ParseError) or "block_number" not in problem
    assert sum(len(b) for b in got) >= 30  # the batches before the bad line were handed out
    assert all(isinstance(b, UtxoTables) for b in got[:4])


def test_a_block_seen_again_is_refused_as_by_the_exact_reader(tmp_path: Path) -> None:
    rows = chain_rows(5, 2)
    path = write(tmp_path / "t.json", rows + [rows[0]])
    with pytest.raises(InputError, match=r"t.json:10: block 0 appears again"):
        list(read_bitcoin_etl([path], "btc", prefetch=False, fast=True))


def test_malformed_json_is_named_by_line(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in chain_rows(4, 2)) + b'{"hash": "ab", \n')
    with pytest.raises(ParseError, match=r"t.json:8: malformed JSON"):
        list(read_bitcoin_etl([path], "btc", prefetch=False, fast=True))


def test_only_uncompressed_files_are_read_by_arrow(tmp_path: Path) -> None:
    plain = write(tmp_path / "t.json", chain_rows(3, 2))
    packed = write(tmp_path / "t.json.gz", chain_rows(3, 2), compress=True)
    assert etl_arrow.plain_files([plain], input_limits())
    assert not etl_arrow.plain_files([packed], input_limits())
    assert not etl_arrow.plain_files([plain, packed], input_limits())
    (batch,) = read_bitcoin_etl([packed], "btc", prefetch=False, fast=True)
    assert not isinstance(batch, UtxoTables)


@pytest.fixture()
def in_two(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small files read as large ones: cut into parts of 4 kB read by two worker processes."""
    monkeypatch.setattr(etl_module, "AHEAD_MIN_BYTES", 1)
    monkeypatch.setattr(etl_arrow, "SPAN_BYTES", 4096)


def test_two_reading_processes_give_the_exact_readers_batches_and_store(tmp_path: Path, in_two: None) -> None:
    path = write(tmp_path / "t.json", _rich_rows())
    spans = etl_arrow.spans_of(path)
    assert spans is not None and len(spans) > 4
    for size in (7, 40):
        fast = [b for b in read_bitcoin_etl([path], "btc", batch_size=size) if isinstance(b, UtxoTables)]
        _assert_same(fast, _read([path], "btc", False, size))
    dumps = []
    for fast_mode in (None, False):
        store = ChainStore(tmp_path / f"{fast_mode}.duckdb")
        ingest_batches(store, "btc", read_bitcoin_etl([path], "btc", batch_size=9, fast=fast_mode))
        dumps.append({t: store.query(f"SELECT * FROM {t} ORDER BY ALL") for t in TABLES})
        store.close()
    assert dumps[0] == dumps[1]


def test_a_bad_line_read_by_two_processes_is_named_after_the_good_batches(tmp_path: Path,
                                                                         in_two: None) -> None:
    rows = chain_rows(60, 5)
    rows[250]["outputs"][0]["value"] = "5"
    path = write(tmp_path / "t.json", rows)
    got = []
    with pytest.raises(ParseError, match=r"t.json:251: outputs\[0\]: field 'value' must be an integer"):
        for batch in read_bitcoin_etl([path], "btc", batch_size=10):
            got.append(batch)
    exact = [b for b in _read_until_error(path, 10)]
    assert [b.blocks for b in got] == [b.blocks for b in exact]
    assert isinstance(got[0], UtxoTables)


def _read_until_error(path: Path, size: int) -> list[Any]:
    out = []
    try:
        for batch in read_bitcoin_etl([path], "btc", batch_size=size, prefetch=False, fast=False):
            out.append(batch)
    except ParseError:
        pass
    return out


def test_full_caches_are_emptied_without_losing_a_result(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(etl_arrow, "CACHE_BYTES", 3 * (etl_arrow.ENTRY_BYTES + 70))
    monkeypatch.setattr(etl_arrow, "BLOCK_BYTES", 2048)
    rows = chain_rows(12, 3)
    for k, r in enumerate(rows):  # scripts that are neither P2PKH nor P2SH go through the cache
        r["outputs"] = [out(0, P2PK_HEX, 900), out(1, OP_RETURN_HEX if k % 2 else f"01{k:02x}", 0)]
    path = write(tmp_path / "t.json", rows)
    fast = list(etl_arrow.read_tables([path], "btc", 4, input_limits()))
    _assert_same(fast, _read([path], "btc", False, 4))


def test_reader_caches_stay_within_their_byte_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    budget = 40 * (etl_arrow.ENTRY_BYTES + 70)
    monkeypatch.setattr(etl_arrow, "CACHE_BYTES", budget)
    deriver = etl_arrow._Deriver("btc")
    for k in range(30):  # P2PKH scripts (derived addresses), then P2PK ones (the script cache)
        scripts = [f"76a914{(k * 1000 + j):040x}88ac" for j in range(25)] + [P2PK_HEX[:-4] + f"{j:02x}ac"
                                                                              for j in range(3)]
        deriver.classify(pa.array(scripts, pa.string()))
        listed = deriver.known.copy()
        deriver.known.clear()  # listed addresses not derived here go through the listed cache
        deriver.canonical(pa.array(sorted(listed), pa.string()))
        deriver.known.update(listed)
        assert all(0 < held <= budget for held in deriver.held.values())
        assert len(deriver.known) <= budget // etl_arrow.ENTRY_BYTES
        assert len(deriver.listed) <= budget // (2 * etl_arrow.ENTRY_BYTES)
        assert len(deriver.scripts) <= budget // (2 * etl_arrow.ENTRY_BYTES)
    assert len(deriver.known) < 30 * 25  # emptied on the way


def test_parts_of_a_file_start_at_a_blocks_first_row(tmp_path: Path) -> None:
    rows = chain_rows(9, 700)  # blocks of ~300 kB: cuts are found by galloping and bisecting
    data = b"".join(orjson.dumps(r) + (b"\n\n" if k % 97 == 0 else b"\n") for k, r in enumerate(rows))
    path = tmp_path / "t.json"
    path.write_bytes(data)
    spans = etl_arrow.spans_of(path, 100_000)
    assert spans is not None and len(spans) > 3
    starts = [start for _p, start, _end in spans]
    firsts = {0}
    at = 0
    previous = None
    for line in data.splitlines(keepends=True):
        if line.strip():
            number = orjson.loads(line)["block_number"]
            if number != previous:
                firsts.add(at)
            previous = number
        at += len(line)
    assert set(starts) <= firsts
    assert [end for _p, _s, end in spans] == [*starts[1:], len(data)]
