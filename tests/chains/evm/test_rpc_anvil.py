"""A real EVM node (anvil) end to end: plain ETH transfers, an ERC-20 token, a forwarding contract with
internal transfers, failed transactions; then ``fundtrail ingest rpc`` and every balance checked against the
node's own answers (``eth_getBalance``, the token's ``balanceOf``).

The scenario, with anvil's prefunded accounts named alice, bob, carol, dave and erin:

* alice pays bob 1 ETH; bob pays carol 0.25 ETH and carol pays dave 0.1 ETH, those two in one block;
* alice deploys the token (1,000,000 TST to her), pays bob 1000 TST; bob pays carol 250; alice lets dave
  spend 500 and dave moves 300 of them to erin; carol sends 0 TST to dave;
* carol tries to send bob more TST than she has, and bob tries to pay the token contract 1 ETH: both fail,
  their fees are paid and nothing else moves;
* alice deploys the forwarder (target erin) with 0.5 ETH; bob sends it 2 ETH, forwarded to erin in an
  internal call; carol's 0.3 ETH ``tryForward`` to the token contract fails inside, so it stays in the
  forwarder; dave's ``spawn`` creates a vault with 0.2 ETH; alice's ``close`` self-destructs the forwarder,
  sending its 0.8 ETH to dave.

The block producer (anvil's coinbase) is left out of the native check: priority fees are its income, and
the reader does not model fee income or rewards (see fundtrail.chains.evm.rpc).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fundtrail.chains.evm.rpc import EthereumRpcSource
from fundtrail.store import ChainStore
from fundtrail.store.ingest import ingest_from_source
from fundtrail.store.lookups import address_activity

pytestmark = [pytest.mark.node, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[3]
NODE_MODULES = ROOT / "tools" / "node" / "node_modules"
RESOURCES = ROOT / "tests" / "resources" / "evm"
ETH = 10**18
TST = 10**18


def _need(condition: bool, why: str) -> None:
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


def _anvil_binary() -> Path:
    _need(NODE_MODULES.is_dir(), f"{NODE_MODULES} is missing: run `npm ci --prefix tools/node`")
    for candidate in sorted(NODE_MODULES.glob("@foundry-rs/anvil-*/bin/anvil")):
        if os.access(candidate, os.X_OK):
            return candidate
    launcher = NODE_MODULES / ".bin" / "anvil"
    _need(launcher.exists(), "the anvil npm package installed no binary for this platform")
    return launcher


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Node:
    """Raw JSON-RPC to the node."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.Client(timeout=30)

    def call(self, method: str, *params: Any) -> Any:
        answer = self.client.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                                  "params": list(params)}).json()
        if answer.get("error"):
            raise AssertionError(f"{method}: {answer['error']}")
        return answer["result"]

    def send(self, sender: str, to: str | None = None, value: int = 0, data: str = "0x",
             gas: int | None = None, *, wait: bool = True) -> str:
        """Send a transaction from an unlocked account; returns its hash once mined (unless not ``wait``)."""
        tx: dict[str, Any] = {"from": sender, "value": hex(value), "data": data}
        if to is not None:
            tx["to"] = to
        if gas is not None:  # a given gas limit skips estimation, so a reverting call is still mined
            tx["gas"] = hex(gas)
        tx_hash: str = self.call("eth_sendTransaction", tx)
        if wait:
            self.receipt(tx_hash)
        return tx_hash

    def receipt(self, tx_hash: str) -> dict[str, Any]:
        """The receipt, waiting for the transaction to be mined (automine may lag the answer)."""
        deadline = time.monotonic() + 20
        while (receipt := self.call("eth_getTransactionReceipt", tx_hash)) is None:
            assert time.monotonic() < deadline, f"{tx_hash} was not mined"
            time.sleep(0.05)
        return receipt

    def balance(self, address: str, block: str = "latest") -> int:
        return int(self.call("eth_getBalance", address, block), 16)

    def token_balance(self, token: str, address: str) -> int:
        return int(self.call("eth_call", {"to": token, "data": "0x70a08231" + _word(address)}, "latest"), 16)


def _word(value: int | str) -> str:
    if isinstance(value, str):
        return value.lower().removeprefix("0x").rjust(64, "0")
    return format(value, "064x")


def _call_data(selector: str, *args: int | str) -> str:
    return "0x" + selector + "".join(_word(a) for a in args)


@pytest.fixture(scope="module")
def contracts() -> dict[str, Any]:
    node = shutil.which("node")
    _need(node is not None, "node is not installed")
    _need((NODE_MODULES / "solc").is_dir(),
          f"{NODE_MODULES}/solc is missing: run `npm ci --prefix tools/node`")
    out = subprocess.run([node, str(RESOURCES / "compile.js"), str(NODE_MODULES),
                          str(RESOURCES / "Token.sol"), str(RESOURCES / "Forwarder.sol")],
                         capture_output=True, text=True, timeout=90, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _start_anvil(binary: Path, log_path: Path) -> tuple[subprocess.Popen[bytes], Node]:
    """anvil on a free loopback port, answering; a port taken meanwhile makes it try another."""
    for _ in range(3):
        port = _free_port()
        with log_path.open("ab") as log:
            proc = subprocess.Popen([str(binary), "--host", "127.0.0.1", "--port", str(port),
                                     "--accounts", "6"], stdout=log, stderr=subprocess.STDOUT)
        node = Node(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                node.call("eth_chainId")
                return proc, node
            except httpx.TransportError:
                time.sleep(0.1)
        node.client.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    raise AssertionError(f"anvil did not start:\n{log_path.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    binary = _anvil_binary()
    proc, node = _start_anvil(binary, tmp_path_factory.mktemp("anvil") / "anvil.log")
    try:
        yield node
    finally:
        node.client.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _deploy(node: Node, sender: str, contract: dict[str, Any], *args: int | str, value: int = 0) -> str:
    tx = node.send(sender, None, value, contract["bytecode"] + "".join(_word(a) for a in args))
    receipt = node.receipt(tx)
    assert receipt["status"] == "0x1"
    return receipt["contractAddress"].lower()


@pytest.fixture(scope="module")
def scenario(anvil: Node, contracts: dict[str, Any]) -> dict[str, Any]:
    """Runs the module docstring's scenario; returns the named accounts, contracts and failed txs."""
    node = anvil
    alice, bob, carol, dave, erin, _ = (a.lower() for a in node.call("eth_accounts"))
    token_m, fwd_m = contracts["Token"]["methods"], contracts["Forwarder"]["methods"]

    node.send(alice, bob, 1 * ETH)
    node.call("evm_setAutomine", False)
    in_one_block = [node.send(bob, carol, ETH // 4, wait=False),
                    node.send(carol, dave, ETH // 10, wait=False)]
    node.call("evm_mine")
    node.call("evm_setAutomine", True)
    assert len({node.receipt(h)["blockNumber"] for h in in_one_block}) == 1

    token = _deploy(node, alice, contracts["Token"], 1_000_000 * TST)
    node.send(alice, token, data=_call_data(token_m["transfer(address,uint256)"], bob, 1000 * TST))
    node.send(bob, token, data=_call_data(token_m["transfer(address,uint256)"], carol, 250 * TST))
    node.send(alice, token, data=_call_data(token_m["approve(address,uint256)"], dave, 500 * TST))
    node.send(dave, token, data=_call_data(token_m["transferFrom(address,address,uint256)"], alice, erin,
                                           300 * TST))
    node.send(carol, token, data=_call_data(token_m["transfer(address,uint256)"], dave, 0))
    too_much = _call_data(token_m["transfer(address,uint256)"], bob, 10**30 * TST)
    failed = [node.send(carol, token, data=too_much, gas=100_000),
              node.send(bob, token, 1 * ETH, gas=100_000)]
    assert [node.receipt(h)["status"] for h in failed] == ["0x0", "0x0"]

    forwarder = _deploy(node, alice, contracts["Forwarder"], erin, value=ETH // 2)
    node.send(bob, forwarder, 2 * ETH)
    node.send(carol, forwarder, 3 * ETH // 10, _call_data(fwd_m["tryForward(address)"], token))
    spawn = node.send(dave, forwarder, 2 * ETH // 10, _call_data(fwd_m["spawn()"]))
    created = node.call("debug_traceTransaction", spawn, {"tracer": "callTracer"})["calls"]
    vault_address = created[0]["to"].lower()
    node.send(alice, forwarder, 0, _call_data(fwd_m["close(address)"], dave))
    assert node.balance(forwarder) == 0
    return {"alice": alice, "bob": bob, "carol": carol, "dave": dave, "erin": erin, "token": token,
            "forwarder": forwarder, "vault": vault_address, "failed": failed,
            "tip": int(node.call("eth_blockNumber"), 16)}


@pytest.fixture(scope="module")
def ingested(anvil: Node, scenario: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from typer.testing import CliRunner

    from fundtrail.cli.main import app

    home = tmp_path_factory.mktemp("home")
    result = CliRunner().invoke(app, ["ingest", "rpc", anvil.url, "--chain", "eth", "--from", "0",
                                      "--home", str(home), "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["blocks_written"] == scenario["tip"] + 1
    assert report["notes"] == []
    return home


def _addresses(store: ChainStore) -> set[str]:
    rows = store.query("SELECT from_address FROM transfers UNION SELECT to_address FROM transfers")
    return {a for (a,) in rows if a is not None}


def test_native_balances_equal_the_nodes(anvil: Node, scenario: dict[str, Any], ingested: Path) -> None:
    miner = anvil.call("eth_getBlockByNumber", "latest", False)["miner"].lower()
    with ChainStore.open_home(ingested, read_only=True) as store:
        addresses = _addresses(store) | {a.lower() for a in anvil.call("eth_accounts")}
        addresses.discard(miner)
        assert {scenario[n] for n in ("alice", "bob", "forwarder", "vault", "token")} <= addresses
        ours = {a: int(address_activity(store, "eth", a)["balance"]) for a in addresses}
    assert ours == {a: anvil.balance(a) for a in addresses}


def test_genesis_allocations_are_the_nodes_pre_state(anvil: Node, ingested: Path) -> None:
    accounts = sorted(a.lower() for a in anvil.call("eth_accounts"))
    with ChainStore.open_home(ingested, read_only=True) as store:
        rows = store.query("SELECT to_address, value FROM transfers WHERE kind = 'genesis' AND height = 0 "
                           "AND from_address IS NULL ORDER BY to_address")
    assert [(a, int(v)) for a, v in rows] == [(a, anvil.balance(a, "0x0")) for a in accounts]
    assert all(int(v) == 10_000 * ETH for _, v in rows)


def test_token_balances_equal_balance_of(anvil: Node, scenario: dict[str, Any], ingested: Path) -> None:
    token = scenario["token"]
    with ChainStore.open_home(ingested, read_only=True) as store:
        holders = {a for (a,) in store.query(
            "SELECT from_address FROM transfers WHERE asset = ? UNION SELECT to_address FROM transfers "
            "WHERE asset = ?", [token, token])}
        holders.discard("0x" + "00" * 20)  # the mint comes from the zero address
        ours = {}
        for holder in holders:
            assets = address_activity(store, "eth", holder)["assets"]
            ours[holder] = next(int(x["balance"]) for x in assets if x["asset"] == token)
    assert ours == {h: anvil.token_balance(token, h) for h in holders}
    s = scenario
    assert ours[s["erin"]] == 300 * TST and ours[s["carol"]] == 250 * TST and ours[s["bob"]] == 750 * TST


def test_internal_transfers_and_failures(scenario: dict[str, Any], ingested: Path) -> None:
    s = scenario
    with ChainStore.open_home(ingested, read_only=True) as store:
        internal = {(f, t, int(v)) for f, t, v in store.query(
            "SELECT from_address, to_address, value FROM transfers WHERE kind = 'internal'")}
        assert internal == {(s["forwarder"], s["erin"], 2 * ETH),
                            (s["forwarder"], s["vault"], 2 * ETH // 10),
                            (s["forwarder"], s["dave"], 8 * ETH // 10)}
        for tx in s["failed"]:
            [(status, fee)] = store.query("SELECT status, fee FROM txs WHERE txid = ?", [tx])
            assert status is False and fee > 0
            kinds = [k for (k,) in store.query("SELECT kind FROM transfers WHERE txid = ?", [tx])]
            assert kinds == ["fee"]
        # the creation with value pays the new contract
        assert store.query("SELECT count(*) FROM transfers WHERE kind = 'native' AND to_address = ? "
                           "AND value = ?", [s["forwarder"], ETH // 2]) == [(1,)]


INTERNAL = ("SELECT txid, transfer_index, from_address, to_address, value FROM transfers "
            "WHERE kind = 'internal'")


def test_parity_traces_agree_and_ingest_is_idempotent(anvil: Node, scenario: dict[str, Any],
                                                      ingested: Path) -> None:
    with ChainStore.open_home(ingested, read_only=True) as store:
        ours = sorted(store.query(INTERNAL))
    with ChainStore(":memory:") as other, EthereumRpcSource(anvil.url, "eth", traces="parity",
                                                            batch_blocks=3) as source:
        report = ingest_from_source(other, source, 0, scenario["tip"])
        assert report.blocks_written == scenario["tip"] + 1
        assert sorted(other.query(INTERNAL)) == ours
    with ChainStore.open_home(ingested) as store, EthereumRpcSource(anvil.url, "eth") as source:
        before = store.summary()
        again = ingest_from_source(store, source, 0, scenario["tip"])
        assert again.blocks_written == 0 and again.blocks_skipped == scenario["tip"] + 1
        assert store.summary() == before
