"""Conversions on real nodes: two anvil instances stand for two chains, ``eth`` (chain id 1) and ``bsc``
(chain id 56). tests/resources/evm/Conversions.sol (compiled with the npm ``solc``, no download) holds a
Uniswap-v2-style pair, a 10-ETH pool with Tornado Cash's events and a bridge with Celer cBridge's events;
the tokens are tests/resources/evm/Token.sol.

The scenario (alice, bob and the deployer are anvil's prefunded accounts; MULE, PAYEE, RECEIVER and EXCH
are fresh addresses, sending through anvil's auto-impersonation; every transaction pays 2 gwei a gas):

* eth: the deployer deploys tokens A and B, the pair (1000 A + 1000 B of liquidity), the pool and the
  bridge, and gives alice 100 A; alice swaps her 100 A for B paid to MULE (Uniswap v2 ``Swap``);
* eth: alice and bob each deposit 10 ETH into the pool; two hours later alice herself withdraws hers to
  PAYEE (linkable by the same-address heuristic; the only one: the gas price is not rare and the deposits
  are out of the timing window);
* eth: MULE (given 1 ETH of gas by the deployer) bridges all its B to RECEIVER on bsc (cBridge ``Send``);
* bsc: the deployer deploys token C and the bridge, funds the bridge with C and relays the transfer
  (``Relay`` with ``srcTransferId`` = the Send's ``transferId``), paying RECEIVER the amount less 0.1 %;
  RECEIVER pays it all to EXCH, which a TagPack names as an exchange.

Both chains are ingested over RPC into one FundTrail home (``fundtrail ingest rpc``), conversions are
detected and checked one by one, and one ``fundtrail trace`` from alice on eth reaches EXCH on bsc with the
relayed amount tainted. The same blocks written as ethereum-etl CSVs (blocks, transactions, receipts, logs,
token_transfers) from the nodes' answers and read by ``fundtrail ingest ethereum-etl`` give the same
conversions.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_rpc_anvil import (  # the node helpers of the single-node anvil test
    NODE_MODULES,
    RESOURCES,
    Node,
    _anvil_binary,
    _call_data,
    _free_port,
    _need,
    _word,
)
from typer.testing import CliRunner

pytestmark = [pytest.mark.node, pytest.mark.timeout(180)]

ETH = 10**18
GAS_PRICE = 2 * 10**9  # a round gas price: the rare-gas-price heuristic must not fire
CHAIN_IDS = {"eth": 1, "bsc": 56}
MULE = "0x" + "11" * 20
PAYEE = "0x" + "22" * 20
RECEIVER = "0x" + "33" * 20
EXCH = "0x" + "44" * 20
NATIVE = "native"


class Chain(Node):
    """A node that sends every transaction at :data:`GAS_PRICE` (legacy pricing)."""

    def send(self, sender: str, to: str | None = None, value: int = 0, data: str = "0x",
             gas: int | None = None, *, wait: bool = True) -> str:
        tx: dict[str, Any] = {"from": sender, "value": hex(value), "data": data, "gasPrice": hex(GAS_PRICE)}
        if to is not None:
            tx["to"] = to
        if gas is not None:
            tx["gas"] = hex(gas)
        tx_hash: str = self.call("eth_sendTransaction", tx)
        receipt = self.receipt(tx_hash)
        assert receipt["status"] == "0x1", (tx_hash, receipt)
        return tx_hash


def _cli(*args: str) -> dict[str, Any]:
    from fundtrail.cli.main import app

    result = CliRunner().invoke(app, [*args, "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


@pytest.fixture(scope="module")
def contracts() -> dict[str, Any]:
    node = shutil.which("node")
    _need(node is not None, "node is not installed")
    assert node is not None
    _need((NODE_MODULES / "solc").is_dir(),
          f"{NODE_MODULES}/solc is missing: run `npm ci --prefix tools/node`")
    out = subprocess.run([node, str(RESOURCES / "compile.js"), str(NODE_MODULES),
                          str(RESOURCES / "Token.sol"), str(RESOURCES / "Conversions.sol")],
                         capture_output=True, text=True, timeout=90, check=False)
    assert out.returncode == 0, out.stderr
    compiled: dict[str, Any] = json.loads(out.stdout)
    return compiled


def _start(binary: Path, chain_id: int, log_path: Path) -> tuple[subprocess.Popen[bytes], Chain]:
    for _ in range(3):
        port = _free_port()
        with log_path.open("ab") as log:
            proc = subprocess.Popen([str(binary), "--host", "127.0.0.1", "--port", str(port),
                                     "--accounts", "4", "--chain-id", str(chain_id), "--auto-impersonate"],
                                    stdout=log, stderr=subprocess.STDOUT)
        node = Chain(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                assert int(node.call("eth_chainId"), 16) == chain_id
                return proc, node
            except httpx.TransportError:
                time.sleep(0.1)
        node.client.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    raise AssertionError(f"anvil did not start:\n{log_path.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Chain]]:
    binary = _anvil_binary()
    logs = tmp_path_factory.mktemp("anvil")
    started: list[tuple[subprocess.Popen[bytes], Chain]] = []
    try:
        for name, chain_id in CHAIN_IDS.items():
            started.append(_start(binary, chain_id, logs / f"{name}.log"))
        yield {name: node for name, (_, node) in zip(CHAIN_IDS, started, strict=True)}
    finally:
        for proc, node in started:
            node.client.close()
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _deploy(node: Chain, sender: str, contract: dict[str, Any], *args: int | str) -> str:
    tx = node.send(sender, None, 0, contract["bytecode"] + "".join(_word(a) for a in args))
    return str(node.receipt(tx)["contractAddress"]).lower()


def _logs_of(node: Chain, tx: str, address: str) -> list[dict[str, Any]]:
    return [lg for lg in node.receipt(tx)["logs"] if lg["address"].lower() == address]


@pytest.fixture(scope="module")
def scenario(nodes: dict[str, Chain], contracts: dict[str, Any]) -> dict[str, Any]:
    """Runs the module docstring's scenario; returns the addresses, transactions and amounts."""
    eth, bsc = nodes["eth"], nodes["bsc"]
    alice, bob, _, deployer = (a.lower() for a in eth.call("eth_accounts"))
    tok = contracts["Token"]["methods"]
    transfer, approve = tok["transfer(address,uint256)"], tok["approve(address,uint256)"]
    pair_m, pool_m, bridge_m = (contracts[n]["methods"] for n in ("Pair", "Pool", "Bridge"))
    s: dict[str, Any] = {"alice": alice, "bob": bob, "deployer": deployer}

    # eth: tokens, pair, pool, bridge
    a = s["token_a"] = _deploy(eth, deployer, contracts["Token"], 1_000_000 * ETH)
    b = s["token_b"] = _deploy(eth, deployer, contracts["Token"], 1_000_000 * ETH)
    pair = s["pair"] = _deploy(eth, deployer, contracts["Pair"], a, b)
    pool = s["pool"] = _deploy(eth, deployer, contracts["Pool"])
    bridge_eth = s["bridge_eth"] = _deploy(eth, deployer, contracts["Bridge"])
    eth.send(deployer, a, data=_call_data(transfer, pair, 1000 * ETH))
    eth.send(deployer, b, data=_call_data(transfer, pair, 1000 * ETH))
    eth.send(deployer, a, data=_call_data(transfer, alice, 100 * ETH))

    # the swap: 100 A in, B out to MULE at the constant product
    eth.send(alice, a, data=_call_data(approve, pair, 100 * ETH))
    swap = pair_m["swap(address,uint256,address)"]
    s["swap_tx"] = eth.send(alice, pair, data=_call_data(swap, a, 100 * ETH, MULE))
    s["swap_out"] = 100 * ETH * (1000 * ETH) // (1100 * ETH)
    assert eth.token_balance(b, MULE) == s["swap_out"]

    # the pool: two deposits, then (two hours on) alice withdraws hers to PAYEE
    deposit = pool_m["deposit(bytes32)"]
    s["deposit_alice"] = eth.send(alice, pool, 10 * ETH, _call_data(deposit, "0x" + "c1" * 32))
    s["deposit_bob"] = eth.send(bob, pool, 10 * ETH, _call_data(deposit, "0x" + "c2" * 32))
    eth.call("evm_increaseTime", 7200)
    s["withdrawal"] = eth.send(alice, pool, 0, _call_data(pool_m["withdraw(bytes32,address,address,uint256)"],
                                                          "0x" + "d1" * 32, PAYEE, 0, 0))
    assert eth.balance(PAYEE) == 10 * ETH and eth.balance(pool) == 10 * ETH

    # the bridge: MULE sends all its B to RECEIVER on bsc
    eth.send(deployer, MULE, 1 * ETH)
    eth.send(MULE, b, data=_call_data(approve, bridge_eth, s["swap_out"]))
    send = bridge_m["send(address,address,uint256,uint64,uint64,uint32)"]
    s["send_tx"] = eth.send(MULE, bridge_eth, data=_call_data(send, RECEIVER, b, s["swap_out"],
                                                              CHAIN_IDS["bsc"], 1, 3000))
    [send_log] = _logs_of(eth, s["send_tx"], bridge_eth)
    s["transfer_id"] = "0x" + send_log["data"][2:66]

    # bsc: token C and the bridge; the relay pays RECEIVER the amount less 0.1 %; RECEIVER pays EXCH
    c = s["token_c"] = _deploy(bsc, deployer, contracts["Token"], 1_000_000 * ETH)
    bridge_bsc = s["bridge_bsc"] = _deploy(bsc, deployer, contracts["Bridge"])
    bsc.send(deployer, c, data=_call_data(transfer, bridge_bsc, 10_000 * ETH))
    s["relayed"] = s["swap_out"] * 999 // 1000
    relay = bridge_m["relay(address,address,address,uint256,uint64,bytes32)"]
    s["relay_tx"] = bsc.send(deployer, bridge_bsc, data=_call_data(relay, MULE, RECEIVER, c, s["relayed"],
                                                                   CHAIN_IDS["eth"], s["transfer_id"]))
    bsc.send(deployer, RECEIVER, 1 * ETH)
    s["pay_tx"] = bsc.send(RECEIVER, c, data=_call_data(transfer, EXCH, s["relayed"]))
    assert bsc.token_balance(c, EXCH) == s["relayed"]
    s["tip"] = {name: int(node.call("eth_blockNumber"), 16) for name, node in nodes.items()}
    return s


@pytest.fixture(scope="module")
def home(nodes: dict[str, Chain], scenario: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One home: both chains over RPC, EXCH tagged on bsc, conversions detected."""
    home = tmp_path_factory.mktemp("home")
    for name, node in nodes.items():
        report = _cli("ingest", "rpc", node.url, "--chain", name, "--from", "0", "--to",
                      str(scenario["tip"][name]), "--home", str(home))
        assert report["blocks_written"] == scenario["tip"][name] + 1
    pack = home.parent / "exchange.yaml"
    pack.write_text(f"title: anvil exchange\ncreator: fundtrail tests\nnetwork: BSC\n"
                    f"source: https://example.org/anvil\ntags:\n"
                    f"  - address: '{EXCH}'\n    label: Harbour Exchange\n    category: exchange\n")
    _cli("tags", "import", str(pack), "--home", str(home))
    return home


def _expected(s: dict[str, Any]) -> list[tuple[Any, ...]]:
    """(kind, rule, confidence, candidates, anonymity set, in leg, out leg) of every conversion."""
    return sorted([
        ("swap", "uniswap-v2-swap", 0.99, 1, None,
         ("eth", s["swap_tx"], s["pair"], s["token_a"], str(100 * ETH)),
         ("eth", s["swap_tx"], MULE, s["token_b"], str(s["swap_out"]))),
        ("pool", "pool-same-address", 0.95, 1, 2,
         ("eth", s["deposit_alice"], s["pool"], NATIVE, str(10 * ETH)),
         ("eth", s["withdrawal"], PAYEE, NATIVE, str(10 * ETH))),
        ("bridge", "cbridge-transfer-id", 0.99, 1, None,
         ("eth", s["send_tx"], s["bridge_eth"], s["token_b"], str(s["swap_out"])),
         ("bsc", s["relay_tx"], RECEIVER, s["token_c"], str(s["relayed"]))),
    ])


def _leg(leg: dict[str, Any]) -> tuple[str, ...]:
    return (leg["chain"], leg["txid"], leg["address"], leg["asset"], leg["value"])


def _found(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    return sorted((c["kind"], c["rule"], c["confidence"], c["candidates"], c.get("anonymity_set"),
                   _leg(c["in"]), _leg(c["out"])) for c in doc["conversions"])


def test_every_conversion_is_detected_over_rpc(scenario: dict[str, Any], home: Path) -> None:
    doc = _cli("conversions", "--detect", "--home", str(home))
    assert doc["detection"]["skipped"] == {}, doc["detection"]["skips"]
    assert _found(doc) == _expected(scenario)
    assert doc["detection"]["conversions"] == {"cbridge-transfer-id": 1, "pool-same-address": 1,
                                               "uniswap-v2-swap": 1}
    [bridge] = [c for c in doc["conversions"] if c["kind"] == "bridge"]
    assert bridge["evidence"] == {"transfer_id": scenario["transfer_id"], "dst_chain_id": CHAIN_IDS["bsc"]}
    [pool] = [c for c in doc["conversions"] if c["kind"] == "pool"]
    assert pool["evidence"]["depositor"] == scenario["alice"]
    bsc_only = _cli("conversions", "--chain", "bsc", "--home", str(home))
    assert [c["rule"] for c in bsc_only["conversions"]] == ["cbridge-transfer-id"]


def test_one_trace_from_alice_reaches_the_exchange_on_bsc(nodes: dict[str, Chain], scenario: dict[str, Any],
                                                         home: Path) -> None:
    """Everything alice received is tainted (an address seed); haircut throughout."""
    s = scenario
    _cli("conversions", "--detect", "--home", str(home))
    doc = _cli("trace", s["alice"], "--chain", "eth", "--home", str(home))
    crossed = [(c["kind"], c["rule"], c["in"]["txid"], c["tainted_in"], c["tainted_out"], c["followed"])
               for c in doc["conversions"]]
    # the pool holds 20 ETH when it pays PAYEE, 10 of them alice's: under haircut half of the payment flows
    # as tainted through the pool's internal transfer, and the other half (what rests at the pool) crosses
    # the same-address link; PAYEE ends with alice's 10 ETH either way
    assert crossed == [
        ("swap", "uniswap-v2-swap", s["swap_tx"], str(100 * ETH), str(s["swap_out"]), "followed"),
        ("bridge", "cbridge-transfer-id", s["send_tx"], str(s["swap_out"]), str(s["relayed"]), "followed"),
        ("pool", "pool-same-address", s["deposit_alice"], str(5 * ETH), str(5 * ETH), "followed"),
    ]
    ends = [(e["chain"], e["address"], e["asset"], e["reason"], e["tainted_value"], e.get("entity"))
            for e in doc["endpoints"]]
    assert sorted(ends) == sorted([
        ("bsc", EXCH, s["token_c"], "service", str(s["relayed"]), "Harbour Exchange"),
        ("eth", PAYEE, NATIVE, "unspent", str(10 * ETH), None),
        ("eth", s["alice"], NATIVE, "unspent", str(nodes["eth"].balance(s["alice"])), None),
    ])
    flows = [(f["chain"], f["from"], f["to"], f["asset"], f["tainted_value"]) for f in doc["flows"]]
    assert sorted(flows) == sorted([
        ("eth", s["alice"], s["pair"], s["token_a"], str(100 * ETH)),
        ("eth", s["alice"], s["pool"], NATIVE, str(10 * ETH)),
        ("eth", s["pool"], PAYEE, NATIVE, str(5 * ETH)),
        ("eth", MULE, s["bridge_eth"], s["token_b"], str(s["swap_out"])),
        ("bsc", RECEIVER, EXCH, s["token_c"], str(s["relayed"])),
    ])


# --------------------------------------------------------------------------- ethereum-etl export

ETL_COLUMNS = {
    "blocks": ["number", "hash", "parent_hash", "nonce", "sha3_uncles", "logs_bloom", "transactions_root",
               "state_root", "receipts_root", "miner", "difficulty", "total_difficulty", "size", "extra_data",
               "gas_limit", "gas_used", "timestamp", "transaction_count", "base_fee_per_gas"],
    "transactions": ["hash", "nonce", "block_hash", "block_number", "transaction_index", "from_address",
                     "to_address", "value", "gas", "gas_price", "input", "block_timestamp", "max_fee_per_gas",
                     "max_priority_fee_per_gas", "transaction_type"],
    "receipts": ["transaction_hash", "transaction_index", "block_hash", "block_number", "cumulative_gas_used",
                 "gas_used", "contract_address", "root", "status", "effective_gas_price"],
    "logs": ["log_index", "transaction_hash", "transaction_index", "block_hash", "block_number", "address",
             "data", "topics"],
    "token_transfers": ["token_address", "from_address", "to_address", "value", "transaction_hash",
                        "log_index", "block_number"],
}
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


def _int(value: str | None) -> str:
    return "" if value is None else str(int(value, 16))


def export_ethereum_etl(node: Chain, tip: int, folder: Path) -> None:
    """Blocks 0..tip as ethereum-etl writes them (export_blocks_and_transactions, export_receipts_and_logs,
    export_token_transfers), from the node's own answers."""
    rows: dict[str, list[list[str]]] = {name: [] for name in ETL_COLUMNS}
    for number in range(tip + 1):
        block = node.call("eth_getBlockByNumber", hex(number), True)
        rows["blocks"].append([
            str(number), block["hash"], block["parentHash"], block.get("nonce", ""), block["sha3Uncles"],
            block["logsBloom"], block["transactionsRoot"], block["stateRoot"], block["receiptsRoot"],
            block["miner"], _int(block.get("difficulty")), _int(block.get("totalDifficulty")),
            _int(block.get("size")), block["extraData"], _int(block["gasLimit"]), _int(block["gasUsed"]),
            _int(block["timestamp"]), str(len(block["transactions"])), _int(block.get("baseFeePerGas"))])
        for tx in block["transactions"]:
            rows["transactions"].append([
                tx["hash"], _int(tx["nonce"]), tx["blockHash"], str(number), _int(tx["transactionIndex"]),
                tx["from"], tx.get("to") or "", _int(tx["value"]), _int(tx["gas"]), _int(tx.get("gasPrice")),
                tx["input"], _int(block["timestamp"]), _int(tx.get("maxFeePerGas")),
                _int(tx.get("maxPriorityFeePerGas")), _int(tx.get("type"))])
            receipt = node.receipt(tx["hash"])
            rows["receipts"].append([
                tx["hash"], _int(receipt["transactionIndex"]), receipt["blockHash"], str(number),
                _int(receipt["cumulativeGasUsed"]), _int(receipt["gasUsed"]),
                receipt.get("contractAddress") or "", receipt.get("root") or "", _int(receipt["status"]),
                _int(receipt.get("effectiveGasPrice"))])
            for lg in receipt["logs"]:
                rows["logs"].append([
                    _int(lg["logIndex"]), tx["hash"], _int(lg["transactionIndex"]), lg["blockHash"],
                    str(number), lg["address"], lg["data"], ",".join(lg["topics"])])
                if lg["topics"][0] == TRANSFER_TOPIC and len(lg["topics"]) == 3:
                    rows["token_transfers"].append([
                        lg["address"], "0x" + lg["topics"][1][26:], "0x" + lg["topics"][2][26:],
                        str(int(lg["data"], 16)), tx["hash"], _int(lg["logIndex"]), str(number)])
    folder.mkdir(parents=True)
    for name, columns in ETL_COLUMNS.items():
        with (folder / f"{name}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            writer.writerows(rows[name])


TRANSFERS = ("SELECT chain, txid, kind, asset, from_address, to_address, value FROM transfers "
             "WHERE kind IN ('native', 'token', 'fee') ORDER BY ALL")


def test_an_ethereum_etl_export_gives_the_same_conversions(nodes: dict[str, Chain], scenario: dict[str, Any],
                                                           home: Path, tmp_path: Path) -> None:
    from fundtrail.store import ChainStore

    rpc_home, home = home, tmp_path / "home"
    for name, node in nodes.items():
        folder = tmp_path / f"export-{name}"
        export_ethereum_etl(node, scenario["tip"][name], folder)
        report = _cli("ingest", "ethereum-etl", str(folder), "--chain", name, "--home", str(home))
        assert report["blocks_written"] == scenario["tip"][name] + 1
    doc = _cli("conversions", "--detect", "--home", str(home))
    assert doc["detection"]["skipped"] == {}, doc["detection"]["skips"]
    assert _found(doc) == _expected(scenario)
    # the export has no traces (no internal transfers, no genesis): what it has is what the node gave
    with (ChainStore.open_home(rpc_home, read_only=True) as rpc,
          ChainStore.open_home(home, read_only=True) as etl):
        assert etl.query(TRANSFERS) == rpc.query(TRANSFERS)
        logs = rpc.query("SELECT * FROM logs ORDER BY ALL")
        assert len(logs) == 6  # Swap, two Deposits, Withdrawal, Send, Relay
        assert etl.query("SELECT * FROM logs ORDER BY ALL") == logs
