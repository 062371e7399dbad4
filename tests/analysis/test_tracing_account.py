"""Tracing on an account chain (eth): balances drawn down by each policy, per asset, forward and backward.

World E (one block per line; each transaction pays a 10 wei fee, drawn first):

    h1  reward            -> THIEF 1000 (native), reward -> BOB 500
    h1  mint   ZERO       -> THIEF 1000000 TOKEN          (ERC-20 mint from the zero address)
    h2  a      THIEF      -> MULE 600
    h3  b      BOB        -> MULE 400
    h4  c      MULE       -> EXCH 500                     (EXCH: "Northwind Exchange", exchange)
    h5  d      MULE       -> CAROL 300
    h6  e      THIEF      -> MULE 700000 TOKEN
    h7  f      MULE       -> EXCH 700000 TOKEN

The mini world (no fees except where said; genesis at h0):

    h0  genesis -> BOB 1000, genesis -> THIEF 1000
    h1  b1     BOB   -> MULE 100
    h2  m1     MULE  -> DAVE 50                         (before any taint reached MULE)
    h3  t1     THIEF -> MULE 100
    h4  sweep  MULE  -> CONTRACT 100, then internal CONTRACT -> ERIN 100
    h5  failed MULE  -> FRANK 40, status failed: only its fee of 1 moves
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from fundtrail.analysis.paths import find_paths
from fundtrail.analysis.tracing import TraceResult, trace_funds
from fundtrail.domain.records import AccountBatch, BlockRecord
from fundtrail.errors import InvalidAddressError, NotFoundError
from fundtrail.store import ChainStore

NAMES = ["thief", "bob", "mule", "exch", "carol", "dave", "erin", "frank", "contract", "token"]
ZERO = "0x" + "0" * 40


def E(name: str) -> str:
    """A lower-case EVM address named after its owner."""
    return "0x" + hashlib.sha256(name.encode()).digest()[:20].hex()


def TX(name: str) -> str:
    return "0x" + hashlib.sha256(("tx" + name).encode()).hexdigest()


TOKEN = E("token")
NAME_OF = {E(n): n for n in NAMES} | {ZERO: "zero"}
TX_OF = {TX(n): n for n in ["mint", "a", "b", "c", "d", "e", "f", "b1", "m1", "t1", "sweep", "failed"]}


class AccountWorld:
    """Builds an account chain block by block."""

    def __init__(self) -> None:
        self.batch = AccountBatch("eth")
        self.txs: dict[int, int] = {}

    def _block(self, h: int) -> int:
        when = 1_700_000_000 + 12 * h
        if h not in self.txs:
            self.txs[h] = 0
            self.batch.blocks.append(BlockRecord("eth", h, f"0x{h:064x}", f"0x{h - 1:064x}", when, 0))
        return when

    def reward(self, h: int, to: str, value: int, kind: str = "reward", index: int = 0) -> None:
        when = self._block(h)
        self.batch.add_transfer(None, h, when, index, kind, "native", None, E(to), value)

    def tx(self, h: int, name: str, moves: list[tuple[str, str, str, int]], *, fee: int = 0,
           sender: str | None = None, status: bool = True) -> None:
        """moves: (kind, from, to, value); kind "native", "internal" or "token:<contract>"."""
        when = self._block(h)
        txid = TX(name)
        self.batch.add_tx(txid, h, when, self.txs[h], fee=fee, status=status)
        self.txs[h] += 1
        self.batch.blocks[-1] = BlockRecord("eth", h, f"0x{h:064x}", f"0x{h - 1:064x}", when, self.txs[h])
        for i, (kind, src, dst, value) in enumerate(moves):
            asset = "native"
            if kind.startswith("token:"):
                kind, asset = "token", kind.split(":", 1)[1]
            self.batch.add_transfer(txid, h, when, i, kind, asset, ZERO if src == "zero" else E(src), E(dst),
                                    value)
        if fee:
            self.batch.add_transfer(txid, h, when, 0, "fee", "native", E(sender or moves[0][1]), None, fee)


def world_e() -> AccountWorld:
    w = AccountWorld()
    w.reward(1, "thief", 1000)
    w.reward(1, "bob", 500, index=1)
    w.tx(1, "mint", [(f"token:{TOKEN}", "zero", "thief", 1_000_000)])
    w.tx(2, "a", [("native", "thief", "mule", 600)], fee=10)
    w.tx(3, "b", [("native", "bob", "mule", 400)], fee=10)
    w.tx(4, "c", [("native", "mule", "exch", 500)], fee=10)
    w.tx(5, "d", [("native", "mule", "carol", 300)], fee=10)
    w.tx(6, "e", [(f"token:{TOKEN}", "thief", "mule", 700_000)], fee=10, sender="thief")
    w.tx(7, "f", [(f"token:{TOKEN}", "mule", "exch", 700_000)], fee=10, sender="mule")
    return w


def mini_world() -> AccountWorld:
    w = AccountWorld()
    w.reward(0, "bob", 1000, kind="genesis")
    w.reward(0, "thief", 1000, kind="genesis", index=1)
    w.tx(1, "b1", [("native", "bob", "mule", 100)])
    w.tx(2, "m1", [("native", "mule", "dave", 50)])
    w.tx(3, "t1", [("native", "thief", "mule", 100)])
    w.tx(4, "sweep", [("native", "mule", "contract", 100), ("internal", "contract", "erin", 100)])
    w.tx(5, "failed", [("native", "mule", "frank", 40)], fee=1, status=False)
    return w


@pytest.fixture()
def eth(store: ChainStore) -> ChainStore:
    store.write_batch(world_e().batch)
    store.con.execute("INSERT INTO tags (chain, address, label, category, jurisdiction, confidence_level, "
                      "source) VALUES ('eth', ?, 'Northwind Exchange', 'exchange', 'NL', 80, 'test')",
                      [E("exch")])
    return store


@pytest.fixture()
def mini(store: ChainStore) -> ChainStore:
    store.write_batch(mini_world().batch)
    return store


def ends(result: TraceResult) -> list[tuple[Any, ...]]:
    """(name, asset or "token", reason, tainted value, hops) in the result's order."""
    return [(NAME_OF.get(e.address or "") or TX_OF.get(e.txid or ""),
             "token" if e.asset == TOKEN else e.asset, e.reason, e.tainted_value, e.hops)
            for e in result.endpoints]


# --------------------------------------------------------------------------------------- forward


def test_haircut_forward_over_every_asset(eth: ChainStore) -> None:
    r = trace_funds(eth, "eth", [E("thief")], policy="haircut")
    # native: THIEF's 1000 is all tainted; fee 10 and 600 to MULE (hop 1), fee 10 at h6, 380 stays.
    # MULE holds 600 tainted + 400 clean: fee 10 takes floor(10*600/1000) = 6 tainted; c takes
    # floor(500*594/990) = 300 (EXCH, a service: stop); fee 6; d floor(300*288/480) = 180 (CAROL);
    # fee at h7 floor(10*108/180) = 6; MULE keeps 102. Fees 10+6+6+10+6 = 38.
    # token: THIEF's 1000000 minted to it is tainted; 700000 to MULE, on to EXCH; 300000 stays.
    assert ends(r) == [("exch", "token", "service", 700_000, 2), ("thief", "token", "unspent", 300_000, 0),
                       ("thief", "native", "unspent", 380, 0), ("exch", "native", "service", 300, 2),
                       ("carol", "native", "unspent", 180, 2), ("mule", "native", "unspent", 102, 1)]
    assert r.fees == {"native": 38}
    assert r.seeded == {"native": 1000, TOKEN: 1_000_000}
    assert r.endpoints[0].entity == "Northwind Exchange"
    flows = [(TX_OF[f.txid], f.kind, NAME_OF[f.from_address], NAME_OF[f.to_address], f.value, f.tainted_value,
              f.hop) for f in r.flows]
    # flows are sorted by hop, then txid (deterministic); compare regardless of the hashes' order
    assert sorted(flows) == [("a", "native", "thief", "mule", 600, 600, 1),
                             ("c", "native", "mule", "exch", 500, 300, 2),
                             ("d", "native", "mule", "carol", 300, 180, 2),
                             ("e", "token", "thief", "mule", 700_000, 700_000, 1),
                             ("f", "token", "mule", "exch", 700_000, 700_000, 2)]
    assert [f.hop for f in r.flows] == [1, 1, 2, 2, 2]


def test_fifo_forward(eth: ChainStore) -> None:
    r = trace_funds(eth, "eth", [E("thief")], policy="fifo", asset="native")
    # MULE's queue: [600 tainted][400 clean]. fee 10 and c 500 draw tainted; fee 10 tainted; d 300 draws
    # the last 80 tainted and 220 clean; the h7 fee and what is left are clean.
    assert ends(r) == [("exch", "native", "service", 500, 2), ("thief", "native", "unspent", 380, 0),
                       ("carol", "native", "unspent", 80, 2)]
    assert r.fees == {"native": 40}


def test_poison_forward(eth: ChainStore) -> None:
    r = trace_funds(eth, "eth", [E("thief")], policy="poison", asset="native")
    # MULE is poisoned at h2: everything it sends afterwards, and its 170 left, are tainted
    assert ends(r) == [("exch", "native", "service", 500, 2), ("thief", "native", "unspent", 380, 0),
                       ("carol", "native", "unspent", 300, 2), ("mule", "native", "unspent", 170, 1)]
    assert r.fees == {"native": 50}


def test_asset_narrows_the_trace(eth: ChainStore) -> None:
    r = trace_funds(eth, "eth", [E("thief")], asset=TOKEN.upper().replace("0X", "0x"))
    assert ends(r) == [("exch", "token", "service", 700_000, 2), ("thief", "token", "unspent", 300_000, 0)]
    assert r.params.asset == TOKEN


def test_time_order_prebalance_internal_transfers_and_failed_transactions(mini: ChainStore) -> None:
    # MULE held 50 clean (100 from BOB, 50 to DAVE before any taint) when THIEF's 100 arrived.
    # fifo: sweep takes 50 clean + 50 tainted to CONTRACT, which passes it on (internal) to ERIN;
    # the failed transfer to FRANK moves nothing but its fee, 1 tainted; MULE keeps 49 tainted.
    fifo = trace_funds(mini, "eth", [E("thief")], policy="fifo")
    assert ends(fifo) == [("thief", "native", "unspent", 900, 0), ("erin", "native", "unspent", 50, 3),
                          ("mule", "native", "unspent", 49, 1)]
    assert fifo.fees == {"native": 1}
    # haircut: 100 of MULE's 150 go to CONTRACT, shares by cumulative flooring in order of arrival
    # (clean first): clean floor(100*50/150) = 33, tainted 67; CONTRACT passes all on; MULE keeps 33
    # tainted and 17 clean, of which the fee of 1 takes floor(1*50/50) - floor(1*17/50) = 1 tainted.
    haircut = trace_funds(mini, "eth", [E("thief")], policy="haircut")
    assert ends(haircut) == [("thief", "native", "unspent", 900, 0), ("erin", "native", "unspent", 67, 3),
                             ("mule", "native", "unspent", 32, 1)]
    poison = trace_funds(mini, "eth", [E("thief")], policy="poison")
    assert ends(poison) == [("thief", "native", "unspent", 900, 0), ("erin", "native", "unspent", 100, 3),
                            ("mule", "native", "unspent", 49, 1)]
    for r in (fifo, haircut, poison):
        assert {"dave", "frank"}.isdisjoint(n for n, *_ in ends(r))
    internal = next(f for f in haircut.flows if f.kind == "internal")
    assert (NAME_OF[internal.from_address], NAME_OF[internal.to_address], internal.hop) == (
        "contract", "erin", 3)


# --------------------------------------------------------------------------------------- options


def test_max_hops_min_value_hub_services(eth: ChainStore) -> None:
    # max 1 hop: MULE (hop 1) may not pass taint on; fees still count as fees
    r = trace_funds(eth, "eth", [E("thief")], asset="native", max_hops=1)
    assert ends(r) == [("mule", "native", "max_hops", 480, 1), ("thief", "native", "unspent", 380, 0),
                       ("mule", "native", "unspent", 102, 1)]
    assert r.fees == {"native": 38}
    # CAROL's 180 is below 200: recorded as the flow's end, not followed
    small = trace_funds(eth, "eth", [E("thief")], asset="native", min_value=200)
    assert ("carol", "native", "min_value", 180, 2) in ends(small)
    # MULE takes part in 9 transfers: above a hub degree of 3 the trace stops there
    hub = trace_funds(eth, "eth", [E("thief")], asset="native", hub_degree=3)
    assert ends(hub) == [("mule", "native", "hub", 600, 1), ("thief", "native", "unspent", 380, 0)]
    assert hub.to_dict()["stopped"][0]["degree"] == 9
    through = trace_funds(eth, "eth", [E("thief")], asset="native", stop_at_services=False)
    assert ("exch", "native", "unspent", 300, 2) in ends(through)


def test_time_window(eth: ChainStore) -> None:
    h4 = 1_700_000_000 + 12 * 4
    r = trace_funds(eth, "eth", [E("thief")], asset="native", until=h4 - 1)
    # nothing after h3 is followed: MULE still holds 600 tainted, THIEF 390; both spend later
    assert ends(r) == [("mule", "native", "time_window", 600, 1), ("thief", "native", "time_window", 390, 0)]
    assert r.fees == {"native": 10}
    late = trace_funds(eth, "eth", [E("thief")], since=1_700_000_000 + 12 * 2 + 1)
    assert late.endpoints == () and late.flows == ()


def test_coinjoin_transaction_on_an_account_chain(eth: ChainStore) -> None:
    eth.con.execute("CREATE TABLE IF NOT EXISTS tx_patterns (chain VARCHAR NOT NULL, txid VARCHAR NOT NULL, "
                    "height BIGINT NOT NULL, pattern VARCHAR NOT NULL, rule VARCHAR NOT NULL, "
                    "confidence DOUBLE NOT NULL, params JSON)")
    eth.con.execute("INSERT INTO tx_patterns VALUES ('eth', ?, 4, 'coinjoin', 'test', 1.0, NULL)", [TX("c")])
    r = trace_funds(eth, "eth", [E("thief")], asset="native")
    cj = next(e for e in r.endpoints if e.reason == "coinjoin")
    assert (cj.txid, cj.category, cj.tainted_value, cj.address) == (TX("c"), "coinjoin", 300, None)


def test_txid_seed(eth: ChainStore) -> None:
    # tx a's 600 to MULE is the seed (its fee is not): as above from MULE on, hops one less
    r = trace_funds(eth, "eth", [TX("a")])
    assert ends(r) == [("exch", "native", "service", 300, 1), ("carol", "native", "unspent", 180, 1),
                       ("mule", "native", "unspent", 102, 0)]
    assert r.seeded == {"native": 600}
    same = trace_funds(eth, "eth", [TX("a")[2:]])  # without 0x
    assert same.to_dict()["endpoints"] == r.to_dict()["endpoints"]


# -------------------------------------------------------------------------------------- backward


@pytest.mark.parametrize(("policy", "expected"), [
    # haircut: c drew 300 from a (THIEF) and 200 from b (BOB) out of MULE's balance (after the fee took
    # 6 and 4); a and b drew on the block rewards. The token came from the mint.
    ("haircut", [("thief", "token", "origin", 700_000, 3), ("thief", "native", "origin", 300, 3),
                 ("bob", "native", "origin", 200, 3)]),
    # fifo: MULE's queue [a 600][b 400]: the fee took a's first 10, c the next 500: all THIEF's
    ("fifo", [("thief", "token", "origin", 700_000, 3), ("thief", "native", "origin", 500, 3)]),
    # poison: everything MULE received before c, and everything their senders received before
    ("poison", [("thief", "token", "origin", 1_000_000, 3), ("thief", "native", "origin", 1000, 3),
                ("bob", "native", "origin", 500, 3)]),
])
def test_backward_from_the_exchange(eth: ChainStore, policy: str, expected: list[Any]) -> None:
    r = trace_funds(eth, "eth", [E("exch")], direction="backward", policy=policy)
    assert ends(r) == expected
    assert r.seeded == {"native": 500, TOKEN: 700_000}
    if policy != "poison":
        for asset, seeded in r.seeded.items():
            assert sum(e.tainted_value for e in r.endpoints if e.asset == asset) == seeded
    mint = next(e for e in r.endpoints if e.asset == TOKEN)
    assert mint.txid == TX("mint")


def test_backward_hop_limit(eth: ChainStore) -> None:
    r = trace_funds(eth, "eth", [E("exch")], direction="backward", asset="native", max_hops=1)
    assert ends(r) == [("mule", "native", "max_hops", 500, 1)]


def test_account_seeds_are_validated(eth: ChainStore) -> None:
    with pytest.raises(InvalidAddressError):
        trace_funds(eth, "eth", ["0x1234"])
    with pytest.raises(NotFoundError):
        trace_funds(eth, "eth", [E("nobody")])
    with pytest.raises(NotFoundError):
        trace_funds(eth, "eth", ["0x" + "ab" * 32])


def test_account_trace_is_reproducible(eth: ChainStore) -> None:
    docs = [json.dumps(trace_funds(eth, "eth", [E("thief")], policy=p).to_dict()) for p in ("fifo", "fifo")]
    assert docs[0] == docs[1]


# ----------------------------------------------------------------------------------------- paths


def test_account_paths_respect_time_order(mini: ChainStore) -> None:
    r = find_paths(mini, "eth", E("thief"), E("erin"))
    got = [[(TX_OF[f["txid"]], NAME_OF[f["from"]], NAME_OF[f["to"]], f["value"]) for f in p["flows"]]
           for p in r.to_dict()["paths"]]
    assert got == [[("t1", "thief", "mule", "100"), ("sweep", "mule", "contract", "100"),
                    ("sweep", "contract", "erin", "100")]]
    two = find_paths(mini, "eth", E("bob"), E("dave"))
    assert [len(p) for p in two.paths] == [2]
    # THIEF's funds reached MULE only after MULE paid DAVE: no path
    assert find_paths(mini, "eth", E("thief"), E("dave")).paths == ()
    assert find_paths(mini, "eth", E("thief"), E("erin"), max_hops=2).paths == ()
