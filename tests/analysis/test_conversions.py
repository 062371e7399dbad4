"""Conversions: swaps on real mainnet logs; swaps, bridges, memos and pools on small synthetic chains.

The synthetic logs are ABI-encoded here the way Solidity encodes events (indexed values in topics,
the rest as 32-byte words in data), with the topic hashes computed from the signatures.
"""

from __future__ import annotations

import json
import logging
import lzma
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from fundtrail.analysis.conversions import (
    ConversionParams,
    DetectionReport,
    Move,
    TxActivity,
    detect_conversions,
    list_conversions,
    swaps_in_transaction,
)
from fundtrail.chains.evm.decode import TransferLogKind, classify_transfer_log, decode_erc20_transfer
from fundtrail.chains.evm.events import TOPIC_OF, EventName, decode_event, memo_in_call_data
from fundtrail.domain.conversions import ConversionKind, MemoAction, parse_memo
from fundtrail.domain.records import AccountBatch, BlockRecord, PayloadKind, UtxoBatch
from fundtrail.domain.scripts import op_return_data
from fundtrail.errors import InputError
from fundtrail.store import ChainStore

# --------------------------------------------------------------------------- ABI encoding


def word(value: int | str) -> str:
    """One 32-byte ABI word: an int (two's complement when negative), an address or a bytes32."""
    if isinstance(value, int):
        return f"{value % 2**256:064x}"
    return value.lower().removeprefix("0x").rjust(64, "0")


def topic(value: int | str) -> str:
    return "0x" + word(value)


def data(*values: int | str) -> str:
    return "0x" + "".join(word(v) for v in values)


def addr(n: int) -> str:
    return f"0x{n:040x}"


def txid(n: int) -> str:
    return f"0x{n:064x}"


T0 = TOPIC_OF


# --------------------------------------------------------------------------- real mainnet logs

LOGS = ("graphsense_eth_fixtures", "tokens_block_15000000", "logs.json.xz")
SWAP_EVENTS = {EventName.UNISWAP_V2_SWAP, EventName.UNISWAP_V3_SWAP, EventName.WETH_DEPOSIT,
               EventName.WETH_WITHDRAWAL}


def test_every_swap_event_of_block_15000000_is_accounted_for(shared_data: Path) -> None:
    rows = [json.loads(line) for line in lzma.open(shared_data.joinpath(*LOGS), "rt")]
    by_tx: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_tx[r["txHash"]].append(r)
    report = DetectionReport()
    events: Counter[EventName] = Counter()
    malformed = 0
    found = []
    for tx_hash, logs in by_tx.items():
        act = TxActivity("eth", tx_hash)
        for r in sorted(logs, key=lambda r: r["logIndex"]):
            if classify_transfer_log(r["topics"], r["data"]) is TransferLogKind.ERC20:
                t = decode_erc20_transfer(r["address"], r["topics"], r["data"])
                assert t is not None
                act.moves.append(Move("token", t.token, t.from_, t.to, t.value, r["logIndex"]))
                continue
            try:
                ev = decode_event(r["address"], r["topics"], r["data"])
            except InputError:
                malformed += 1  # e.g. a Deposit(address,uint256) with nothing indexed: not WETH's event
                continue
            if ev is not None:
                events[ev.name] += 1
                act.events.append((r["logIndex"], ev))
        for c in swaps_in_transaction(act, ConversionParams(), report):
            found.append(c)
            if c.rule.startswith("uniswap"):  # the tokens are the ones the pair received and sent
                assert any(m.to == c.in_.address and m.asset == c.in_.asset for m in act.moves)
                assert any(m.from_ == c.in_.address and m.asset == c.out.asset for m in act.moves)
    assert events[EventName.UNISWAP_V2_SWAP] == 74
    assert events[EventName.UNISWAP_V3_SWAP] == 49
    assert sum(events.values()) == len(found) + sum(report.skipped.values())
    rules = Counter(c.rule for c in found)
    assert rules["uniswap-v3-swap"] == 49
    assert rules["uniswap-v2-swap"] >= 60
    assert set(report.skipped) <= {"lookalike-swap", "malformed-swap", "lookalike-weth"}
    assert malformed == 2


# --------------------------------------------------------------------------- decoding and bad input


def test_topics_come_from_the_signatures() -> None:
    assert T0[EventName.UNISWAP_V2_SWAP].startswith("0xd78ad95f")
    assert T0[EventName.UNISWAP_V3_SWAP].startswith("0xc42079f9")
    assert T0[EventName.WETH_DEPOSIT].startswith("0xe1fffcc4")
    assert T0[EventName.POOL_DEPOSIT].startswith("0xa945e51e")


@pytest.mark.parametrize(("topics", "payload", "problem"), [
    ([T0[EventName.UNISWAP_V2_SWAP], topic(addr(1))], data(1, 0, 0, 2), "topics"),
    ([T0[EventName.UNISWAP_V2_SWAP], topic(addr(1)), topic(addr(2))], data(1, 0, 0), "bytes"),
    ([T0[EventName.CBRIDGE_SEND]], data(1, addr(1), addr(2), addr(3), 5, 56, 1), "bytes"),
    ([T0[EventName.POOL_WITHDRAWAL], topic(addr(1))], data("f" * 64, 1, 2), "address"),
])
def test_malformed_logs_raise_input_error(topics: list[str], payload: str, problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        decode_event(addr(9), topics, payload)


def test_memos() -> None:
    memo = parse_memo("=:ETH.ETH:0x" + "ab" * 20)
    assert (memo.action, memo.chain, memo.asset, memo.address) == (
        MemoAction.SWAP, "eth", "native", "0x" + "ab" * 20)
    assert parse_memo("OUT:" + "AB" * 32).inbound == "ab" * 32
    with pytest.raises(InputError, match="unknown chain"):
        parse_memo("=:XYZ.XYZ:0x" + "ab" * 20)
    with pytest.raises(InputError, match="not a valid"):
        parse_memo("=:ETH.ETH:0x1234")
    call = ("0x1fece7b4" + word(addr(1)) + word(0x80) + word(len("=:BTC.BTC:x"))
            + "3d3a4254432e4254433a78".ljust(64, "0"))
    assert memo_in_call_data(call) == "=:BTC.BTC:x"
    assert op_return_data(bytes.fromhex("6a0b") + b"=:BTC.BTC:x") == b"=:BTC.BTC:x"
    assert op_return_data(bytes.fromhex("76a914") + b"\x00" * 20) is None


# --------------------------------------------------------------------------- a synthetic world


class World:
    """Account-chain blocks built log by log."""

    def __init__(self, chain: str) -> None:
        self.batch = AccountBatch(chain=chain)
        self.height = 0
        self.n = 0

    def tx(self, sender: str, to: str, value: int = 0, *, time: int | None = None, gas_price: int = 0,
           memo: str | None = None) -> str:
        self.height += 1
        self.n += 1
        t = time if time is not None else 1_000 + 10 * self.height
        h = txid(self.n + (1000 if self.batch.chain != "eth" else 0))
        self.batch.blocks.append(BlockRecord(self.batch.chain, self.height, txid(10**6 + self.height
                                             + (10**5 if self.batch.chain != "eth" else 0)), None, t, 1))
        self.batch.add_tx(h, self.height, t, 0, fee=0, status=True)
        self.batch.add_transfer(h, self.height, t, 0, "native", "native", sender, to, value)
        if gas_price:
            self.batch.payloads.add(h, self.height, 0, PayloadKind.GAS_PRICE, str(gas_price))
        if memo:
            self.batch.payloads.add(h, self.height, 0, PayloadKind.MEMO, memo)
        return h

    def token(self, h: str, index: int, token: str, frm: str, to: str, value: int) -> None:
        self.batch.add_transfer(h, self.height, self.batch.tx_time[-1], index, "token", token, frm, to, value)

    def internal(self, h: str, index: int, frm: str, to: str, value: int) -> None:
        self.batch.add_transfer(h, self.height, self.batch.tx_time[-1], index, "internal", "native", frm, to,
                                value)

    def log(self, h: str, index: int, address: str, topics: list[str], payload: str) -> None:
        self.batch.logs.add(h, self.height, index, address, topics, payload)


TRADER, PAIR, ROUTER, TOKEN_A, TOKEN_B = addr(0xA1), addr(0xA2), addr(0xA3), addr(0xA4), addr(0xA5)
BRIDGE_ETH, BRIDGE_BSC, RECEIVER = addr(0xB1), addr(0xB2), addr(0xB3)
POOL, FAKE_POOL, ALICE = addr(0xC1), addr(0xC2), addr(0xC3)
BOB, CAROL, DAVE = addr(0xC4), addr(0xC5), addr(0xC6)
RELAYER = addr(0xC7)
DENOM = 10 * 10**18


@pytest.fixture
def world_store() -> ChainStore:
    eth, bsc = World("eth"), World("bsc")
    # a Uniswap-v2 swap: the trader pays 100 A into the pair, which pays 90 B to the trader
    h = eth.tx(TRADER, ROUTER)
    eth.token(h, 1, TOKEN_A, TRADER, PAIR, 100)
    eth.token(h, 2, TOKEN_B, PAIR, TRADER, 90)
    eth.log(h, 3, PAIR, [T0[EventName.UNISWAP_V2_SWAP], topic(ROUTER), topic(TRADER)], data(100, 0, 0, 90))
    # a look-alike Swap: an untagged contract emits the event but no token moves
    h = eth.tx(TRADER, addr(0xDD))
    eth.log(h, 0, addr(0xDD), [T0[EventName.UNISWAP_V2_SWAP], topic(ROUTER), topic(TRADER)], data(5, 0, 0, 4))
    # a malformed Swap (short data)
    h = eth.tx(TRADER, PAIR)
    eth.log(h, 0, PAIR, [T0[EventName.UNISWAP_V2_SWAP], topic(ROUTER), topic(TRADER)], data(1, 0, 0))
    # an aggregator trade without swap events: native in, token B back
    h = eth.tx(TRADER, ROUTER, 7)
    eth.token(h, 1, TOKEN_B, ROUTER, TRADER, 700)
    # cBridge: Send on eth, Relay on bsc; and a Relay whose Send is not in the store
    transfer_id = "11" * 32
    h = eth.tx(TRADER, BRIDGE_ETH)
    eth.token(h, 1, TOKEN_A, TRADER, BRIDGE_ETH, 500)
    eth.log(h, 2, BRIDGE_ETH, [T0[EventName.CBRIDGE_SEND]],
            data(transfer_id, TRADER, RECEIVER, TOKEN_A, 500, 56, 1, 3000))
    r = bsc.tx(addr(0xEE), BRIDGE_BSC)
    bsc.token(r, 1, TOKEN_B, BRIDGE_BSC, RECEIVER, 495)
    bsc.log(r, 2, BRIDGE_BSC, [T0[EventName.CBRIDGE_RELAY]],
            data("22" * 32, TRADER, RECEIVER, TOKEN_B, 495, 1, transfer_id))
    orphan = bsc.tx(addr(0xEE), BRIDGE_BSC)
    bsc.log(orphan, 0, BRIDGE_BSC, [T0[EventName.CBRIDGE_RELAY]],
            data("33" * 32, TRADER, RECEIVER, TOKEN_B, 1, 1, "44" * 32))
    # a 10-ETH pool: Alice and Bob deposit; Alice withdraws to herself (same address), a relayer pays Carol
    for who, price in ((ALICE, 23_400_000_001), (BOB, 20 * 10**9), (DAVE, 20 * 10**9)):
        h = eth.tx(who, POOL, DENOM, gas_price=price)
        eth.log(h, 1, POOL, [T0[EventName.POOL_DEPOSIT], topic("ab" * 32)], data(0, 1))
    h = eth.tx(ALICE, POOL, gas_price=30 * 10**9)
    eth.internal(h, 1, POOL, ALICE, DENOM)
    eth.log(h, 2, POOL, [T0[EventName.POOL_WITHDRAWAL], topic(addr(0))], data(ALICE, "cd" * 32, 0))
    h = eth.tx(RELAYER, POOL, gas_price=50 * 10**9, time=10**6)
    eth.internal(h, 1, POOL, CAROL, DENOM - 10**17)
    eth.log(h, 2, POOL, [T0[EventName.POOL_WITHDRAWAL], topic(RELAYER)], data(CAROL, "ce" * 32, 10**17))
    # a look-alike pool: deposits of different values
    for v in (1, 2):
        h = eth.tx(ALICE, FAKE_POOL, v)
        eth.log(h, 1, FAKE_POOL, [T0[EventName.POOL_DEPOSIT], topic("ef" * 32)], data(0, 1))
    # THORChain-style: a BTC inbound with an OP_RETURN memo, answered on eth by OUT:<txid>
    btc = UtxoBatch(chain="btc")
    btc_txid = "aa" * 32
    btc.blocks.append(BlockRecord("btc", 1, "bb" * 32, None, 5_000, 1))
    btc.add_tx(btc_txid, 1, 5_000, 0)
    btc.add_output(btc_txid, 0, "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", 100_000, "p2wpkh")
    btc.add_output(btc_txid, 1, None, 0, "nulldata")
    btc.payloads.add(btc_txid, 1, 1, PayloadKind.OP_RETURN, ("=:ETH.ETH:" + DAVE).encode().hex())
    bad_memo = "cc" * 32
    btc.add_tx(bad_memo, 1, 5_000, 1)
    btc.add_output(bad_memo, 0, None, 0, "nulldata")
    btc.payloads.add(bad_memo, 1, 0, PayloadKind.OP_RETURN, b"=:XYZ.XYZ:somewhere".hex())
    h = eth.tx(addr(0xF1), DAVE, 15 * 10**15, time=5_600, memo="OUT:" + btc_txid.upper())

    store = ChainStore(":memory:")
    for batch in (eth.batch, bsc.batch, btc):
        store.write_batch(batch)
    return store


def _by_rule(store: ChainStore) -> dict[str, list]:
    out: dict[str, list] = defaultdict(list)
    for c in list_conversions(store):
        out[c.rule].append(c)
    return out


def test_synthetic_world_conversions(world_store: ChainStore, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        report = detect_conversions(world_store)
    found = _by_rule(world_store)
    (swap,) = found["uniswap-v2-swap"]
    assert (swap.in_.address, swap.in_.asset, swap.in_.value) == (PAIR, TOKEN_A, 100)
    assert (swap.out.address, swap.out.asset, swap.out.value) == (TRADER, TOKEN_B, 90)
    (agg,) = found["tx-net-flow"]
    assert (agg.in_.asset, agg.in_.value, agg.out.asset, agg.out.value) == ("native", 7, TOKEN_B, 700)
    (bridge,) = found["cbridge-transfer-id"]
    assert (bridge.in_.chain, bridge.in_.address, bridge.in_.value) == ("eth", BRIDGE_ETH, 500)
    assert (bridge.out.chain, bridge.out.address, bridge.out.asset, bridge.out.value) == ("bsc", RECEIVER,
                                                                                           TOKEN_B, 495)
    (memo,) = found["thorchain-memo"]
    assert (memo.in_.chain, memo.in_.value, memo.out.chain, memo.out.address) == ("btc", 100_000, "eth", DAVE)
    (same,) = found["pool-same-address"]
    assert (same.kind, same.in_.address, same.out.address, same.out.value) == (
        ConversionKind.POOL, POOL, ALICE, DENOM)
    assert same.anonymity_set == 3
    # Carol's relayed withdrawal links to nothing: its value stays at the pool
    assert not [c for cs in found.values() for c in cs if c.out.address == CAROL]
    # bad input: counted, named, never a conversion, never a crash
    assert report.skipped["lookalike-swap"] == 1
    assert report.skipped["malformed-log"] == 1
    assert report.skipped["relay-without-send"] == 1
    assert report.skipped["bad-memo"] == 1
    assert report.skipped["lookalike-pool"] == 2
    assert any(s.reason == "relay-without-send" and s.chain == "bsc" for s in report.skips)
    assert "relay-without-send skipped in bsc" in caplog.text
    assert list_conversions(world_store, "bsc", ConversionKind.BRIDGE) == [bridge]
    # derived data: a second run replaces, never adds
    detect_conversions(world_store)
    assert sum(len(v) for v in _by_rule(world_store).values()) == sum(len(v) for v in found.values())


def test_pool_timing_and_gas_price_heuristics() -> None:
    eth = World("eth")
    h = eth.tx(ALICE, POOL, DENOM, gas_price=23_456_789_012, time=1_000)
    eth.log(h, 1, POOL, [T0[EventName.POOL_DEPOSIT], topic("01" * 32)], data(0, 1))
    h = eth.tx(BOB, POOL, gas_price=23_456_789_012, time=1_500)
    eth.internal(h, 1, POOL, CAROL, DENOM)
    eth.log(h, 2, POOL, [T0[EventName.POOL_WITHDRAWAL], topic(addr(0))], data(CAROL, "02" * 32, 0))
    store = ChainStore(":memory:")
    store.write_batch(eth.batch)
    detect_conversions(store)
    found = _by_rule(store)
    assert [c.out.address for c in found["pool-unique-gas-price"]] == [CAROL]
    (timing,) = found["pool-timing"]
    assert (timing.candidates, timing.anonymity_set) == (1, 1)
