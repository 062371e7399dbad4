"""TRON (``trx``) read through its Ethereum-compatible JSON-RPC, with base58 ``T...`` addresses everywhere.

The node session is built by hand in the shapes java-tron's JSON-RPC documents (``eth_*`` answers as
Ethereum's; accounts as ``0x`` + 20 bytes without TRON's ``41`` prefix; values in sun): two blocks with a
native TRX transfer and USDT (TRC-20) ``Transfer`` logs, replayed on loopback. The exchange and the
sanctioned address are real: a Binance reserve wallet from the GraphSense TagPacks and an OFAC TRX entry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fundtrail.chains.evm.decode import TRANSFER_TOPIC
from fundtrail.chains.evm.rpc import EthereumRpcSource
from fundtrail.domain.addresses import b58check_decode, b58check_encode, canonical_address, decode_address
from fundtrail.domain.assets import show_amount
from fundtrail.errors import InvalidAddressError
from fundtrail.store import ChainStore
from fundtrail.store.ingest import ingest_from_source
from fundtrail.testing.rpc_replay import RpcReplayServer

USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"           # Tether's TRC-20 contract
BINANCE = "TMuA6YqfCeX8EhbfYEg5y7S4DqzSJireY9"        # exchange-wallets-binance.yaml, currency TRX
SANCTIONED = "TTUDyVhhpCC1xJoPmWzdjLAzeoPwbSABdr"     # sanctioned_addresses_TRX.txt
VICTIM = b58check_encode(b"\x41" + bytes.fromhex("11" * 20))
THIEF = b58check_encode(b"\x41" + bytes.fromhex("22" * 20))
MULE = b58check_encode(b"\x41" + bytes.fromhex("33" * 20))
FIRST = 60_000_000
TRON_CHAIN_ID = "0x2b6653dc"
TIME = 1_700_000_001


def _rpc(address: str) -> str:
    """How TRON's JSON-RPC writes an account: 0x + the 20 bytes after the 41 prefix."""
    return "0x" + b58check_decode(address)[1:].hex()


def _topic(address: str) -> str:
    return "0x" + "00" * 12 + b58check_decode(address)[1:].hex()


def _block_hash(height: int) -> str:
    """TRON block ids start with the height."""
    return "0x" + height.to_bytes(8, "big").hex() + f"{height:048x}"[::-1]


def _txid(n: int) -> str:
    return "0x" + f"{n:02x}" * 32


def _tx(n: int, height: int, index: int, sender: str, to: str, value: int,
        data: str = "0x") -> dict[str, Any]:
    return {"blockHash": _block_hash(height), "blockNumber": hex(height), "from": _rpc(sender), "gas": "0x0",
            "gasPrice": "0xd2", "hash": _txid(n), "input": data, "nonce": None, "r": "0x" + "ab" * 32,
            "s": "0x" + "cd" * 32, "to": _rpc(to), "transactionIndex": hex(index), "type": "0x0",
            "v": "0x1b", "value": hex(value)}


def _transfer_call(to: str, amount: int) -> str:
    return "0xa9059cbb" + _topic(to)[2:] + f"{amount:064x}"


def _log(n: int, height: int, index: int, log_index: int, sender: str, to: str,
         amount: int) -> dict[str, Any]:
    return {"address": _rpc(USDT), "blockHash": _block_hash(height), "blockNumber": hex(height),
            "data": f"0x{amount:064x}", "logIndex": hex(log_index), "removed": False,
            "topics": [TRANSFER_TOPIC, _topic(sender), _topic(to)], "transactionHash": _txid(n),
            "transactionIndex": hex(index)}


def _receipt(tx: dict[str, Any], gas_used: int, logs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"blockHash": tx["blockHash"], "blockNumber": tx["blockNumber"], "contractAddress": None,
            "cumulativeGasUsed": hex(gas_used), "effectiveGasPrice": "0xd2", "from": tx["from"],
            "gasUsed": hex(gas_used), "logs": logs, "logsBloom": "0x" + "00" * 256, "root": None,
            "status": "0x1", "to": tx["to"], "transactionHash": tx["hash"],
            "transactionIndex": tx["transactionIndex"], "type": "0x0"}


def _session() -> dict[Any, Any]:
    """Block FIRST: victim pays the thief 1,500 TRX and 10,000 USDT. Block FIRST+1: the thief sends the
    USDT to a mule, the mule to Binance; the thief pays 1,000 TRX to a sanctioned address."""
    usdt = 10_000 * 10**6
    txs = {FIRST: [_tx(1, FIRST, 0, VICTIM, THIEF, 1_500 * 10**6),
                   _tx(2, FIRST, 1, VICTIM, USDT, 0, _transfer_call(THIEF, usdt))],
           FIRST + 1: [_tx(3, FIRST + 1, 0, THIEF, USDT, 0, _transfer_call(MULE, usdt)),
                       _tx(4, FIRST + 1, 1, MULE, USDT, 0, _transfer_call(BINANCE, usdt)),
                       _tx(5, FIRST + 1, 2, THIEF, SANCTIONED, 1_000 * 10**6)]}
    logs = {2: [_log(2, FIRST, 1, 0, VICTIM, THIEF, usdt)], 3: [_log(3, FIRST + 1, 0, 0, THIEF, MULE, usdt)],
            4: [_log(4, FIRST + 1, 1, 1, MULE, BINANCE, usdt)]}
    answers: dict[Any, Any] = {"eth_chainId": TRON_CHAIN_ID, "eth_blockNumber": hex(FIRST + 1)}
    all_logs = []
    for height, block_txs in txs.items():
        answers[("eth_getBlockByNumber", (hex(height), True))] = {
            "baseFeePerGas": None, "difficulty": None, "extraData": "0x", "gasLimit": "0x0",
            "gasUsed": "0x0", "hash": _block_hash(height), "logsBloom": "0x" + "00" * 256,
            "miner": _rpc("TLyqzVGLV1srkB7dToTAEqgDSfPtXRJZYH"), "mixHash": None, "nonce": None,
            "number": hex(height), "parentHash": _block_hash(height - 1), "receiptsRoot": None,
            "sha3Uncles": None, "size": "0x2a0", "stateRoot": "0x",
            "timestamp": hex(TIME + 3 * (height - FIRST)),
            "totalDifficulty": None, "transactions": block_txs, "transactionsRoot": "0x" + "00" * 32,
            "uncles": []}
        for tx in block_txs:
            n = int(tx["hash"][2:4], 16)
            answers[("eth_getTransactionReceipt", (tx["hash"],))] = _receipt(tx, 13_345 if n in logs else 0,
                                                                            logs.get(n, []))
            all_logs.extend(logs.get(n, []))

    def get_logs(params: list[Any]) -> list[dict[str, Any]]:
        lo, hi = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
        return [e for e in all_logs if lo <= int(e["blockNumber"], 16) <= hi]

    answers["eth_getLogs"] = get_logs
    return answers  # no eth_getBlockReceipts, no trace API: as a java-tron node answers


@pytest.fixture()
def tron_home(cli, home: Path, shared_data: Path) -> Path:
    with RpcReplayServer(_session()) as server:
        result = cli("ingest", "rpc", server.url, "--chain", "trx", "--from", str(FIRST), "--to",
                     str(FIRST + 1), "--home", str(home), "--format", "json")
        methods = server.methods_called()
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["blocks_written"] == 2 and report["txs_written"] == 5
    assert report["notes"], "no trace API on a TRON node is reported"
    assert "eth_getTransactionReceipt" in methods and "eth_getLogs" in methods
    packs = shared_data / "graphsense_tagpacks" / "packs" / "exchange-wallets-binance.yaml"
    assert cli("tags", "import", str(packs), "--home", str(home)).exit_code == 0
    ofac = shared_data / "ofac_sanctioned_addresses" / "sanctioned_addresses_TRX.txt"
    assert cli("sanctions", "import", str(ofac), "--home", str(home)).exit_code == 0
    return home


def test_tron_addresses_decode_from_base58_and_hex() -> None:
    hex41 = "41" + b58check_decode(USDT)[1:].hex()
    for given in (USDT, hex41, "0x" + hex41, "0X" + hex41.upper(), f"  {USDT} "):
        assert canonical_address("trx", given) == USDT
        assert canonical_address("tron", given) == USDT
    decoded = decode_address("trx", USDT)
    assert decoded.type.value == "tron" and decoded.type.script_type is None
    assert decoded.payload.hex() == "a614f803b6fd780986a42c78ec9c7f77e6ded13c"
    for bad in (USDT[:-1] + ("u" if USDT[-1] != "u" else "v"),    # checksum
                "0x" + hex41[:-2], hex41 + "00",                   # 0x41 hex of wrong length
                "0x" + hex41[2:],                                  # EVM-style 0x + 20 bytes
                "1BoatSLRHtKNngkdXEeobR76b53LETtpyT", ""):
        with pytest.raises(InvalidAddressError):
            decode_address("trx", bad)
    with pytest.raises(InvalidAddressError, match="Tron"):
        decode_address("btc", USDT)
    assert show_amount(10_000 * 10**6, "trx", USDT) == "10,000.000000 USDT"
    assert show_amount(1_500 * 10**6, "trx") == "1,500.000000 TRX"


def test_ingest_stores_base58_accounts_trx_and_trc20_transfers(store: ChainStore) -> None:
    with RpcReplayServer(_session()) as server:
        source = EthereumRpcSource(server.url, "trx")
        ingest_from_source(store, source, FIRST, FIRST + 1)
        source.close()
    rows = set(store.query("SELECT kind, asset, from_address, to_address, value FROM transfers "
                           "WHERE kind <> 'fee'"))
    usdt = 10_000 * 10**6
    assert rows == {("native", "native", VICTIM, THIEF, 1_500 * 10**6),
                    ("native", "native", THIEF, SANCTIONED, 1_000 * 10**6),
                    ("native", "native", VICTIM, USDT, 0), ("native", "native", THIEF, USDT, 0),
                    ("native", "native", MULE, USDT, 0),
                    ("token", USDT, VICTIM, THIEF, usdt), ("token", USDT, THIEF, MULE, usdt),
                    ("token", USDT, MULE, BINANCE, usdt)}
    fees = store.query("SELECT txid, from_address, value FROM transfers WHERE kind = 'fee' ORDER BY txid")
    assert fees == [(_txid(n), sender, 13_345 * 210) for n, sender in ((2, VICTIM), (3, THIEF), (4, MULE))]
    assert all(a.startswith("T") for (a,) in store.query("SELECT address FROM addresses"))


def test_cli_address_shows_and_accepts_tron_forms(cli, tron_home: Path) -> None:
    hex41 = "0x41" + b58check_decode(MULE)[1:].hex()
    for given in (MULE, hex41, hex41[2:]):
        result = cli("address", given, "--chain", "trx", "--home", str(tron_home), "--format", "json")
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout)
        assert doc["address"] == MULE
        text = json.dumps(doc)
        assert "0x" + b58check_decode(MULE)[1:].hex() not in text
        assert USDT in text
    human = cli("address", MULE, "--chain", "trx", "--home", str(tron_home))
    assert human.exit_code == 0 and MULE in human.output


def test_cli_trace_from_a_tron_address_reaches_the_tagged_exchange(cli, tron_home: Path) -> None:
    result = cli("trace", THIEF, "--chain", "trx", "--home", str(tron_home), "--format", "json")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert BINANCE in text and "binance" in text.lower()
    assert SANCTIONED in text
    assert "0x" + b58check_decode(BINANCE)[1:].hex() not in text
    hex_seed = "41" + b58check_decode(THIEF)[1:].hex()
    again = cli("trace", hex_seed, "--chain", "trx", "--home", str(tron_home), "--format", "json")
    assert again.exit_code == 0 and BINANCE in again.stdout


def test_cli_sanctions_check_finds_the_ofac_tron_address(cli, tron_home: Path) -> None:
    for given in (SANCTIONED, "0x41" + b58check_decode(SANCTIONED)[1:].hex()):
        result = cli("sanctions", "check", given, "--chain", "trx", "--home", str(tron_home),
                     "--format", "json")
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout)
        assert doc["sanctioned"] is True and doc["address"] == SANCTIONED
    clean = cli("sanctions", "check", MULE, "--chain", "trx", "--home", str(tron_home), "--format", "json")
    assert json.loads(clean.stdout)["sanctioned"] is False


@pytest.mark.parametrize("bad", [USDT[:-1] + ("u" if USDT[-1] != "u" else "v"),
                                 "0x41" + "ab" * 19, "41" + "ab" * 21])
@pytest.mark.parametrize("command", ["address", "trace"])
def test_bad_tron_address_is_one_line_exit_2(cli, home: Path, bad: str, command: str) -> None:
    result = cli(command, bad, "--chain", "trx", "--home", str(home))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "trx" in lines[0], result.output


def test_a_trc20_contract_names_an_asset_in_its_own_letter_case() -> None:
    from fundtrail.analysis.tracing.params import TraceParams

    usdt = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
    assert TraceParams(asset=usdt).asset == usdt
    assert TraceParams(asset="0xDAC17F958D2EE523A2206206994597C13D831EC7").asset == (
        "0xdac17f958d2ee523a2206206994597c13d831ec7")
    assert TraceParams(asset="NATIVE").asset == "native"
