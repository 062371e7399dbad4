"""The JSON-RPC source and the bitcoin-etl reader against real recorded node answers and their exports.

The recordings (shared_data/blockchain_etl_fixtures/bitcoin-etl) are served by a loopback JSON-RPC
server; every expectation comes from the recording's ``expected_*.json`` files (bitcoin-etl's own
export of the same blocks) or is written by hand below.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from fundtrail.chains.bitcoin.etl import read_bitcoin_etl
from fundtrail.chains.bitcoin.rpc import BitcoinRpcSource
from fundtrail.domain.addresses import canonical_address
from fundtrail.domain.records import BlockRecord, UtxoBatch
from fundtrail.errors import InputError, SourceUnavailableError
from fundtrail.store import ChainStore
from fundtrail.store.ingest import ingest_batches, ingest_from_source
from fundtrail.testing.rpc_replay import (
    ChainedResponder,
    FolderResponder,
    MappingResponder,
    RpcFault,
    RpcReplayServer,
)

# Genesis block hashes, written by hand (the source checks the node's block 0 against its chain).
BTC_GENESIS = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
DOGE_GENESIS = "1a91e3dace36e2be3bf030a65679fe821aa1d6ef92e7c9902eb318182c355691"
ZEC_GENESIS = "00040fe8ec8471911baa1db1266ea15dd06b4a8a5c453883c000b031973dce08"

# bitcoin-etl's output type names and FundTrail's script types, by hand.
ETL_TYPE = {"pubkey": "p2pk", "pubkeyhash": "p2pkh", "scripthash": "p2sh", "multisig": "multisig",
            "nulldata": "nulldata", "nonstandard": "nonstandard", "witness_v0_keyhash": "p2wpkh",
            "witness_v0_scripthash": "p2wsh"}

# (folder, chain, genesis, first height, last height)
CASES = [
    ("bitcoin/block_0", "btc", BTC_GENESIS, 0, 0),
    ("bitcoin/block_1", "btc", BTC_GENESIS, 1, 1),
    ("bitcoin/block_without_transactions", "btc", BTC_GENESIS, 50000, 50000),
    ("bitcoin/block_with_transactions", "btc", BTC_GENESIS, 50001, 50002),
    ("bitcoin_cash/block_with_duplicate_txid", "bch", BTC_GENESIS, 91722, 91722),
    ("dogecoin/block_without_transactions", "doge", DOGE_GENESIS, 2, 2),
    ("zcash/block_0", "zec", ZEC_GENESIS, 0, 0),
    ("zcash/block_with_shielded_addresses", "zec", ZEC_GENESIS, 508, 508),
    ("zcash/block_with_value_balance", "zec", ZEC_GENESIS, 462085, 462085),
]


@pytest.fixture(scope="module")
def recordings(shared_data: Path) -> Path:
    return shared_data / "blockchain_etl_fixtures" / "bitcoin-etl" / "test_export_blocks_job"


def node(folder: Path, genesis: str, extra: dict[Any, Any] | None = None) -> RpcReplayServer:
    """A replay server for a recording, plus the two answers the recordings lack; ``extra`` overrides."""
    defaults = {"getblockchaininfo": {"chain": "main"}, ("getblockhash", (0,)): genesis}
    return RpcReplayServer(ChainedResponder(MappingResponder(extra or {}), FolderResponder(folder),
                                            MappingResponder(defaults)))


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def expected_address(chain: str, addresses: list[str] | None) -> str | None:
    if not addresses or len(addresses) != 1 or addresses[0].startswith("nonstandard"):
        return None
    return canonical_address(chain, addresses[0])


def assert_store_matches(store: ChainStore, chain: str, folder: Path, *, enriched: bool) -> None:
    """The store holds exactly the blocks, transactions, outputs and inputs of the expected export."""
    blocks = read_lines(folder / "expected_blocks.json")
    txs = read_lines(folder / "expected_transactions.json")
    assert {(h, bh, t, n) for h, bh, t, n in store.query(
        "SELECT height, hash, time, tx_count FROM blocks WHERE chain = ?", [chain])} == {
        (b["number"], b["hash"], b["timestamp"], b["transaction_count"]) for b in blocks}

    stored_txs = {r[0]: r[1:] for r in store.query(
        "SELECT txid, height, tx_index, coinbase, fee FROM txs WHERE chain = ?", [chain])}
    assert set(stored_txs) == {t["hash"] for t in txs}
    for t in txs:
        height, tx_index, coinbase, fee = stored_txs[t["hash"]]
        assert (height, coinbase) == (t["block_number"], t["is_coinbase"])
        if t.get("index") is not None:
            assert tx_index == t["index"]
        if coinbase:
            assert fee is None
        elif enriched:
            assert fee == t["fee"], t["hash"]

    expected_outputs = {
        (t["hash"], o["index"]): (expected_address(chain, o["addresses"]), o["value"], ETL_TYPE[o["type"]])
        for t in txs for o in t["outputs"] if o["type"] != "shielded"}
    rows = store.query("SELECT txid, n, address, value, script_type FROM outputs WHERE chain = ?", [chain])
    stored_outputs = {(txid, n): (address, int(value), kind) for txid, n, address, value, kind in rows}
    assert stored_outputs == expected_outputs

    expected_inputs = {(t["hash"], i["index"]): (i["spent_transaction_hash"], i["spent_output_index"])
                       for t in txs for i in t["inputs"] if i["spent_transaction_hash"] is not None}
    stored_inputs = {(txid, n): (prev, prev_n, address, value) for txid, n, prev, prev_n, address, value
                     in store.query("SELECT txid, n, prev_txid, prev_n, address, value FROM inputs "
                                    "WHERE chain = ?", [chain])}
    assert {k: v[:2] for k, v in stored_inputs.items()} == expected_inputs
    if enriched:
        assert {k: (v[2], int(v[3])) for k, v in stored_inputs.items()} == {
            (t["hash"], i["index"]): (expected_address(chain, i["addresses"]), i["value"])
            for t in txs for i in t["inputs"] if i["spent_transaction_hash"] is not None}


@pytest.mark.parametrize(("folder", "chain", "genesis", "start", "end"), CASES, ids=[c[0] for c in CASES])
def test_rpc_source_reproduces_the_recorded_blocks(recordings: Path, store: ChainStore, folder: str,
                                                   chain: str, genesis: str, start: int, end: int) -> None:
    with node(recordings / folder, genesis) as server, BitcoinRpcSource(server.url, chain) as source:
        report = ingest_from_source(store, source, start, end)
    assert report.blocks_written == end - start + 1
    assert_store_matches(store, chain, recordings / folder, enriched=False)


@pytest.mark.parametrize(("folder", "chain"), [(c[0], c[1]) for c in CASES]
                         + [("dogecoin/block_with_float_precision_loss", "doge"),
                            ("bitcoin/stream_50001_50002", "btc")],
                         ids=[c[0] for c in CASES] + ["dogecoin/block_with_float_precision_loss",
                                                     "bitcoin/stream_50001_50002"])
def test_etl_reader_reproduces_the_exports(recordings: Path, store: ChainStore, folder: str,
                                           chain: str) -> None:
    path = recordings / folder / "expected_transactions.json"
    ingest_batches(store, chain, read_bitcoin_etl([path], chain))
    assert_store_matches(store, chain, recordings / folder, enriched=folder.endswith("stream_50001_50002"))


def test_enriched_stream_fills_inputs_and_fees_from_previous_transactions(recordings: Path,
                                                                          store: ChainStore) -> None:
    folder = recordings / "bitcoin" / "stream_50001_50002"
    with node(folder, BTC_GENESIS) as server:
        with BitcoinRpcSource(server.url, "btc", enrich_inputs=True) as source:
            ingest_from_source(store, source, 50001, 50002)
        fetched = {p[0] for m, p in server.calls if m == "getrawtransaction"}
    assert_store_matches(store, "btc", folder, enriched=True)
    # by hand, from the README: tx 7940cdde... spends 50 BTC from 1DoQeKfU3dYhN9bxMpFFcVUnufCPDqSPae, fee 0
    assert store.query("SELECT address, value FROM inputs WHERE txid LIKE '7940cdde%' AND n = 0") == [
        ("1DoQeKfU3dYhN9bxMpFFcVUnufCPDqSPae", 5_000_000_000)]
    assert fetched == {"76a8d70a757be5055f60be076b683897cadaad6b7bdf78c43e39b9d59cb4a6ea",
                       "0dd0394c6240355f4e4b3c88028f678ed746cebee3b3e8509620733f018914c9",
                       "0d37522b89f991f8433b80f709ad31862a54435cd003f25732fe405e9db93216"}


def test_verbosity_3_prevouts_fill_inputs_without_extra_calls(recordings: Path, store: ChainStore) -> None:
    """A node with getblock verbosity 3 (Bitcoin Core 25+): each input carries the output it spends.

    The answers are the recorded verbosity-2 blocks with ``prevout`` added from the recorded
    previous transactions, as such a node writes them.
    """
    folder = recordings / "bitcoin" / "stream_50001_50002"
    previous = {}
    for path in folder.glob("rpc_response_getrawtransaction_*.json"):
        tx = json.loads(path.read_text(), parse_float=Decimal)
        previous[tx["txid"]] = tx
    answers: dict[Any, Any] = {}
    for path in folder.glob("rpc_response_getblock_*_2.json"):
        block = json.loads(path.read_text(), parse_float=Decimal)
        for tx in block["tx"]:
            for vin in tx["vin"]:
                if "txid" in vin:
                    spent = previous[vin["txid"]]["vout"][vin["vout"]]
                    vin["prevout"] = {"generated": True, "height": 0, "value": spent["value"],
                                      "scriptPubKey": spent["scriptPubKey"]}
        answers[("getblock", (block["hash"], 3))] = block
    with node(folder, BTC_GENESIS, answers) as server, BitcoinRpcSource(server.url, "btc") as source:
        ingest_from_source(store, source, 50001, 50002)
        methods = server.methods_called()
    assert "getrawtransaction" not in methods
    assert [p[1] for m, p in server.calls if m == "getblock"] == [3, 3]
    assert_store_matches(store, "btc", folder, enriched=True)


def test_without_enrichment_unresolvable_inputs_keep_no_value_and_no_fee(recordings: Path,
                                                                          store: ChainStore) -> None:
    folder = recordings / "bitcoin" / "block_with_transactions"
    with node(folder, BTC_GENESIS) as server, BitcoinRpcSource(server.url, "btc") as source:
        ingest_from_source(store, source, 50001, 50002)
    # bitcoin-etl writes fee -10000000000 here; the store keeps "unknown" instead
    assert store.query("SELECT fee FROM txs WHERE txid LIKE '7940cdde%'") == [(None,)]
    assert store.query("SELECT count(*) FROM inputs WHERE value IS NULL") == [(3,)]


def test_blocks_are_fetched_in_batches(recordings: Path, store: ChainStore) -> None:
    folder = recordings / "bitcoin" / "block_with_transactions"
    with node(folder, BTC_GENESIS) as server, BitcoinRpcSource(server.url, "btc") as source:
        ingest_from_source(store, source, 50001, 50002)
        getblocks = [p for m, p in server.calls if m == "getblock"]
        requests = server.http_requests
        grouped = [[(m, p) for m, p in r] for r in server.requests]
    # network check, block hashes, then a first block alone to learn block sizes: verbosity 3 (refused:
    # not recorded), verbosity 2; then the rest of the chunk in one request
    assert requests == 5
    assert [p[1] for p in getblocks] == [3, 2, 2]
    assert [("getblockhash", [50001]), ("getblockhash", [50002])] in grouped  # one request for both


def test_large_blocks_are_fetched_a_few_at_a_time(recordings: Path, store: ChainStore,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fundtrail.chains.bitcoin.rpc.GROUP_BYTES", 3000)  # bytes of getblock JSON
    bitcoin = recordings / "bitcoin"
    responder = ChainedResponder(*(FolderResponder(bitcoin / f) for f in ("block_0", "block_1")),
                                 MappingResponder({"getblockchaininfo": {"chain": "main"}}))
    with RpcReplayServer(responder) as server, BitcoinRpcSource(server.url, "btc") as source:
        ingest_from_source(store, source, 0, 1)
        groups = [[params for _, params in request] for request in server.requests
                  if request and request[0][0] == "getblock"]
    assert store.query("SELECT height FROM blocks ORDER BY 1") == [(0,), (1,)]
    block_0 = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
    block_1 = "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048"
    # block 0 alone at verbosity 3 (refused) and 2; a block is ~2.4 kB of JSON, so block 1 comes alone
    assert groups == [[[block_0, 3]], [[block_0, 2]], [[block_1, 2]]]


def test_zcash_fees_count_value_leaving_the_shielded_pool(recordings: Path, store: ChainStore) -> None:
    folder = recordings / "zcash" / "block_with_value_balance"
    with node(folder, ZEC_GENESIS) as server, BitcoinRpcSource(server.url, "zec") as source:
        report = ingest_from_source(store, source, 462085, 462085)
    assert [n for n in report.notes if "shielded" in n]
    # txs whose only inputs come from the Sapling pool: fee written by hand from the export (0.0001 ZEC)
    fees = dict(store.query("SELECT txid, fee FROM txs WHERE txid LIKE 'bf3541c6%' OR txid LIKE '315af1de%'"))
    assert sorted(int(f) for f in fees.values()) == [10_000, 10_000]


def test_dogecoin_amounts_are_exact_satoshi(recordings: Path, store: ChainStore) -> None:
    folder = recordings / "dogecoin" / "block_with_float_precision_loss"
    ingest_batches(store, "doge", read_bitcoin_etl([folder / "expected_transactions.json"], "doge"))
    # 84,841,299.387 DOGE: a float carries it as 8484129938699999.something
    assert store.query("SELECT value FROM outputs WHERE address = 'D7eoskLiEuBPncBWLyJFgMXvUkDeCtCnNB'") == [
        (8_484_129_938_700_000,)]
    with node(recordings / "dogecoin" / "block_without_transactions", DOGE_GENESIS) as server:
        with BitcoinRpcSource(server.url, "doge") as source:
            ingest_from_source(store, source, 2, 2)
    assert store.query("SELECT value FROM outputs WHERE address = 'DPsvwvYRgt66ntxno9mMuBfwhg9nAMmGrD'") == [
        (72_975_200_000_000,)]


def test_duplicate_coinbase_txid_is_kept_once_per_block(recordings: Path, store: ChainStore) -> None:
    """BIP30: e3bf3d07... is the coinbase of blocks 91722 and 91880; both stay, each with its output."""
    folder = recordings / "bitcoin_cash" / "block_with_duplicate_txid"
    txid = "e3bf3d07d4b0375638d5f1db5255fe07ba2c4cb067cd81b84ee974b6585fb468"
    with node(folder, BTC_GENESIS) as server, BitcoinRpcSource(server.url, "bch") as source:
        ingest_from_source(store, source, 91722, 91722)
    later = UtxoBatch("bch", blocks=[BlockRecord("bch", 91880, "b" * 64, None, 1289757588, 1)])
    later.add_tx(txid, 91880, 1289757588, 0, coinbase=True)
    later.add_output(txid, 0, "1GktTvnY8KGfAS72DhzGYJRyaQNvYrK9Fg", 5_000_000_000, "p2pk")
    store.write_batch(later)
    assert store.query("SELECT height FROM txs WHERE txid = ? ORDER BY height", [txid]) == [
        (91722,), (91880,)]
    assert store.query("SELECT height, address FROM outputs WHERE txid = ? ORDER BY height", [txid]) == [
        (91722, "1GktTvnY8KGfAS72DhzGYJRyaQNvYrK9Fg"), (91880, "1GktTvnY8KGfAS72DhzGYJRyaQNvYrK9Fg")]


def test_reingest_changes_nothing(recordings: Path, store: ChainStore) -> None:
    folder = recordings / "bitcoin" / "block_with_transactions"
    with node(folder, BTC_GENESIS) as server, BitcoinRpcSource(server.url, "btc") as source:
        ingest_from_source(store, source, 50001, 50002)
        before = table_digest(store)
        again = ingest_from_source(store, source, 50001, 50002)
    assert (again.blocks_written, again.blocks_skipped) == (0, 2)
    assert table_digest(store) == before


def test_reorg_on_the_node_is_followed(recordings: Path, store: ChainStore) -> None:
    """The node first serves a stale 50002, then the recorded one: the stale block is replaced."""
    folder = recordings / "bitcoin" / "block_with_transactions"
    real_50002 = "000000002066d7f9b134c30b5005b7bf5fbfa52f279883f1fde793dcdc964266"
    stale = "5" * 64
    stale_block = {"hash": stale, "height": 50002, "time": 1270917999,
                   "previousblockhash": "000000001c920d495e1eeef2452b6d1c6c229a919b28196c103ecffebabee141",
                   "tx": [{"txid": "c" * 64, "vin": [{"coinbase": "00"}],
                           "vout": [{"n": 0, "value": 50, "scriptPubKey": {"hex": "6a00"}}]}]}
    serving = {"tip": stale}
    answers = {("getblockhash", (50002,)): lambda params: serving["tip"],
               ("getblock", (stale, 2)): stale_block}
    with node(folder, BTC_GENESIS, answers) as server, BitcoinRpcSource(server.url, "btc") as source:
        ingest_from_source(store, source, 50001, 50002)
        assert store.block_hash("btc", 50002) == stale
        serving["tip"] = real_50002
        report = ingest_from_source(store, source, 50001, 50002)
    assert report.reorgs == 1
    assert store.block_hash("btc", 50002) == real_50002
    assert store.query("SELECT count(*) FROM txs WHERE txid = ?", ["c" * 64]) == [(0,)]
    assert_store_matches(store, "btc", folder, enriched=False)


# ------------------------------------------------------------------------------------- bad input


def test_unreachable_node_is_source_unavailable() -> None:
    port = closed_port()
    source = BitcoinRpcSource(f"http://alice:hunter2@127.0.0.1:{port}", "btc", timeout=5)
    with pytest.raises(SourceUnavailableError) as caught:
        source.tip()
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "hunter2" not in str(caught.value) and "alice" not in str(caught.value)


def test_wrong_credentials_are_reported_without_them(recordings: Path) -> None:
    folder = recordings / "bitcoin" / "block_with_transactions"
    server = RpcReplayServer(FolderResponder(folder), auth=("alice", "right"))
    with server, BitcoinRpcSource(f"http://alice:wrong-secret@127.0.0.1:{server.port}", "btc") as source:
        with pytest.raises(SourceUnavailableError) as caught:
            source.tip()
    assert "401" in str(caught.value)
    assert "wrong-secret" not in str(caught.value)


def test_credentials_from_the_environment_and_a_cookie_file(recordings: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    folder = recordings / "bitcoin" / "block_with_transactions"
    extra = {"getblockchaininfo": {"chain": "main"}, ("getblockhash", (0,)): BTC_GENESIS,
             "getblockcount": 50002}
    with RpcReplayServer(ChainedResponder(FolderResponder(folder), MappingResponder(extra)),
                         auth=("__cookie__", "c0ffee")) as server:
        cookie = tmp_path / ".cookie"
        cookie.write_text("__cookie__:c0ffee")
        monkeypatch.setenv("FUNDTRAIL_RPC_COOKIE", str(cookie))
        with BitcoinRpcSource(server.url, "btc") as source:
            assert source.tip() == 50002
        monkeypatch.delenv("FUNDTRAIL_RPC_COOKIE")
        monkeypatch.setenv("FUNDTRAIL_RPC_USER", "__cookie__")
        monkeypatch.setenv("FUNDTRAIL_RPC_PASSWORD", "c0ffee")
        with BitcoinRpcSource(server.url, "btc") as source:
            assert source.block_hash(50001) == (
                "000000001c920d495e1eeef2452b6d1c6c229a919b28196c103ecffebabee141")


def test_node_on_another_network_is_refused(recordings: Path) -> None:
    folder = recordings / "bitcoin" / "block_with_transactions"
    with node(folder, BTC_GENESIS) as server, BitcoinRpcSource(server.url, "ltc-regtest") as source:
        with pytest.raises(InputError, match="network 'main'.*'regtest'"):
            source.tip()


def test_node_of_another_chain_on_the_same_network_is_refused(recordings: Path) -> None:
    folder = recordings / "bitcoin" / "block_with_transactions"
    with node(folder, BTC_GENESIS) as server, BitcoinRpcSource(server.url, "doge") as source:
        with pytest.raises(InputError, match="genesis"):
            source.tip()


def test_json_rpc_error_names_the_method(recordings: Path) -> None:
    folder = recordings / "bitcoin" / "block_with_transactions"
    fault = RpcFault(-5, "Block height out of range")
    with node(folder, BTC_GENESIS, {("getblockhash", (60000,)): fault}) as server:
        with BitcoinRpcSource(server.url, "btc") as source, pytest.raises(SourceUnavailableError) as caught:
            list(source.read(60000, 60000))
    assert "getblockhash 60000" in str(caught.value) and "Block height out of range" in str(caught.value)


def test_cli_rpc_errors_exit_2_with_one_line_and_leave_the_store_alone(recordings: Path, home: Path,
                                                                        cli: Any) -> None:
    folder = recordings / "bitcoin" / "block_with_transactions"
    seed = recordings / "bitcoin" / "block_0" / "expected_transactions.json"
    assert cli("ingest", "bitcoin-etl", str(seed), "--chain", "btc", "--home", str(home)).exit_code == 0
    before = home_digest(home)

    port = closed_port()
    result = cli("ingest", "rpc", f"http://bob:s3cret@127.0.0.1:{port}", "--chain", "btc",
                 "--home", str(home))
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"127.0.0.1:{port}" in result.stderr and "s3cret" not in result.stderr

    with node(folder, BTC_GENESIS) as server:
        result = cli("ingest", "rpc", server.url, "--chain", "ltc-regtest", "--from", "50001",
                     "--to", "50002", "--home", str(home))
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "network" in result.stderr
    assert home_digest(home) == before


def test_cli_rpc_ingests_with_enriched_inputs(recordings: Path, home: Path, cli: Any) -> None:
    folder = recordings / "bitcoin" / "stream_50001_50002"
    with node(folder, BTC_GENESIS) as server:
        result = cli("ingest", "rpc", server.url, "--chain", "btc", "--from", "50001", "--to", "50002",
                     "--enrich-inputs", "--home", str(home), "--format", "json")
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["blocks_written"] == 2
    with ChainStore.open_home(home) as store:
        assert_store_matches(store, "btc", folder, enriched=True)


def test_replay_server_reads_envelope_recordings_named_the_web3_way(shared_data: Path) -> None:
    """The helper is generic: ethereum-etl's recordings hold whole envelopes, named with lower-case params."""
    folder = shared_data / "blockchain_etl_fixtures" / "ethereum-etl" / "test_export_blocks_job"
    responder = FolderResponder(folder / "block_without_transactions", prefix="web3_response.")
    with RpcReplayServer(responder) as server:
        body = [{"jsonrpc": "2.0", "id": 7, "method": "eth_getBlockByNumber", "params": ["0x0", True]},
                {"jsonrpc": "2.0", "id": 8, "method": "eth_getBlockByNumber", "params": ["0x1", True]}]
        answers = httpx.post(server.url, json=body).json()
    assert answers[0]["id"] == 7 and answers[0]["error"] is None
    assert answers[0]["result"]["hash"] == (
        "0xd4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3")  # Ethereum's genesis block
    assert answers[1]["id"] == 8 and answers[1]["error"]["code"] == -32601


# ------------------------------------------------------------------------------------- helpers


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def table_digest(store: ChainStore) -> dict[str, str]:
    """A content hash of every chain table (rows sorted)."""
    out = {}
    for table in ("blocks", "txs", "outputs", "inputs", "addresses"):
        rows = store.query(f"SELECT * FROM {table} ORDER BY ALL")
        out[table] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return out


def home_digest(home: Path) -> dict[str, str]:
    with ChainStore.open_home(home, read_only=True) as store:
        return table_digest(store)


@pytest.fixture(autouse=True)
def _no_rpc_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("FUNDTRAIL_RPC_USER", "FUNDTRAIL_RPC_PASSWORD", "FUNDTRAIL_RPC_COOKIE"):
        monkeypatch.delenv(name, raising=False)
    yield
