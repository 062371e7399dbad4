"""The JSON-RPC source against a real litecoind in regtest.

The node mines a chain with a few hundred wallet transactions (legacy, P2SH-segwit and bech32
addresses, ``sendmany``, multi-input spends), then activates MWEB (height 432 on regtest, which needs
a peg-in in that block) and pegs out again. ``fundtrail ingest rpc`` reads it; every block hash, txid,
output and input reference is compared with the node's own answers, every address balance with
``scantxoutset``, the UTXO-set totals with ``gettxoutsetinfo`` and what wallet addresses received with
``getreceivedbyaddress``. Then the node reorganises (``invalidateblock`` and a longer branch) and the
store must follow it.

What MWEB changes in regtest blocks: each block from 432 ends with an integrating "HogEx"
transaction that spends the previous HogEx output and the block's peg-ins, and pays peg-outs and a
new HogEx output (witness version 8); peg-ins are outputs of witness version 9; ``getblock`` adds an
``mweb`` section (confidential outputs and kernels) and ``ismweb`` flags. The node shows no address for
the version 8/9 programs.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from Crypto.Hash import RIPEMD160

from fundtrail.store import ChainStore

pytestmark = [pytest.mark.node, pytest.mark.timeout(300)]

USER, PASSWORD = "fundtrail", "regtest-secret"
MWEB_HEIGHT = 432  # MWEB activates here on regtest; the block must hold a peg-in
NODE_TYPES = {"pubkeyhash": "p2pkh", "scripthash": "p2sh", "witness_v0_keyhash": "p2wpkh",
              "witness_v0_scripthash": "p2wsh", "nulldata": "nulldata", "pubkey": "p2pk",
              "witness_mweb_pegin": "witness_unknown", "witness_mweb_hogaddr": "witness_unknown"}


def sat(amount: Decimal) -> int:
    return int(amount * 100_000_000)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    """A litecoind regtest process and a plain JSON-RPC client for it (independent of FundTrail)."""

    process: subprocess.Popen[bytes]
    port: int
    datadir: Path
    client: httpx.Client

    @property
    def url(self) -> str:
        return f"http://{USER}:{PASSWORD}@127.0.0.1:{self.port}"

    def batch(self, calls: list[tuple[str, list[Any]]], wallet: str | None = None) -> list[Any]:
        path = f"/wallet/{wallet}" if wallet else "/"
        body = [{"jsonrpc": "1.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
        response = self.client.post(f"http://127.0.0.1:{self.port}{path}", content=json.dumps(body))
        answers = {a["id"]: a for a in json.loads(response.content, parse_float=Decimal)}
        out = []
        for i, (method, params) in enumerate(calls):
            if answers[i]["error"]:
                raise RuntimeError(f"{method} {params}: {answers[i]['error']}")
            out.append(answers[i]["result"])
        return out

    def call(self, method: str, *params: Any) -> Any:
        return self.batch([(method, list(params))])[0]

    def wallet(self, method: str, *params: Any) -> Any:
        return self.batch([(method, list(params))], wallet="w")[0]

    def mine(self, blocks: int, address: str) -> list[str]:
        return list(self.call("generatetoaddress", blocks, address))

    def stop(self) -> None:
        try:
            self.call("stop")
        except (httpx.HTTPError, RuntimeError):
            pass
        self.client.close()  # the node's HTTP server waits for open connections before it exits
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_node(datadir: Path) -> Node:
    binary = shutil.which("litecoind")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("litecoind is not installed (CI installs it with apt-get install litecoind)")
        pytest.skip("litecoind is not installed")
    datadir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [binary, "-regtest", f"-datadir={datadir}", "-server", "-listen=0", "-dnsseed=0", "-discover=0",
            "-upnp=0", "-txindex", "-fallbackfee=0.0001", "-keypool=10", "-printtoconsole=0",
            f"-rpcport={port}", "-rpcbind=127.0.0.1", "-rpcallowip=127.0.0.1",
            f"-rpcuser={USER}", f"-rpcpassword={PASSWORD}"]
    log = (datadir / "stdout.log").open("wb")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    node = Node(process, port, datadir, httpx.Client(auth=(USER, PASSWORD), timeout=60))
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"litecoind exited with {process.returncode}: "
                               f"{(datadir / 'stdout.log').read_text()[-2000:]}")
        try:
            node.call("getblockchaininfo")
            return node
        except (httpx.HTTPError, RuntimeError, ValueError, KeyError):
            if time.monotonic() > deadline:
                node.stop()
                raise
            time.sleep(0.2)


def build_chain(node: Node) -> dict[str, Any]:
    """Mine the scenario; returns the wallet's addresses by kind."""
    rng = random.Random(20240601)
    node.call("createwallet", "w")
    kinds = {kind: [node.wallet("getnewaddress", "", kind) for _ in range(12)]
             for kind in ("legacy", "p2sh-segwit", "bech32")}
    targets = [a for addresses in kinds.values() for a in addresses]
    miner = node.wallet("getnewaddress", "", "bech32")
    node.mine(60, kinds["legacy"][0])
    node.mine(50, miner)
    for _round in range(8):
        for _ in range(3):
            amounts = {a: str(Decimal(rng.randint(5, 300)) / 100) for a in rng.sample(targets, 12)}
            node.wallet("sendmany", "", amounts)
        sends = [("sendtoaddress", [rng.choice(targets), str(Decimal(rng.randint(1, 150)) / 100)])
                 for _ in range(25)]
        node.batch(sends, wallet="w")
        spend_small_coins(node, rng, targets, count=8)
        node.mine(1, miner)
    tip = node.call("getblockcount")
    node.mine(MWEB_HEIGHT - 1 - tip, miner)
    # MWEB: a peg-in must be in the activation block; then a peg-out (only MWEB coins left unlocked)
    mweb = node.wallet("getnewaddress", "", "mweb")
    node.wallet("sendtoaddress", mweb, "25")
    node.mine(1, miner)
    canonical = [{"txid": u["txid"], "vout": u["vout"]} for u in node.wallet("listunspent") if "vout" in u]
    node.wallet("lockunspent", False, canonical)
    node.wallet("sendtoaddress", kinds["bech32"][0], "7.5")
    node.wallet("lockunspent", True)
    node.mine(1, miner)
    node.wallet("sendtoaddress", kinds["p2sh-segwit"][1], "1.25")
    node.mine(2, miner)
    return {"kinds": kinds, "miner": miner, "targets": targets}


def spend_small_coins(node: Node, rng: random.Random, targets: list[str], count: int) -> None:
    """Transactions that spend 2-4 small confirmed coins at once (multi-input, mostly segwit)."""
    coins = [u for u in node.wallet("listunspent", 1, 9999999, [], True, {"maximumAmount": 3})
             if u.get("vout") is not None]
    rng.shuffle(coins)
    for _ in range(count):
        take = [coins.pop() for _ in range(min(len(coins), rng.randint(2, 4)))]
        if len(take) < 2:
            return
        total = sum(Decimal(c["amount"]) for c in take)
        raw = node.wallet("createrawtransaction", [{"txid": c["txid"], "vout": c["vout"]} for c in take],
                          {rng.choice(targets): str(total - Decimal("0.001"))})
        signed = node.wallet("signrawtransactionwithwallet", raw)
        assert signed["complete"]
        node.call("sendrawtransaction", signed["hex"])


@pytest.fixture(scope="module")
def regtest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, dict[str, Any]]]:
    node = start_node(tmp_path_factory.mktemp("litecoind") / "data")
    try:
        yield node, build_chain(node)
    finally:
        node.stop()


@pytest.fixture(scope="module")
def ltc_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ltc-home")


def ingest(cli: Any, node: Node, home: Path) -> dict[str, Any]:
    result = cli("ingest", "rpc", node.url, "--chain", "ltc-regtest", "--from", "0", "--home", str(home),
                 "--format", "json")
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def node_blocks(node: Node) -> list[dict[str, Any]]:
    tip = node.call("getblockcount")
    hashes = node.batch([("getblockhash", [h]) for h in range(tip + 1)])
    return node.batch([("getblock", [h, 2]) for h in hashes])


def p2pkh_of_p2pk(node: Node, pubkey_hex: str) -> str:
    """The node's rendering of the P2PKH script of a public key (hash160 computed here)."""
    key_hash = RIPEMD160.new(hashlib.sha256(bytes.fromhex(pubkey_hex)).digest()).hexdigest()
    decoded = node.call("decodescript", f"76a914{key_hash}88ac")
    return str(decoded.get("address") or decoded["addresses"][0])


def assert_store_equals_node(store: ChainStore, node: Node) -> None:
    """Block hashes, txids (in order), outputs and input references equal the node's."""
    blocks = node_blocks(node)
    assert store.query("SELECT height, hash, prev_hash, tx_count FROM blocks ORDER BY height") == [
        (b["height"], b["hash"], b.get("previousblockhash"), len(b["tx"])) for b in blocks]
    assert store.query("SELECT height, tx_index, txid FROM txs ORDER BY height, tx_index") == [
        (b["height"], i, t["txid"]) for b in blocks for i, t in enumerate(b["tx"])]

    expected_outputs = {}
    expected_inputs = {}
    pubkeys = {}
    for b in blocks:
        for t in b["tx"]:
            for o in t["vout"]:
                spk = o["scriptPubKey"]
                addresses = spk.get("addresses") or []
                expected_outputs[(t["txid"], o["n"])] = (sat(o["value"]), NODE_TYPES[spk["type"]],
                                                          addresses[0] if len(addresses) == 1 else None)
                if spk["type"] == "pubkey":
                    pubkeys[(t["txid"], o["n"])] = spk["asm"].split()[0]
            for n, i in enumerate(t["vin"]):
                if "coinbase" not in i:
                    expected_inputs[(t["txid"], n)] = (i["txid"], i["vout"])
    stored_outputs = {(txid, n): (int(value), kind, address) for txid, n, value, kind, address in
                      store.query("SELECT txid, n, value, script_type, address FROM outputs")}
    for key, (value, kind, _) in expected_outputs.items():
        if kind == "witness_unknown":
            # the node shows no address for MWEB's witness programs (peg-ins, HogEx outputs)
            expected_outputs[key] = (value, kind, stored_outputs.get(key, (0, "", None))[2])
        elif kind == "p2pk":
            # the node shows none for P2PK either; FundTrail gives the P2PKH address of the key
            expected_outputs[key] = (value, kind, p2pkh_of_p2pk(node, pubkeys[key]))
    assert stored_outputs == expected_outputs
    assert {(txid, n): (prev, prev_n) for txid, n, prev, prev_n in
            store.query("SELECT txid, n, prev_txid, prev_n FROM inputs")} == expected_inputs
    assert store.query("SELECT count(*) FROM inputs WHERE value IS NULL") == [(0,)]


def assert_balances_equal_node(store: ChainStore, node: Node, wallet_addresses: list[str]) -> None:
    """Per-address unspent balances (scantxoutset), UTXO-set totals, and what wallet addresses received."""
    # the genesis output (P2PK) is not in the UTXO set: consensus never lets it be spent
    unspent = dict(store.query(
        """SELECT address, sum(value) FROM outputs o
           WHERE address IS NOT NULL AND script_type <> 'witness_unknown' AND height > 0
             AND NOT EXISTS (SELECT 1 FROM inputs i WHERE i.prev_txid = o.txid AND i.prev_n = o.n)
           GROUP BY address"""))
    addresses = [a for (a,) in store.query("SELECT DISTINCT address FROM outputs WHERE address IS NOT NULL "
                                           "AND script_type <> 'witness_unknown' AND height > 0 ORDER BY 1")]
    assert len(addresses) > 30
    scans = node.batch([("scantxoutset", ["start", [f"addr({a})"]]) for a in addresses])
    node_balances = {a: sat(s["total_amount"]) for a, s in zip(addresses, scans, strict=True)}
    assert {a: int(unspent.get(a, 0)) for a in addresses} == node_balances

    info = node.call("gettxoutsetinfo")
    (count, total), = store.query(
        """SELECT count(*), sum(value) FROM outputs o
           WHERE script_type <> 'nulldata' AND height > 0
             AND NOT EXISTS (SELECT 1 FROM inputs i WHERE i.prev_txid = o.txid AND i.prev_n = o.n)""")
    assert (count, int(total)) == (info["txouts"], sat(info["total_amount"]))

    received = dict(store.query(
        """SELECT o.address, sum(o.value) FROM outputs o JOIN txs t ON t.txid = o.txid AND t.height = o.height
           WHERE NOT t.coinbase GROUP BY o.address"""))
    answers = node.batch([("getreceivedbyaddress", [a, 1]) for a in wallet_addresses], wallet="w")
    assert {a: int(received.get(a, 0)) for a in wallet_addresses} == {
        a: sat(r) for a, r in zip(wallet_addresses, answers, strict=True)}


def digest(home: Path) -> str:
    with ChainStore.open_home(home, read_only=True) as store:
        rows = [store.query(f"SELECT * FROM {t} ORDER BY ALL")
                for t in ("blocks", "txs", "outputs", "inputs", "addresses")]
    return hashlib.sha256(repr(rows).encode()).hexdigest()


# --------------------------------------------------------------------------------------------- tests


def test_ingest_matches_the_node(regtest: tuple[Node, dict[str, Any]], ltc_home: Path, cli: Any) -> None:
    node, scenario = regtest
    report = ingest(cli, node, ltc_home)
    tip = node.call("getblockcount")
    assert report["blocks_written"] == tip + 1 and report["reorgs"] == 0
    assert tip >= MWEB_HEIGHT + 3
    assert [n for n in report["notes"] if "MWEB" in n]
    with ChainStore.open_home(ltc_home, read_only=True) as store:
        assert store.query("SELECT count(*) FROM txs WHERE NOT coinbase")[0][0] >= 250
        assert store.query("SELECT count(*) FROM txs WHERE segwit AND NOT coinbase")[0][0] >= 50
        assert store.query("SELECT count(*) FROM (SELECT txid FROM inputs GROUP BY txid HAVING count(*) > 1)"
                           )[0][0] >= 20
        assert {k for (k,) in store.query("SELECT DISTINCT script_type FROM outputs")} >= {
            "p2pkh", "p2sh", "p2wpkh", "nulldata", "witness_unknown"}
        assert_store_equals_node(store, node)


def test_balances_match_the_node(regtest: tuple[Node, dict[str, Any]], ltc_home: Path, cli: Any) -> None:
    node, scenario = regtest
    ingest(cli, node, ltc_home)
    with ChainStore.open_home(ltc_home, read_only=True) as store:
        assert_balances_equal_node(store, node, scenario["targets"])


def test_ingesting_again_changes_nothing(regtest: tuple[Node, dict[str, Any]], ltc_home: Path,
                                        cli: Any) -> None:
    node, _ = regtest
    ingest(cli, node, ltc_home)
    before = digest(ltc_home)
    report = ingest(cli, node, ltc_home)
    assert report["blocks_written"] == 0 and report["blocks_skipped"] == node.call("getblockcount") + 1
    assert digest(ltc_home) == before


def test_the_store_follows_a_reorg(regtest: tuple[Node, dict[str, Any]], ltc_home: Path, cli: Any) -> None:
    node, scenario = regtest
    targets = scenario["targets"]
    node.wallet("sendtoaddress", targets[3], "2.5")
    node.wallet("sendtoaddress", targets[20], "1.5")
    node.mine(1, scenario["miner"])
    ingest(cli, node, ltc_home)
    tip = node.call("getblockcount")
    stale = node.batch([("getblockhash", [h]) for h in (tip - 1, tip)])

    node.call("invalidateblock", stale[0])
    other = node.wallet("getnewaddress", "", "bech32")
    node.wallet("sendtoaddress", other, "3.25")
    node.mine(3, other)
    assert node.call("getblockcount") == tip + 1

    report = ingest(cli, node, ltc_home)
    assert report["reorgs"] >= 1
    with ChainStore.open_home(ltc_home, read_only=True) as store:
        assert store.query("SELECT count(*) FROM blocks WHERE hash IN (?, ?)", stale) == [(0,)]
        assert_store_equals_node(store, node)
        assert_balances_equal_node(store, node, [*targets, other])
