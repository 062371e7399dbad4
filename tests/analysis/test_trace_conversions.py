"""A trace across conversions: from a BTC address through a THORChain-style memo swap to ETH, a
Uniswap-v2 swap to another token and a cBridge bridge to BSC, to an exchange there, in one trace.

The world (haircut shares in brackets)::

    btc  tx0  (coinbase) -> SRC 60 000, CLEAN 40 000
    btc  tx1  SRC + CLEAN -> VAULT 100 000, OP_RETURN "=:ETH.USDT-<TOKEN_A>:DAVE"     (60 000 tainted)
    eth  OUT  THOR -> DAVE 1 000 A, memo "OUT:<tx1>"                                 (600)
    eth  swap DAVE -> PAIR 1 000 A, PAIR -> DAVE 900 B (Uniswap v2 Swap event)       (600 in, 540 out)
    eth  send DAVE -> BRIDGE_ETH 900 B (cBridge Send)                                (540)
    bsc  relay BRIDGE_BSC -> RECEIVER 890 C (cBridge Relay, srcTransferId = Send's)  (534)
    bsc  RECEIVER -> EXCH 890 C (EXCH: "Harbour Exchange", exchange)                 (534)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from test_conversions import T0, World, addr, data, topic  # the builders of the conversion tests

from fundtrail.analysis.conversions import detect_conversions
from fundtrail.analysis.tracing import TraceParams, TraceResult, trace_funds
from fundtrail.chains.evm.events import EventName
from fundtrail.domain.records import BlockRecord, PayloadKind, UtxoBatch
from fundtrail.errors import InputError
from fundtrail.intel.sanctions import DEFAULT_LIST_NAME, import_list
from fundtrail.store import ChainStore

SRC = "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"
CLEAN = "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"
VAULT = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
DAVE, THOR, ROUTER, PAIR = addr(0xD1), addr(0xD2), addr(0xD3), addr(0xD4)
TOKEN_A, TOKEN_B, TOKEN_C = addr(0xA1), addr(0xA2), addr(0xA3)
BRIDGE_ETH, BRIDGE_BSC, RECEIVER, EXCH = addr(0xB1), addr(0xB2), addr(0xB3), addr(0xB4)
TX0, TX1 = "a0" * 32, "a1" * 32


def build(store: ChainStore) -> None:
    """Write the three chains of the module docstring into ``store``, detect conversions, tag EXCH."""
    btc = UtxoBatch(chain="btc")
    btc.blocks.append(BlockRecord("btc", 1, "b1" * 32, None, 5_000, 2))
    btc.add_tx(TX0, 1, 5_000, 0, coinbase=True)
    btc.add_output(TX0, 0, SRC, 60_000, "p2pkh")
    btc.add_output(TX0, 1, CLEAN, 40_000, "p2sh")
    btc.add_tx(TX1, 1, 5_000, 1, fee=0)
    btc.add_input(TX1, 0, TX0, 0, address=SRC, value=60_000)
    btc.add_input(TX1, 1, TX0, 1, address=CLEAN, value=40_000)
    btc.add_output(TX1, 0, VAULT, 100_000, "p2wpkh")
    btc.add_output(TX1, 1, None, 0, "nulldata")
    btc.payloads.add(TX1, 1, 1, PayloadKind.OP_RETURN, f"=:ETH.USDT-{TOKEN_A}:{DAVE}".encode().hex())

    eth, bsc = World("eth"), World("bsc")
    h = eth.tx(THOR, DAVE, time=6_000, memo="OUT:" + TX1.upper())
    eth.token(h, 1, TOKEN_A, THOR, DAVE, 1_000)
    h = eth.tx(DAVE, ROUTER, time=6_100)
    eth.token(h, 1, TOKEN_A, DAVE, PAIR, 1_000)
    eth.token(h, 2, TOKEN_B, PAIR, DAVE, 900)
    eth.log(h, 3, PAIR, [T0[EventName.UNISWAP_V2_SWAP], topic(ROUTER), topic(DAVE)], data(1_000, 0, 0, 900))
    transfer_id = "77" * 32
    h = eth.tx(DAVE, BRIDGE_ETH, time=6_200)
    eth.token(h, 1, TOKEN_B, DAVE, BRIDGE_ETH, 900)
    eth.log(h, 2, BRIDGE_ETH, [T0[EventName.CBRIDGE_SEND]],
            data(transfer_id, DAVE, RECEIVER, TOKEN_B, 900, 56, 1, 3000))
    r = bsc.tx(addr(0xEE), BRIDGE_BSC, time=6_300)
    bsc.token(r, 1, TOKEN_C, BRIDGE_BSC, RECEIVER, 890)
    bsc.log(r, 2, BRIDGE_BSC, [T0[EventName.CBRIDGE_RELAY]],
            data("88" * 32, DAVE, RECEIVER, TOKEN_C, 890, 1, transfer_id))
    h = bsc.tx(RECEIVER, EXCH, time=6_400)
    bsc.token(h, 1, TOKEN_C, RECEIVER, EXCH, 890)
    for batch in (btc, eth.batch, bsc.batch):
        store.write_batch(batch)
    store.con.execute("INSERT INTO tags (chain, address, label, category, jurisdiction, confidence_level, "
                      "source) VALUES ('bsc', ?, 'Harbour Exchange', 'exchange', 'MT', 80, 'test')", [EXCH])
    detect_conversions(store)


@pytest.fixture()
def world(store: ChainStore) -> ChainStore:
    build(store)
    return store


def trace(store: ChainStore, **options: Any) -> TraceResult:
    return trace_funds(store, "btc", [SRC], TraceParams(**options))


def check_crossing(doc: dict[str, Any]) -> None:
    """The default trace reaches the exchange on BSC with the haircut shares of every conversion."""
    convs = [(c["kind"], c["rule"], c["in"]["chain"], c["out"]["chain"], c["out"]["asset"], c["tainted_in"],
              c["tainted_out"], c["followed"]) for c in doc["conversions"]]
    assert convs == [
        ("bridge", "thorchain-memo", "btc", "eth", TOKEN_A, "60000", "600", "followed"),
        ("swap", "uniswap-v2-swap", "eth", "eth", TOKEN_B, "600", "540", "followed"),
        ("bridge", "cbridge-transfer-id", "eth", "bsc", TOKEN_C, "540", "534", "followed"),
    ]
    ends = [(e["chain"], e["address"], e["asset"], e["reason"], e["tainted_value"], e["hops"], e["entity"])
            for e in doc["endpoints"]]
    assert ends == [("bsc", EXCH, TOKEN_C, "service", "534", 4, "Harbour Exchange")]
    flows = [(f["chain"], f["from"], f["to"], f["asset"], f["tainted_value"], f["hop"], f["step"])
             for f in doc["flows"]]
    assert flows == [
        ("btc", SRC, VAULT, "native", "60000", 1, 1),
        ("eth", DAVE, PAIR, TOKEN_A, "600", 2, 3),
        ("eth", DAVE, BRIDGE_ETH, TOKEN_B, "540", 3, 5),
        ("bsc", RECEIVER, EXCH, TOKEN_C, "534", 4, 7),
    ]
    assert all(f["hop"] <= f["step"] for f in doc["flows"])
    assert doc["totals"]["assets"]["bsc:" + TOKEN_C]["by_reason"] == {"service": "534"}
    assert doc["totals"]["assets"]["native"]["seeded"] == "60000"


def test_one_trace_from_btc_to_an_exchange_on_bsc(world: ChainStore) -> None:
    result = trace(world)
    doc = result.to_dict()
    check_crossing(doc)
    assert doc["parameters"]["max_hops"] == 6 and "follow_conversions" not in doc["parameters"]
    assert json.dumps(doc, sort_keys=True) == json.dumps(trace(world).to_dict(), sort_keys=True)


def test_no_conversions_stops_at_the_first_one(world: ChainStore) -> None:
    doc = trace(world, follow_conversions=False).to_dict()
    assert "conversions" not in doc
    assert [(e["address"], e["reason"], e["tainted_value"]) for e in doc["endpoints"]] == [
        (VAULT, "unspent", "60000")]
    assert all("chain" not in f for f in doc["flows"]) and all("chain" not in e for e in doc["endpoints"])
    assert doc["parameters"]["follow_conversions"] is False
    # a store without conversions answers the same document as before, options aside
    default = trace(world, min_confidence=0.995).to_dict()
    assert "conversions" not in default
    assert {**default, "parameters": None} == {**doc, "parameters": None}


def test_a_conversion_below_min_confidence_is_not_followed(world: ChainStore) -> None:
    # the Uniswap swap is 0.99, the memo and cBridge 0.99 too: lower the swap to stop there
    world.con.execute("UPDATE conversions SET confidence = 0.4 WHERE rule = 'uniswap-v2-swap'")
    doc = trace(world).to_dict()
    assert [c["rule"] for c in doc["conversions"]] == ["thorchain-memo"]
    assert [(e["chain"], e["address"], e["asset"], e["reason"], e["tainted_value"]) for e in doc["endpoints"]
            ] == [("eth", PAIR, TOKEN_A, "unspent", "600")]
    doc = trace(world, min_confidence=0.3).to_dict()
    assert [c["rule"] for c in doc["conversions"]][-1] == "cbridge-transfer-id"
    with pytest.raises(InputError, match="min_confidence"):
        TraceParams(min_confidence=1.5)


def test_the_tainted_share_crosses_exactly_and_budgets_hold(world: ChainStore) -> None:
    doc = trace(world, policy="poison").to_dict()
    assert [c["tainted_out"] for c in doc["conversions"]] == ["1000", "900", "890"]
    assert doc["endpoints"][0]["tainted_value"] == "890"
    # the payment out of the swap would be the 4th step: the trace stops there, at DAVE's token B
    doc = trace(world, max_steps=4).to_dict()
    assert [c["followed"] for c in doc["conversions"]] == ["followed", "max_steps"]
    assert [(e["chain"], e["address"], e["asset"], e["reason"], e["tainted_value"], e["hops"])
            for e in doc["endpoints"]] == [("eth", DAVE, TOKEN_B, "max_steps", "540", 2)]
    assert all(f["step"] <= 4 and f["hop"] <= f["step"] for f in doc["flows"])
    # one owner hop: the vault; DAVE receives the conversion's out and may hand over nothing more
    doc = trace(world, max_hops=1).to_dict()
    assert [(e["chain"], e["address"], e["asset"], e["reason"], e["tainted_value"], e["hops"])
            for e in doc["endpoints"]] == [("eth", DAVE, TOKEN_A, "max_hops", "600", 1)]
    assert all(f["hop"] <= 1 for f in doc["flows"])


@pytest.fixture()
def home_world(home: Path) -> Iterator[Path]:
    with ChainStore.open_home(home) as store:
        build(store)
    yield home


def test_one_cli_call(home_world: Path, cli: Callable[..., Any]) -> None:
    result = cli("trace", SRC, "--chain", "btc", "--home", str(home_world), "--format", "json")
    assert result.exit_code == 0, result.output
    check_crossing(json.loads(result.output))
    result = cli("trace", SRC, "--chain", "btc", "--home", str(home_world), "--format", "json",
                 "--no-conversions")
    assert [e["address"] for e in json.loads(result.output)["endpoints"]] == [VAULT]
    result = cli("trace", SRC, "--chain", "btc", "--home", str(home_world), "--format", "json",
                 "--min-confidence", "0.995")
    assert "conversions" not in json.loads(result.output)
    result = cli("trace", SRC, "--chain", "btc", "--home", str(home_world))
    assert result.exit_code == 0 and "Harbour" in result.output and "conversion" in result.output


def test_sanctioned_addresses_along_the_way_are_flagged(world: ChainStore, tmp_path: Path) -> None:
    listed = tmp_path / "sanctioned_addresses_USDT.txt"
    listed.write_text(RECEIVER + "\n")
    import_list(world, listed, listed_on=date(1970, 1, 1))  # the world is of 1970
    doc = trace(world).to_dict()
    flagged = [(f["chain"], f["from"], f["sanctions_lists"]) for f in doc["flows"] if f.get("sanctioned")]
    assert flagged == [("bsc", RECEIVER, [DEFAULT_LIST_NAME])]
    assert not any(e.get("sanctioned") for e in doc["endpoints"])
