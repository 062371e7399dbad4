"""Decoding ERC-20 logs, call traces, quantities and fees, checked against real recorded chain data."""

from __future__ import annotations

import base64
import csv
import json
import lzma
from pathlib import Path

import pytest

from fundtrail.chains.evm.decode import (
    TRANSFER_TOPIC,
    TransferLogKind,
    classify_transfer_log,
    decode_erc20_transfer,
    decode_logs,
    flatten_geth_traces,
    flatten_parity_traces,
    parse_address,
    parse_quantity,
    split_topics,
    transaction_fee,
)
from fundtrail.errors import InputError

USDT = "0xdac17f958d2ee523a2206206994597c13d831ec7"
TRACE_BLOCKS = ["block_with_create", "block_with_error", "block_with_subtraces", "block_with_suicide",
                "block_without_transactions"]


def _etl(shared_data: Path) -> Path:
    return shared_data / "blockchain_etl_fixtures" / "ethereum-etl"


def _b64_hex(text: str) -> str:
    return "0x" + base64.b64decode(text).hex()


def _envelope(path: Path):
    return json.loads(path.read_text())["result"]


# --------------------------------------------------------------------------- ERC-20 logs


def test_graphsense_usdt_transfers_match_reference(shared_data: Path) -> None:
    folder = shared_data / "graphsense_eth_fixtures" / "tokens_block_15000000"
    with lzma.open(folder / "logs.json.xz", "rt") as handle:
        logs = [json.loads(line) for line in handle]
    assert len(logs) == 2228
    decoded = {}
    for log in logs:
        transfer = decode_erc20_transfer(log["address"], log["topics"], log["data"],
                                         log_index=log["logIndex"], tx_hash=log["txHash"],
                                         block_number=log["blockId"])
        if transfer is not None and transfer.token == USDT:
            decoded[(log["blockId"], log["logIndex"])] = transfer
    reference = [json.loads(line) for line in (folder / "reference" / "USDT_token_transfers.json").open()]
    assert len(reference) == 143
    assert set(decoded) == {(r["blockId"], r["logIndex"]) for r in reference}
    for r in reference:
        t = decoded[(r["blockId"], r["logIndex"])]
        assert (t.token, t.tx_hash, t.from_, t.to, t.value) == (
            _b64_hex(r["tokenAddress"]), _b64_hex(r["txHash"]), _b64_hex(r["from"]), _b64_hex(r["to"]),
            r["value"])
    first = decoded[(15000000, 49)]
    assert (first.from_, first.to, first.value) == (
        "0x45225d3536ac02928f16071ab05066bce95c2cd5", "0xcaf7ce56598e8588c9bf471e08b53e8a8d9541b3",
        3360488227)


def test_graphsense_logs_erc721_transfers_are_skipped_and_counted(shared_data: Path) -> None:
    folder = shared_data / "graphsense_eth_fixtures" / "tokens_block_15000000"
    with lzma.open(folder / "logs.json.xz", "rt") as handle:
        logs = [json.loads(line) for line in handle]
    rpc_shaped = [{"address": x["address"], "topics": x["topics"], "data": x["data"],
                   "logIndex": x["logIndex"], "transactionHash": x["txHash"], "blockNumber": x["blockId"]}
                  for x in logs]
    transfers, stats = decode_logs(rpc_shaped)
    with_topic = [x for x in logs if x["topics"] and x["topics"][0] == TRANSFER_TOPIC]
    four_topics = [x for x in with_topic if len(x["topics"]) == 4]
    assert four_topics, "the fixture has ERC-721 transfers"
    assert stats.erc721_skipped == len(four_topics)
    assert stats.erc20 == len(transfers) == len(with_topic) - len(four_topics)
    assert stats.other == len(logs) - len(with_topic)
    nft = {(x["txHash"], x["logIndex"]) for x in four_topics}
    assert not {(t.tx_hash, t.log_index) for t in transfers} & nft


def _token_rows(path: Path) -> set[tuple]:
    with path.open(newline="") as handle:
        return {(r["token_address"], r["from_address"], r["to_address"], int(r["value"]),
                 r["transaction_hash"], int(r["log_index"]), int(r["block_number"]))
                for r in csv.DictReader(handle)}


def test_filter_logs_response_gives_expected_token_transfers(shared_data: Path) -> None:
    folder = _etl(shared_data) / "test_export_token_transfers_job" / "block_with_transfers"
    transfers, stats = decode_logs(_envelope(folder / "web3_response.eth_getFilterLogs_0x0.json"))
    got = {(t.token, t.from_, t.to, t.value, t.tx_hash, t.log_index, t.block_number) for t in transfers}
    assert got == _token_rows(folder / "expected_token_transfers.csv")
    assert stats.erc20 == 2


def test_logs_csv_gives_expected_token_transfers(shared_data: Path) -> None:
    folder = _etl(shared_data) / "test_extract_token_transfers_job" / "logs"
    got = set()
    with (folder / "logs.csv").open(newline="") as handle:
        for r in csv.DictReader(handle):
            t = decode_erc20_transfer(r["address"], split_topics(r["topics"]), r["data"],
                                      log_index=int(r["log_index"]), tx_hash=r["transaction_hash"],
                                      block_number=int(r["block_number"]))
            if t is not None:
                got.add((t.token, t.from_, t.to, t.value, t.tx_hash, t.log_index, t.block_number))
    assert got == _token_rows(folder / "expected_token_transfers.csv")


def test_stream_logs_give_expected_token_transfers_less_erc721(shared_data: Path) -> None:
    folder = _etl(shared_data) / "test_stream" / "blocks_17173049_17173050"
    logs = [json.loads(line) for line in (folder / "expected_logs.json").open()]
    expected = [json.loads(line) for line in (folder / "expected_token_transfers.json").open()]
    assert len(logs) == 681 and len(expected) == 291
    nft = {(x["transaction_hash"], x["log_index"]) for x in logs
           if x["topics"] and x["topics"][0] == TRANSFER_TOPIC and len(x["topics"]) == 4}
    got = set()
    for x in logs:
        t = decode_erc20_transfer(x["address"], x["topics"], x["data"], log_index=x["log_index"],
                                  tx_hash=x["transaction_hash"])
        if t is not None:
            got.add((t.token, t.from_, t.to, t.value, t.tx_hash, t.log_index))
    # ethereum-etl lists ERC-721 transfers among token transfers (token id as value); we skip them
    assert got == {(e["token_address"], e["from_address"], e["to_address"], e["value"], e["transaction_hash"],
                    e["log_index"]) for e in expected if (e["transaction_hash"], e["log_index"]) not in nft}
    assert len(got) == 291 - len(nft) == 282


@pytest.mark.parametrize(("topics", "data", "kind"), [
    ([TRANSFER_TOPIC, "0x" + "00" * 12 + "11" * 20, "0x" + "00" * 12 + "22" * 20], "0x" + "00" * 31 + "05",
     TransferLogKind.ERC20),
    ([TRANSFER_TOPIC, "0x" + "00" * 32, "0x" + "00" * 32, "0x" + "00" * 31 + "07"], "0x",
     TransferLogKind.ERC721),
    ([TRANSFER_TOPIC, "0x" + "00" * 32], "0x" + "00" * 64, TransferLogKind.MALFORMED),
    ([TRANSFER_TOPIC, "0x" + "00" * 32, "0x" + "00" * 32], "0x" + "00" * 33, TransferLogKind.MALFORMED),
    (["0x" + "ab" * 32], "0x", TransferLogKind.OTHER),
    ([], "0x", TransferLogKind.OTHER),
])
def test_classify_transfer_log(topics, data, kind) -> None:
    assert classify_transfer_log(topics, data) is kind


def test_erc20_value_beyond_64_bits_is_exact() -> None:
    top = "0x" + "ff" * 32
    t = decode_erc20_transfer("0x" + "AB" * 20, [TRANSFER_TOPIC, "0x" + "00" * 12 + "11" * 20,
                                                 "0x" + "00" * 12 + "22" * 20], top)
    assert t is not None
    assert t.value == 2**256 - 1
    assert t.token == "0x" + "ab" * 20
    assert (t.from_, t.to) == ("0x" + "11" * 20, "0x" + "22" * 20)


def test_removed_logs_are_not_transfers() -> None:
    log = {"address": "0x" + "ab" * 20, "data": "0x" + "00" * 31 + "01", "logIndex": "0x0", "removed": True,
           "topics": [TRANSFER_TOPIC, "0x" + "00" * 32, "0x" + "00" * 32],
           "transactionHash": "0x" + "cd" * 32}
    assert decode_logs([log])[0] == []


# --------------------------------------------------------------------------- traces


def _expected_internal(path: Path) -> tuple[set[tuple], set[tuple], set[str]]:
    """From ethereum-etl's expected_traces.csv: value-carrying internal moves, rewards, failed txs.

    An internal move is a successful (status 1) call, create or suicide below the top level (non-empty
    trace_address) with value > 0 that is not a delegatecall/staticcall.
    """
    internal, rewards, failed = set(), set(), set()
    with path.open(newline="") as handle:
        for r in csv.DictReader(handle):
            value = int(r["value"] or 0)
            if r["trace_type"] == "reward":
                rewards.add((r["to_address"], value, r["reward_type"]))
            elif r["trace_address"] == "":
                if r["status"] == "0":
                    failed.add(r["transaction_hash"])
            elif (r["status"] == "1" and value > 0 and r["call_type"] not in ("delegatecall", "staticcall")):
                internal.add((r["transaction_hash"], r["from_address"], r["to_address"], value,
                              {"suicide": "selfdestruct"}.get(r["trace_type"], r["trace_type"])))
    return internal, rewards, failed


@pytest.mark.parametrize("case", TRACE_BLOCKS)
def test_parity_traces_match_expected_traces(shared_data: Path, case: str) -> None:
    folder = _etl(shared_data) / "test_export_traces_job" / case
    [response] = folder.glob("web3_response.trace_block_*.json")
    result = flatten_parity_traces(_envelope(response))
    internal, rewards, failed = _expected_internal(folder / "expected_traces.csv")
    assert {(t.tx_hash, t.from_, t.to, t.value, t.kind) for t in result.transfers} == internal
    assert {(r.to, r.value, r.reward_type) for r in result.rewards} == rewards
    assert {result.tx_hashes[i] for i in result.failed_txs} == failed


def test_parity_traces_see_the_fixture_cases(shared_data: Path) -> None:
    base = _etl(shared_data) / "test_export_traces_job"
    suicide = flatten_parity_traces(
        _envelope(base / "block_with_suicide" / "web3_response.trace_block_0xf7105.json"))
    assert [(t.kind, t.from_, t.to, t.value, t.position) for t in suicide.transfers] == [
        ("selfdestruct", "0x474faa5018639791952fae334e2911700ac7fe9b",
         "0x83973747eec131bf9a08ac64fb1a518e891bdf4b", 0xb1a2bc2ec50000, 1)]
    error = flatten_parity_traces(
        _envelope(base / "block_with_error" / "web3_response.trace_block_0xf45bf.json"))
    assert error.failed_txs == {0} and error.transfers == []
    create = flatten_parity_traces(
        _envelope(base / "block_with_create" / "web3_response.trace_block_0xf44f2.json"))
    assert create.created == {1: "0xa7e3cf952ea8d9438a26ee346c295f1ada328ae1"}


def test_geth_top_level_create_names_the_contract(shared_data: Path) -> None:
    folder = _etl(shared_data) / "test_extract_geth_traces_job" / "block_with_create"
    result = flatten_geth_traces(
        _envelope(folder / "web3_response.debug_traceBlockByNumber_0xf44f2_tracer_calltracer.json"))
    assert result.created == {1: "0xa7e3cf952ea8d9438a26ee346c295f1ada328ae1"}


def _tx_hashes_from_parity(shared_data: Path, case: str) -> list[str]:
    folder = _etl(shared_data) / "test_export_traces_job" / case
    [response] = folder.glob("web3_response.trace_block_*.json")
    positions = {}
    for t in _envelope(response):
        if t.get("transactionHash"):
            positions[t["transactionPosition"]] = t["transactionHash"]
    return [positions[i] for i in sorted(positions)]


@pytest.mark.parametrize("case", TRACE_BLOCKS)
def test_geth_call_traces_agree_with_parity_expected_traces(shared_data: Path, case: str) -> None:
    folder = _etl(shared_data) / "test_extract_geth_traces_job" / case
    [response] = folder.glob("web3_response.debug_traceBlockByNumber_*.json")
    hashes = _tx_hashes_from_parity(shared_data, case) if case != "block_without_transactions" else []
    result = flatten_geth_traces(_envelope(response), hashes)
    internal, _, failed = _expected_internal(_etl(shared_data) / "test_export_traces_job" / case /
                                             "expected_traces.csv")
    # this recording's callTracer wrote SELFDESTRUCT frames without beneficiary and amount:
    # they are counted, not guessed
    unresolved = {t for t in internal if t[4] == "selfdestruct"}
    assert {(t.tx_hash, t.from_, t.to, t.value, t.kind) for t in result.transfers} == internal - unresolved
    assert result.unresolved_selfdestructs == len(unresolved)
    assert {hashes[i] for i in result.failed_txs} == failed


def test_geth_callcode_value_stays_with_the_caller(shared_data: Path) -> None:
    folder = _etl(shared_data) / "test_extract_geth_traces_job" / "block_with_subtraces"
    result = flatten_geth_traces(
        _envelope(folder / "web3_response.debug_traceBlockByNumber_0xf4240_tracer_calltracer.json"))
    [t] = result.transfers
    # the frame names the code's address (0x2739...) as `to`, but CALLCODE runs it in the caller's account
    assert (t.from_, t.to, t.value, t.position) == ("0xc083e9947cf02b8ffc7d3090ae9aea72df98fd47",
                                                     "0xc083e9947cf02b8ffc7d3090ae9aea72df98fd47",
                                                     100 * 10**18, 1)


A, B, C, D, E = ("0x" + c * 40 for c in "abcde")


def _frame(kind: str, frm: str, to: str | None, value: int, calls=(), error: str | None = None) -> dict:
    frame = {"type": kind, "from": frm, "value": hex(value), "calls": list(calls)}
    if to is not None:
        frame["to"] = to
    if error:
        frame["error"] = error
    return frame


def test_geth_errored_frames_and_everything_under_them_are_excluded() -> None:
    # A calls B (10); B calls C (5, ok), then D (7) which reverts after itself calling E (3), then
    # creates a contract E with 2 and delegatecalls C carrying B's value (no move)
    tree = _frame("CALL", A, B, 10, [
        _frame("CALL", B, C, 5),
        _frame("CALL", B, D, 7, [_frame("CALL", D, E, 3)], error="execution reverted"),
        _frame("CREATE2", B, E, 2),
        _frame("DELEGATECALL", B, C, 10),
        _frame("STATICCALL", B, C, 0),
        _frame("SELFDESTRUCT", B, A, 4),
    ])
    result = flatten_geth_traces([{"txHash": "0x" + "01" * 32, "result": tree}])
    assert [(t.position, t.kind, t.from_, t.to, t.value) for t in result.transfers] == [
        (1, "call", B, C, 5), (4, "create", B, E, 2), (7, "selfdestruct", B, A, 4)]
    assert result.reverted_frames == 2
    assert result.failed_txs == set()


def test_geth_failed_top_level_call_fails_the_transaction() -> None:
    tree = _frame("CALL", A, B, 10, [_frame("CALL", B, C, 5)], error="out of gas")
    result = flatten_geth_traces([{"result": tree}])
    assert result.failed_txs == {0} and result.transfers == []


def test_geth_trace_for_another_transaction_is_refused() -> None:
    with pytest.raises(InputError):
        flatten_geth_traces([{"txHash": "0x" + "01" * 32, "result": _frame("CALL", A, B, 1)}],
                            ["0x" + "02" * 32])
    with pytest.raises(InputError):
        flatten_geth_traces([{"result": _frame("CALL", A, B, 1)}], ["0x" + "02" * 32, "0x" + "03" * 32])


def test_parity_errored_subtree_is_excluded() -> None:
    tx = "0x" + "01" * 32

    def call(address, frm, to, value, error=None, call_type="call"):
        t = {"type": "call", "action": {"callType": call_type, "from": frm, "to": to, "value": hex(value)},
             "traceAddress": address, "transactionHash": tx, "transactionPosition": 0, "result": {}}
        if error:
            t["error"] = error
        return t

    traces = [call([], A, B, 10), call([0], B, C, 5), call([1], B, D, 7, "Reverted"), call([1, 0], D, E, 3),
              call([2], B, C, 9, call_type="delegatecall"),
              {"type": "create", "action": {"from": B, "value": "0x2"}, "result": {"address": E},
               "traceAddress": [3], "transactionHash": tx, "transactionPosition": 0}]
    result = flatten_parity_traces(traces)
    assert [(t.position, t.kind, t.from_, t.to, t.value) for t in result.transfers] == [
        (1, "call", B, C, 5), (5, "create", B, E, 2)]


# --------------------------------------------------------------------------- scalars and fees


@pytest.mark.parametrize(("text", "value"), [("0x0", 0), ("0x", 0), ("0x56bc75e2d63100000", 100 * 10**18),
                                             ("12345", 12345), (7, 7),
                                             ("0x" + "f" * 64, 2**256 - 1)])
def test_parse_quantity(text, value) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("bad", ["1e18", "1.5", "-1", "0xzz", "", None, 1.0, True, -3])
def test_parse_quantity_refuses_non_integers(bad) -> None:
    with pytest.raises(InputError):
        parse_quantity(bad, "value")


def test_parse_address_is_lower_case_and_validated() -> None:
    # EIP-55's own examples
    assert (parse_address("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")
            == "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed")
    assert (parse_address("0XFB6916095CA1DF60BB79CE92CE3EA74C37C5D359")
            == "0xfb6916095ca1df60bb79ce92ce3ea74c37c5d359")
    for bad in ("0x1234", "abcdef0123456789abcdef0123456789abcdef0123", "0x" + "g" * 40, None,
                "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"):  # one letter's case changed
        with pytest.raises(InputError):
            parse_address(bad)


def test_fees_of_recorded_receipts(shared_data: Path) -> None:
    folder = _etl(shared_data) / "test_export_receipts_job" / "receipts_with_logs"
    with (folder / "expected_receipts.csv").open(newline="") as handle:
        expected = {r["transaction_hash"]: int(r["gas_used"]) * int(r["effective_gas_price"])
                    for r in csv.DictReader(handle)}
    got = {}
    for path in folder.glob("web3_response.eth_getTransactionReceipt_*.json"):
        receipt = _envelope(path)
        got[receipt["transactionHash"]] = transaction_fee(parse_quantity(receipt["gasUsed"]),
                                                          parse_quantity(receipt["effectiveGasPrice"]))
    assert got == expected
    assert got["0x463d53f0ad57677a3b430a007c1c31d15d62c37fab5eee598551697c297c235c"] == 21000 * 50 * 10**9


def test_fee_rules() -> None:
    assert transaction_fee(21000, 30, 99) == 21000 * 30  # effective price wins
    assert transaction_fee(21000, None, 50) == 21000 * 50  # legacy receipts: gasPrice
    assert transaction_fee(None, 30, 50) is None
    assert transaction_fee(21000, None, None) is None
    assert transaction_fee(100, 2, blob_gas_used=131072, blob_gas_price=3) == 200 + 131072 * 3
    assert transaction_fee(100, 2, l1_fee=1234) == 1434
