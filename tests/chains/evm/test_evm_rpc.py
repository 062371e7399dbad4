"""The Ethereum JSON-RPC reader against recorded mainnet node responses served on loopback."""

from __future__ import annotations

import csv
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from fundtrail.chains.evm.decode import TRANSFER_TOPIC
from fundtrail.chains.evm.rpc import EthereumRpcSource
from fundtrail.errors import InputError, SourceUnavailableError
from fundtrail.store import ChainStore
from fundtrail.store.ingest import ingest_from_source
from fundtrail.testing.rpc_replay import (
    METHOD_NOT_FOUND,
    ChainedResponder,
    FolderResponder,
    MappingResponder,
    RpcFault,
    RpcReplayServer,
)

BLOCK_483920 = 483920


def _etl(shared_data: Path) -> Path:
    return shared_data / "blockchain_etl_fixtures" / "ethereum-etl"


def _recorded(folder: Path) -> FolderResponder:
    return FolderResponder(folder, prefix="web3_response.")


def _result(path: Path) -> Any:
    return json.loads(path.read_text())["result"]


def _filter_logs(folder: Path):
    """eth_getLogs answered as the recorded eth_newFilter + eth_getFilterLogs pair for the same filter."""

    def respond(method: str, params: list[Any]) -> Any:
        if method != "eth_getLogs":
            raise RpcFault(METHOD_NOT_FOUND, method)
        f = params[0]
        name = (f"web3_response.eth_newFilter_fromBlock_{f['fromBlock']}_toBlock_{f['toBlock']}_topics_"
                + "_".join(f["topics"]) + ".json")
        if not (folder / name).is_file():
            raise RpcFault(METHOD_NOT_FOUND, f"no recorded filter {name}")
        filter_id = _result(folder / name)
        return _result(folder / f"web3_response.eth_getFilterLogs_{filter_id}.json")

    return respond


def _block_483920_server(shared_data: Path, **extra: Any) -> RpcReplayServer:
    etl = _etl(shared_data)
    answers = {"eth_chainId": "0x1", "eth_blockNumber": hex(BLOCK_483920), **extra}
    return RpcReplayServer(ChainedResponder(
        MappingResponder(answers),
        _recorded(etl / "test_export_blocks_job" / "block_with_logs"),
        _recorded(etl / "test_export_receipts_job" / "receipts_with_logs"),
        _filter_logs(etl / "test_export_token_transfers_job" / "block_with_transfers"),
    ))


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _transfers(store: ChainStore, kind: str) -> set[tuple]:
    return {(t, int(i), a, f, to, int(v)) for t, i, a, f, to, v in store.query(
        "SELECT txid, transfer_index, asset, from_address, to_address, value FROM transfers "
        "WHERE kind = ?", [kind])}


def _token_row(e: dict[str, Any]) -> tuple:
    """An ethereum-etl token transfer row (CSV or JSON) as the store's token transfer."""
    return (e["transaction_hash"], int(e["log_index"]), e["token_address"], e["from_address"],
            e["to_address"], int(e["value"]))


def _fee_row(t: dict[str, Any]) -> tuple:
    """The fee transfer of an ethereum-etl streamed transaction row (receipt columns included)."""
    return (t["hash"], 0, "native", t["from_address"], None,
            t["receipt_gas_used"] * t["receipt_effective_gas_price"])


def test_cli_ingests_recorded_block_483920(shared_data: Path, cli, home: Path) -> None:
    etl = _etl(shared_data)
    with _block_483920_server(shared_data) as server:
        result = cli("ingest", "rpc", server.url, "--chain", "eth", "--from", str(BLOCK_483920), "--to",
                     str(BLOCK_483920), "--home", str(home), "--format", "json")
        methods = server.methods_called()
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["blocks_written"] == 1 and report["txs_written"] == 4
    assert report["notes"], "a node without traces is reported"
    assert "eth_getBlockReceipts" in methods and "eth_getTransactionReceipt" in methods
    assert "eth_getLogs" in methods

    expected_txs = _csv(etl / "test_export_blocks_job" / "block_with_logs" / "expected_transactions.csv")
    [expected_block] = _csv(etl / "test_export_blocks_job" / "block_with_logs" / "expected_blocks.csv")
    receipts = {r["transaction_hash"]: r for r in
                _csv(etl / "test_export_receipts_job" / "receipts_with_logs" / "expected_receipts.csv")}
    tokens = _csv(etl / "test_export_token_transfers_job" / "block_with_transfers"
                  / "expected_token_transfers.csv")
    with ChainStore.open_home(home, read_only=True) as store:
        assert store.query("SELECT height, hash, prev_hash, time, tx_count FROM blocks") == [
            (int(expected_block["number"]), expected_block["hash"], expected_block["parent_hash"],
             int(expected_block["timestamp"]), int(expected_block["transaction_count"]))]
        txs = store.query("SELECT txid, height, tx_index, fee, status FROM txs ORDER BY tx_index")
        assert [(t, h, i) for t, h, i, _, _ in txs] == [
            (e["hash"], int(e["block_number"]), int(e["transaction_index"])) for e in expected_txs]
        # pre-Byzantium receipts carry no status; no trace says otherwise
        assert {s for *_, s in txs} == {None}
        assert {t: int(f) for t, _, _, f, _ in txs} == {
            h: int(r["gas_used"]) * int(r["effective_gas_price"]) for h, r in receipts.items()}
        assert _transfers(store, "native") == {
            (e["hash"], 0, "native", e["from_address"], e["to_address"], int(e["value"]))
            for e in expected_txs}
        assert _transfers(store, "fee") == {
            (e["hash"], 0, "native", e["from_address"], None,
             int(receipts[e["hash"]]["gas_used"]) * int(receipts[e["hash"]]["effective_gas_price"]))
            for e in expected_txs}
        assert _transfers(store, "token") == {_token_row(e) for e in tokens}
        assert _transfers(store, "internal") == set()


def test_recorded_blocks_1755634_1755635_with_logs_from_receipts(shared_data: Path,
                                                                  store: ChainStore) -> None:
    folder = _etl(shared_data) / "test_stream" / "blocks_1755634_1755635"
    expected_txs = [json.loads(line) for line in (folder / "expected_transactions.json").open()]
    expected_tokens = [json.loads(line) for line in (folder / "expected_token_transfers.json").open()]
    expected_blocks = [json.loads(line) for line in (folder / "expected_blocks.json").open()]
    responder = ChainedResponder(MappingResponder({"eth_chainId": "0x1"}), _recorded(folder))
    with RpcReplayServer(responder) as server:
        source = EthereumRpcSource(server.url, "eth")
        report = ingest_from_source(store, source, 1755634, 1755635)
        methods = server.methods_called()
    assert report.blocks_written == 2
    # this node refuses eth_getLogs (nothing recorded): the receipts' logs are used
    assert "eth_getLogs" in methods
    assert store.query("SELECT height, hash, prev_hash, time, tx_count FROM blocks ORDER BY height") == [
        (b["number"], b["hash"], b["parent_hash"], b["timestamp"], b["transaction_count"])
        for b in expected_blocks]
    assert _transfers(store, "native") == {
        (e["hash"], 0, "native", e["from_address"], e["to_address"], e["value"]) for e in expected_txs}
    assert _transfers(store, "fee") == {_fee_row(e) for e in expected_txs}
    assert _transfers(store, "token") == {_token_row(e) for e in expected_tokens}


# --------------------------------------------------------------------------- a 2023 block pair


def _hex(value: int | None) -> str | None:
    return None if value is None else hex(value)


def _rpc_from_export(folder: Path) -> dict[Any, Any]:
    """Node answers for blocks 17173049-17173050 rebuilt from ethereum-etl's export of them (the
    recording itself is not published): blocks with withdrawals, receipts, and the Transfer logs."""
    blocks = [json.loads(line) for line in (folder / "expected_blocks.json").open()]
    txs = [json.loads(line) for line in (folder / "expected_transactions.json").open()]
    logs = [json.loads(line) for line in (folder / "expected_logs.json").open()]
    answers: dict[Any, Any] = {"eth_chainId": "0x1"}
    for b in blocks:
        withdrawals = b["withdrawals"]
        answers[("eth_getBlockByNumber", (hex(b["number"]), True))] = {
            "number": hex(b["number"]), "hash": b["hash"], "parentHash": b["parent_hash"],
            "timestamp": hex(b["timestamp"]), "miner": b["miner"],
            "withdrawals": [{"index": hex(w["index"]), "validatorIndex": hex(w["validator_index"]),
                             "address": w["address"], "amount": hex(w["amount"])} for w in withdrawals],
            "transactions": [{"hash": t["hash"], "from": t["from_address"], "to": t["to_address"],
                              "value": hex(t["value"]), "transactionIndex": hex(t["transaction_index"]),
                              "gasPrice": hex(t["gas_price"]), "blockHash": b["hash"]}
                             for t in sorted((t for t in txs if t["block_number"] == b["number"]),
                                             key=lambda t: t["transaction_index"])]}
        answers[("eth_getBlockReceipts", (b["hash"],))] = [
            {"transactionHash": t["hash"], "blockHash": b["hash"], "status": _hex(t["receipt_status"]),
             "gasUsed": hex(t["receipt_gas_used"]),
             "effectiveGasPrice": hex(t["receipt_effective_gas_price"]),
             "contractAddress": t["receipt_contract_address"], "logs": []}
            for t in txs if t["block_number"] == b["number"]]
    lo, hi = blocks[0]["number"], blocks[-1]["number"]
    log_filter = (("fromBlock", hex(lo)), ("toBlock", hex(hi)), ("topics", (TRANSFER_TOPIC,)))
    answers[("eth_getLogs", (log_filter,))] = [
        {"address": x["address"], "topics": x["topics"], "data": x["data"],
         "blockNumber": hex(x["block_number"]), "blockHash": x["block_hash"],
         "transactionHash": x["transaction_hash"], "logIndex": hex(x["log_index"]),
         "transactionIndex": hex(x["transaction_index"]), "removed": False}
        for x in logs if x["topics"] and x["topics"][0] == TRANSFER_TOPIC]
    answers["debug_traceBlockByNumber"] = RpcFault(-32000, "historical state not available")
    answers["trace_block"] = RpcFault(METHOD_NOT_FOUND, "the method trace_block does not exist")
    return answers


def test_post_shapella_blocks_fees_failures_withdrawals_and_tokens(shared_data: Path,
                                                                   store: ChainStore) -> None:
    folder = _etl(shared_data) / "test_stream" / "blocks_17173049_17173050"
    txs = [json.loads(line) for line in (folder / "expected_transactions.json").open()]
    tokens = [json.loads(line) for line in (folder / "expected_token_transfers.json").open()]
    logs = [json.loads(line) for line in (folder / "expected_logs.json").open()]
    blocks = [json.loads(line) for line in (folder / "expected_blocks.json").open()]
    with RpcReplayServer(_rpc_from_export(folder)) as server:
        source = EthereumRpcSource(server.url, "eth", batch_blocks=2)
        report = ingest_from_source(store, source, 17173049, 17173050)
        methods = server.methods_called()
    assert report.blocks_written == 2 and report.txs_written == 298
    assert any("internal transfers" in n for n in report.notes)
    assert "eth_getTransactionReceipt" not in methods  # block receipts worked

    failed = {t["hash"] for t in txs if t["receipt_status"] == 0}
    assert len(failed) == 9
    assert {t for t, s in store.query("SELECT txid, status FROM txs") if s is False} == failed
    # a contract creation pays the created contract
    creations = [t for t in txs if t["to_address"] is None]
    assert len(creations) == 1 and creations[0]["receipt_contract_address"]
    assert _transfers(store, "native") == {
        (t["hash"], 0, "native", t["from_address"], t["to_address"] or t["receipt_contract_address"],
         t["value"]) for t in txs if t["hash"] not in failed}
    assert _transfers(store, "fee") == {_fee_row(t) for t in txs}
    nft = {(x["transaction_hash"], x["log_index"]) for x in logs
           if x["topics"] and x["topics"][0] == TRANSFER_TOPIC and len(x["topics"]) == 4}
    assert _transfers(store, "token") == {
        _token_row(e) for e in tokens if (e["transaction_hash"], e["log_index"]) not in nft}
    expected_withdrawals = set()
    for b in blocks:
        for position, w in enumerate(b["withdrawals"]):
            expected_withdrawals.add((b["number"], position, w["address"], w["amount"] * 10**9))
    got = {(h, int(i), to, int(v)) for h, i, f, to, v in store.query(
        "SELECT height, transfer_index, from_address, to_address, value FROM transfers "
        "WHERE kind = 'withdrawal'")
        if f is None}
    assert got == expected_withdrawals and len(got) == 32


# --------------------------------------------------------------------------- reorgs, chain ids, failures


def test_a_chunk_that_changes_while_read_is_read_again(shared_data: Path, store: ChainStore) -> None:
    folder = _etl(shared_data) / "test_export_token_transfers_job" / "block_with_transfers"
    real = _filter_logs(folder)
    answered = []

    def flaky_logs(params: list[Any]) -> Any:
        logs = real("eth_getLogs", params)
        answered.append(1)
        if len(answered) == 1:  # first answer comes from a block that has since been replaced
            return [{**x, "blockHash": "0x" + "66" * 32} for x in logs]
        return logs

    with _block_483920_server(shared_data, eth_getLogs=flaky_logs) as server:
        report = ingest_from_source(store, EthereumRpcSource(server.url, "eth"), BLOCK_483920, BLOCK_483920)
        block_reads = server.methods_called().count("eth_getBlockByNumber")
    assert report.blocks_written == 1
    assert block_reads == 2 and len(answered) == 2
    assert len(_transfers(store, "token")) == 2


def test_wrong_chain_id_is_refused(shared_data: Path, cli, home: Path) -> None:
    # the recorded answer of a node on chain id 0x1234
    recorded = _result(_etl(shared_data) / "test_export_tokens_job" / "token_with_invalid_data"
                       / "web3_response.eth_chainId_.json")
    with RpcReplayServer({"eth_chainId": recorded, "eth_blockNumber": "0x5"}) as server:
        result = cli("ingest", "rpc", server.url, "--chain", "eth", "--home", str(home))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert str(0x1234) in result.stderr and "eth" in result.stderr


def test_dev_chain_ids_pass_for_any_evm_chain() -> None:
    chain_id = ["0x7a69"]
    with RpcReplayServer({"eth_chainId": lambda params: chain_id[0], "eth_blockNumber": "0x2a"}) as server:
        assert EthereumRpcSource(server.url, "polygon").tip() == 42
        chain_id[0] = "0x539"
        assert EthereumRpcSource(server.url, "bsc").tip() == 42
        chain_id[0] = "0x89"  # Polygon's own id is not BNB Smart Chain's
        with pytest.raises(InputError):
            EthereumRpcSource(server.url, "bsc").tip()
        assert EthereumRpcSource(server.url, "polygon").tip() == 42


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_node_leaves_the_store_unchanged(shared_data: Path, cli, home: Path) -> None:
    with _block_483920_server(shared_data) as server:
        assert cli("ingest", "rpc", server.url, "--chain", "eth", "--from", str(BLOCK_483920), "--to",
                   str(BLOCK_483920), "--home", str(home)).exit_code == 0
    with ChainStore.open_home(home, read_only=True) as store:
        before = store.summary()
    url = f"http://127.0.0.1:{_free_port()}"
    result = cli("ingest", "rpc", url, "--chain", "eth", "--from", str(BLOCK_483920 + 1), "--to",
                 str(BLOCK_483920 + 1), "--home", str(home))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and url in result.stderr
    with ChainStore.open_home(home, read_only=True) as store:
        assert store.summary() == before


def test_http_error_is_one_line_naming_the_url(cli, home: Path) -> None:
    with RpcReplayServer({"eth_chainId": "0x1"}, auth=("user", "secret")) as server:
        url = server.url
        result = cli("ingest", "rpc", url, "--chain", "eth", "--home", str(home))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert url in result.stderr and "401" in result.stderr


def test_json_rpc_error_is_one_line_naming_method_and_message(shared_data: Path, cli, home: Path) -> None:
    fault = RpcFault(-32000, "header not found")
    with _block_483920_server(shared_data, eth_getBlockByNumber=fault) as server:
        result = cli("ingest", "rpc", server.url, "--chain", "eth", "--from", "1", "--to", "1",
                     "--home", str(home))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "eth_getBlockByNumber" in result.stderr and "header not found" in result.stderr
    with ChainStore.open_home(home, read_only=True) as store:
        assert store.summary() == []


def test_credentials_from_url_or_environment_and_never_shown(shared_data: Path, store: ChainStore,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {"eth_chainId": "0x1", "eth_blockNumber": "0x10"}
    with RpcReplayServer(answers, auth=("alice", "s3cret")) as server:
        assert EthereumRpcSource(server.url_with_auth(), "eth").tip() == 16
        monkeypatch.setenv("FUNDTRAIL_RPC_USER", "alice")
        monkeypatch.setenv("FUNDTRAIL_RPC_PASSWORD", "s3cret")
        assert EthereumRpcSource(server.url, "eth").tip() == 16
        monkeypatch.setenv("FUNDTRAIL_RPC_PASSWORD", "wrong")
        with pytest.raises(SourceUnavailableError, match="401"):
            EthereumRpcSource(server.url, "eth").tip()
    with pytest.raises(SourceUnavailableError) as caught:
        EthereumRpcSource(f"http://alice:s3cret@127.0.0.1:{_free_port()}", "eth").tip()
    assert "s3cret" not in str(caught.value)


def test_explicit_trace_mode_needs_the_node_to_have_it(shared_data: Path, store: ChainStore) -> None:
    with _block_483920_server(shared_data) as server:
        with pytest.raises(SourceUnavailableError, match="trace_block"):
            ingest_from_source(store, EthereumRpcSource(server.url, "eth", traces="parity"),
                               BLOCK_483920, BLOCK_483920)
    assert store.summary() == []
    with pytest.raises(InputError):
        EthereumRpcSource("http://127.0.0.1:1", "eth", traces="sometimes")
    with pytest.raises(InputError):
        EthereumRpcSource("http://127.0.0.1:1", "btc")
