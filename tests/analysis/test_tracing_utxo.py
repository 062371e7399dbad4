"""Tracing on a UTXO chain: every policy and option on a small hand-written chain, invariants on random ones.

The investigation world (one transaction per block, block h at time 1_600_000_000 + 600 * h):

    fund  (h1) coinbase                                   -> THIEF 100000        the stolen coins
    clean (h2) coinbase                                   -> BOB 50000           clean coins
    mix   (h3) BOB 50000 (clean:0), THIEF 100000 (fund:0) -> CAROL 90000, DAVE 59000          fee 1000
    hop2  (h4) CAROL 90000 (mix:0)                        -> ERIN 60000, CAROL 29000 (change) fee 1000
    exch  (h5) ERIN 60000 (hop2:0)                        -> EXCHANGE 59500                   fee 500

DAVE (mix:1) and CAROL's change (hop2:1) stay unspent. EXCHANGE is tagged "Northwind Exchange"
(exchange, NL). Expected values below are computed by hand from these numbers.
"""

from __future__ import annotations

import gc
import hashlib
import json
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fundtrail.analysis.graph import snapshot, utxo_graph
from fundtrail.analysis.tracing import TraceResult, trace_funds
from fundtrail.domain.addresses import segwit_address
from fundtrail.domain.records import BlockRecord, UtxoBatch
from fundtrail.domain.taint import haircut_shares
from fundtrail.errors import InputError, InvalidAddressError, NotFoundError
from fundtrail.store import ChainStore
from fundtrail.testing.utxo import UtxoChain

BASE_TIME = 1_600_000_000
NAMES = ["thief", "bob", "carol", "dave", "erin", "exchange", "frank", "gina", "hank", "ivan"]


def A(name: str) -> str:
    """A valid bech32 (P2WPKH) address named after a person."""
    return segwit_address("btc", 0, hashlib.sha256(name.encode()).digest()[:20])


def T(name: str) -> str:
    """A txid named after its role."""
    return hashlib.sha256(("tx" + name).encode()).hexdigest()


NAME_OF = {A(n): n for n in NAMES}
TX_OF = {T(n): n for n in ["fund", "clean", "mix", "hop2", "exch", "late"]}


class World:
    """Builds a UTXO chain one transaction per block."""

    def __init__(self) -> None:
        self.batch = UtxoBatch("btc")
        self.height = 0

    def tx(self, name: str, inputs: list[tuple[str, int]], outputs: list[tuple[str | None, int]], *,
           coinbase: bool = False) -> None:
        self.height += 1
        h = self.height
        when = BASE_TIME + 600 * h
        self.batch.blocks.append(BlockRecord("btc", h, f"{h:064x}", f"{h - 1:064x}", when, 1))
        self.batch.add_tx(T(name), h, when, 0, coinbase=coinbase)
        for i, (prev, n) in enumerate(inputs):
            self.batch.add_input(T(name), i, T(prev), n)
        for n, (who, value) in enumerate(outputs):
            self.batch.add_output(T(name), n, A(who) if who else None, value, "p2wpkh")


def world_a() -> World:
    w = World()
    w.tx("fund", [], [("thief", 100_000)], coinbase=True)
    w.tx("clean", [], [("bob", 50_000)], coinbase=True)
    w.tx("mix", [("clean", 0), ("fund", 0)], [("carol", 90_000), ("dave", 59_000)])
    w.tx("hop2", [("mix", 0)], [("erin", 60_000), ("carol", 29_000)])
    w.tx("exch", [("hop2", 0)], [("exchange", 59_500)])
    return w


def tag(store: ChainStore, name: str, label: str, category: str, jurisdiction: str = "NL") -> None:
    store.con.execute("INSERT INTO tags (chain, address, label, category, jurisdiction, confidence_level, "
                      "source) VALUES ('btc', ?, ?, ?, ?, 80, 'test')",
                      [A(name), label, category, jurisdiction])


@pytest.fixture()
def world(store: ChainStore) -> ChainStore:
    store.write_batch(world_a().batch)
    tag(store, "exchange", "Northwind Exchange", "exchange")
    return store


def ends(result: TraceResult) -> list[tuple[str | None, str, int, int]]:
    """Endpoints as (name or tx role, reason, tainted value, hops), in the result's order."""
    return [(NAME_OF.get(e.address or "") or TX_OF.get(e.txid or ""), e.reason, e.tainted_value, e.hops)
            for e in result.endpoints]


def flows(result: TraceResult) -> list[tuple[Any, ...]]:
    """Flows as (tx role, output or input n, from, to, value, tainted value, hop)."""
    return [(TX_OF[f.txid], f.output if f.output is not None else f.input, NAME_OF.get(f.from_address or ""),
             NAME_OF.get(f.to_address or ""), f.value, f.tainted_value, f.hop) for f in result.flows]


def fees(result: TraceResult) -> int:
    return result.fees.get("native", 0)


# ------------------------------------------------------------------------------------ policies


def test_haircut_forward(world: ChainStore) -> None:
    r = trace_funds(world, "btc", [A("thief")], policy="haircut")
    # mix: 100000 tainted of 150000 in: CAROL 90000*2/3 = 60000, DAVE 59000*2/3 = 39333 (floor), fee 667
    # hop2: CAROL's 60000 of 90000: ERIN 60000*2/3 = 40000, CAROL change 29000*2/3 = 19333, fee 667
    # exch: ERIN's 40000 of 60000: EXCHANGE 59500*2/3 = 39666 (floor), fee 334
    # CAROL's change back to CAROL stays with CAROL: no hop (hop 1, step 2)
    assert ends(r) == [("exchange", "service", 39_666, 3), ("dave", "unspent", 39_333, 1),
                       ("carol", "unspent", 19_333, 1)]
    assert flows(r) == [("mix", 0, "thief", "carol", 90_000, 60_000, 1),
                        ("mix", 1, "thief", "dave", 59_000, 39_333, 1),
                        ("hop2", 1, "carol", "carol", 29_000, 19_333, 1),
                        ("hop2", 0, "carol", "erin", 60_000, 40_000, 2),
                        ("exch", 0, "erin", "exchange", 59_500, 39_666, 3)]
    assert [(f.step, f.same_owner) for f in r.flows] == [(1, None), (1, None), (2, "change"), (2, None),
                                                         (3, None)]
    assert fees(r) == 667 + 667 + 334
    exchange = r.endpoints[0]
    assert (exchange.entity, exchange.category, exchange.jurisdiction) == (
        "Northwind Exchange", "exchange", "NL")
    assert r.seeded == {"native": 100_000}
    # conserved: endpoints + fees = seeded
    assert sum(e.tainted_value for e in r.endpoints) + fees(r) == 100_000


def test_poison_forward(world: ChainStore) -> None:
    r = trace_funds(world, "btc", [A("thief")], policy="poison")
    # every output of a transaction with a tainted input is fully tainted, the fees too
    assert ends(r) == [("exchange", "service", 59_500, 3), ("dave", "unspent", 59_000, 1),
                       ("carol", "unspent", 29_000, 1)]
    assert [f[5] for f in flows(r)] == [90_000, 59_000, 29_000, 60_000, 59_500]
    assert fees(r) == 1_000 + 1_000 + 500


def test_fifo_forward(world: ChainStore) -> None:
    r = trace_funds(world, "btc", [A("thief")], policy="fifo")
    # mix, inputs end to end: [BOB 50000 clean][THIEF 100000 tainted]
    #   CAROL 0..90000: 50000 clean + 40000 tainted; DAVE 90000..149000: 59000 tainted; fee 1000 tainted
    # hop2, CAROL's coin [50000 clean][40000 tainted]: ERIN 50000 clean + 10000 tainted;
    #   CAROL change 29000 tainted; fee 1000 tainted
    # exch, ERIN's coin [50000 clean][10000 tainted]: EXCHANGE 50000 clean + 9500 tainted; fee 500 tainted
    assert ends(r) == [("dave", "unspent", 59_000, 1), ("carol", "unspent", 29_000, 1),
                       ("exchange", "service", 9_500, 3)]
    assert [f[5] for f in flows(r)] == [40_000, 59_000, 29_000, 10_000, 9_500]
    assert fees(r) == 2_500
    assert sum(e.tainted_value for e in r.endpoints) + fees(r) == 100_000


@pytest.mark.parametrize(("policy", "expected"), [
    # haircut: exch gives ERIN all 59500; hop2 gives CAROL's input all 59500; mix spreads 59500 over
    # BOB 50000 / THIEF 100000: BOB floor(59500/3) = 19833, THIEF the rest 39667. Both are newly mined.
    ("haircut", [("thief", "coinbase", 39_667, 3), ("bob", "coinbase", 19_833, 3)]),
    # poison: every input of every transaction on the way, in full
    ("poison", [("thief", "coinbase", 100_000, 3), ("bob", "coinbase", 50_000, 3)]),
    # fifo: positions 0..59500 of CAROL's mix output came from BOB (0..50000) and THIEF (50000..59500)
    ("fifo", [("bob", "coinbase", 50_000, 3), ("thief", "coinbase", 9_500, 3)]),
])
def test_backward_from_the_exchange(world: ChainStore, policy: str, expected: list[Any]) -> None:
    r = trace_funds(world, "btc", [A("exchange")], direction="backward", policy=policy)
    assert ends(r) == expected
    assert all(e.txid in (T("fund"), T("clean")) and e.category == "coinbase" for e in r.endpoints)
    assert r.seeded == {"native": 59_500}
    if policy != "poison":
        assert sum(e.tainted_value for e in r.endpoints) == 59_500


def test_backward_haircut_flows(world: ChainStore) -> None:
    r = trace_funds(world, "btc", [A("exchange")], direction="backward", policy="haircut")
    # backward flows are inputs: (tx, input n, from = input address, to = output of interest, ...)
    assert flows(r) == [("exch", 0, "erin", "exchange", 60_000, 59_500, 1),
                        ("hop2", 0, "carol", "erin", 90_000, 59_500, 2),
                        ("mix", 0, "bob", "carol", 50_000, 19_833, 3),
                        ("mix", 1, "thief", "carol", 100_000, 39_667, 3)]
    assert r.flows[0].evidence[0] == f"spent output {T('hop2')}:0"


# ------------------------------------------------------------------------------------- options


def test_without_stopping_at_services_the_exchange_output_is_simply_unspent(world: ChainStore) -> None:
    r = trace_funds(world, "btc", [A("thief")], stop_at_services=False)
    assert ends(r)[0] == ("exchange", "unspent", 39_666, 3)
    assert r.endpoints[0].category == "exchange"  # still attributed
    assert r.stopped == ()


def test_max_hops(world: ChainStore) -> None:
    r = trace_funds(world, "btc", [A("thief")], max_hops=1)
    # after mix (hop 1) CAROL's 60000 is spent again but not followed
    assert ends(r) == [("carol", "max_hops", 60_000, 1), ("dave", "unspent", 39_333, 1)]
    assert [s.reason for s in r.stopped] == ["max_hops"]
    r0 = trace_funds(world, "btc", [A("thief")], max_hops=0)
    assert ends(r0) == [("thief", "max_hops", 100_000, 0)]
    assert r0.flows == ()


def test_min_value(world: ChainStore) -> None:
    r = trace_funds(world, "btc", [A("thief")], min_value=45_000)
    # CAROL's 60000 is followed; ERIN's 40000 < 45000 is not (it was spent on to the exchange);
    # DAVE's 39333 and CAROL's 19333 are below too but unspent anyway.
    assert ends(r) == [("erin", "min_value", 40_000, 2), ("dave", "unspent", 39_333, 1),
                       ("carol", "unspent", 19_333, 1)]
    assert fees(r) == 667 + 667
    assert r.to_dict()["stopped"] == [{"address": A("erin"), "reason": "min_value", "asset": "native",
                                       "tainted_value": "40000", "hops": 2}]


def test_hub_degree(world: ChainStore) -> None:
    # CAROL takes part in two transactions (mix, hop2): above a hub degree of 1 the trace stops there
    r = trace_funds(world, "btc", [A("thief")], hub_degree=1)
    assert ends(r) == [("carol", "hub", 60_000, 1), ("dave", "unspent", 39_333, 1)]
    assert r.to_dict()["stopped"] == [{"address": A("carol"), "reason": "hub", "asset": "native",
                                       "tainted_value": "60000", "hops": 1, "degree": 2}]


def _patterns_table(store: ChainStore) -> None:
    store.con.execute("CREATE TABLE IF NOT EXISTS tx_patterns (chain VARCHAR NOT NULL, "
                      "txid VARCHAR NOT NULL, height BIGINT NOT NULL, pattern VARCHAR NOT NULL, "
                      "rule VARCHAR NOT NULL, confidence DOUBLE NOT NULL, params JSON)")


def test_coinjoin_is_an_endpoint_named_by_txid(world: ChainStore) -> None:
    _patterns_table(world)
    world.con.execute("INSERT INTO tx_patterns VALUES ('btc', ?, 4, 'whirlpool', 'test', 1.0, NULL)",
                      [T("hop2")])
    r = trace_funds(world, "btc", [A("thief")])
    # CAROL's 60000 goes into hop2, now a CoinJoin: the trace cannot see through it
    assert ends(r) == [("hop2", "coinjoin", 60_000, 1), ("dave", "unspent", 39_333, 1)]
    cj = r.endpoints[0].to_dict()
    assert (cj["address"], cj["txid"], cj["category"]) == (None, T("hop2"), "coinjoin")
    assert r.to_dict()["stopped"][0] == {"txid": T("hop2"), "reason": "coinjoin", "asset": "native",
                                         "tainted_value": "60000", "hops": 1}
    # backward, the exchange's coins came out of a CoinJoin (mix flagged instead)
    world.con.execute("DELETE FROM tx_patterns")
    world.con.execute("INSERT INTO tx_patterns VALUES ('btc', ?, 3, 'wasabi', 'test', 1.0, NULL)", [T("mix")])
    back = trace_funds(world, "btc", [A("exchange")], direction="backward")
    assert ends(back) == [("mix", "coinjoin", 59_500, 2)]


def test_caches_follow_new_tags_clusters_and_tables(world: ChainStore) -> None:
    # a first trace builds the graph and attribution caches
    assert ("dave", "unspent", 39_333, 1) in ends(trace_funds(world, "btc", [A("thief")]))
    # DAVE is tagged afterwards: the next trace sees it (the attribution cache is rebuilt)
    tag(world, "dave", "Southgate Exchange", "exchange", "DE")
    dave = next(e for e in trace_funds(world, "btc", [A("thief")]).endpoints if e.address == A("dave"))
    assert (dave.reason, dave.entity, dave.jurisdiction) == ("service", "Southgate Exchange", "DE")
    # CAROL is in one cluster with the exchange: attributed through the cluster, so a service too
    world.con.execute("CREATE TABLE IF NOT EXISTS clusters (chain VARCHAR NOT NULL, "
                      "address_id BIGINT NOT NULL, cluster_id BIGINT NOT NULL, reason VARCHAR NOT NULL)")
    for name in ("carol", "exchange"):
        world.con.execute("INSERT INTO clusters VALUES ('btc', ?, 3, 'co-spend')",
                          [world.address_id("btc", A(name))])
    r = trace_funds(world, "btc", [A("thief")])
    assert ends(r) == [("carol", "service", 60_000, 1), ("dave", "service", 39_333, 1)]
    assert r.endpoints[0].entity == "Northwind Exchange" and r.endpoints[0].cluster == "3"
    # a pattern table created after the first trace is read as well
    _patterns_table(world)
    world.con.execute("INSERT INTO tx_patterns VALUES ('btc', ?, 3, 'joinmarket', 'test', 1.0, NULL)",
                      [T("mix")])
    assert ends(trace_funds(world, "btc", [A("thief")])) == [("mix", "coinjoin", 100_000, 0)]


def test_time_window(world: ChainStore) -> None:
    hop2_time = BASE_TIME + 600 * 4
    r = trace_funds(world, "btc", [A("thief")], until=hop2_time - 1)
    assert ends(r) == [("carol", "time_window", 60_000, 1), ("dave", "unspent", 39_333, 1)]
    # THIEF received its coins at h1: a window starting later holds nothing to trace
    late = trace_funds(world, "btc", [A("thief")], since=BASE_TIME + 600 + 1)
    assert (late.endpoints, late.flows, late.seeded) == ((), (), {"native": 0})


def _change_table(store: ChainStore) -> None:
    store.con.execute("CREATE TABLE IF NOT EXISTS change_outputs (chain VARCHAR NOT NULL, "
                      "txid VARCHAR NOT NULL, height BIGINT NOT NULL, n INTEGER NOT NULL, address_id BIGINT, "
                      "heuristic VARCHAR NOT NULL, confidence DOUBLE NOT NULL)")


def test_follow_change(world: ChainStore) -> None:
    _change_table(world)
    world.con.execute("INSERT INTO change_outputs VALUES ('btc', ?, 4, 1, NULL, 'one-time change', 0.9)",
                      [T("hop2")])
    r = trace_funds(world, "btc", [A("thief")])
    change_flow = next(f for f in r.flows if f.txid == T("hop2") and f.output == 1)
    assert "change heuristic: output pays an address that funded the transaction" in change_flow.evidence
    assert "change heuristic: one-time change" in change_flow.evidence
    assert not any("change" in e for f in r.flows if f.output == 0 for e in f.evidence)
    # not following change: CAROL's change output is where the trace stops, as "change"
    no = trace_funds(world, "btc", [A("thief")], follow_change=False)
    assert ends(no) == [("exchange", "service", 39_666, 3), ("dave", "unspent", 39_333, 1),
                        ("carol", "change", 19_333, 1)]


def test_seeds_by_txid_and_output(world: ChainStore) -> None:
    # all outputs of mix fully tainted (hop 0): hop2 gives ERIN 60000 and CAROL 29000, exch 59500
    r = trace_funds(world, "btc", [T("mix")])
    assert ends(r) == [("exchange", "service", 59_500, 2), ("dave", "unspent", 59_000, 0),
                       ("carol", "unspent", 29_000, 0)]
    one = trace_funds(world, "btc", [f"{T('mix')}:1"])
    assert ends(one) == [("dave", "unspent", 59_000, 0)]
    assert one.seeds == (f"{T('mix')}:1",)


def test_two_seeds_taint_everything_they_fund(world: ChainStore) -> None:
    # BOB and THIEF together fund all of mix: haircut then equals poison (everything downstream tainted)
    r = trace_funds(world, "btc", [A("thief"), A("bob")])
    assert ends(r) == [("exchange", "service", 59_500, 3), ("dave", "unspent", 59_000, 1),
                       ("carol", "unspent", 29_000, 1)]
    assert r.seeded == {"native": 150_000}


def test_unknown_seeds_and_bad_options(world: ChainStore) -> None:
    with pytest.raises(InvalidAddressError):
        trace_funds(world, "btc", ["bc1qnotanaddress"])
    with pytest.raises(NotFoundError):
        trace_funds(world, "btc", ["ab" * 32])
    with pytest.raises(NotFoundError):
        trace_funds(world, "btc", [A("nobody")])  # valid, never seen
    with pytest.raises(NotFoundError):
        trace_funds(world, "btc", [f"{T('mix')}:7"])
    with pytest.raises(InputError):
        trace_funds(world, "btc", [A("thief")], policy="proportional")
    with pytest.raises(InputError):
        trace_funds(world, "btc", [A("thief")], asset="0xdac17f958d2ee523a2206206994597c13d831ec7")
    with pytest.raises(InputError):
        trace_funds(world, "btc", [])


def test_clusters_and_json_contract(world: ChainStore) -> None:
    world.con.execute("CREATE TABLE IF NOT EXISTS clusters (chain VARCHAR NOT NULL, "
                      "address_id BIGINT NOT NULL, cluster_id BIGINT NOT NULL, reason VARCHAR NOT NULL)")
    world.con.execute("INSERT INTO clusters VALUES ('btc', ?, 7, 'co-spend')",
                      [world.address_id("btc", A("exchange"))])
    doc = trace_funds(world, "btc", [A("thief")]).to_dict()
    assert list(doc) == ["chain", "policy", "direction", "seeds", "parameters", "endpoints", "flows",
                         "stopped", "totals"]
    assert (doc["chain"], doc["policy"], doc["direction"], doc["seeds"]) == ("btc", "haircut", "forward",
                                                                            [A("thief")])
    assert doc["parameters"] == {"direction": "forward", "policy": "haircut", "max_hops": 6, "max_steps": 200,
                                 "min_value": "0",
                                 "since": None, "until": None, "asset": None, "stop_at_services": True,
                                 "hub_degree": 500, "follow_change": True}
    assert doc["endpoints"][0] == {"address": A("exchange"), "txid": None, "asset": "native", "cluster": "7",
                                   "entity": "Northwind Exchange", "category": "exchange",
                                   "jurisdiction": "NL", "tainted_value": "39666", "hops": 3,
                                   "reason": "service"}
    flow = doc["flows"][0]
    keys = ("txid", "from", "to", "asset", "value", "tainted_value", "hop", "output")
    assert {k: flow[k] for k in keys} == {
        "txid": T("mix"), "from": A("thief"), "to": A("carol"), "asset": "native", "value": "90000",
        "tainted_value": "60000", "hop": 1, "output": 0}
    assert flow["evidence"][0] == f"spent output {T('fund')}:0 (100000 tainted)"
    assert doc["totals"]["assets"]["native"] == {
        "seeded": "100000", "endpoints": "98332", "fees": "1668", "overlap": "0",
        "by_reason": {"service": "39666", "unspent": "58666"}}


def test_rerun_reproduces_the_document_byte_for_byte(world: ChainStore) -> None:
    first = json.dumps(trace_funds(world, "btc", [A("thief")], policy="fifo").to_dict(), sort_keys=False)
    again = json.dumps(trace_funds(world, "btc", [A("thief")], policy="fifo").to_dict(), sort_keys=False)
    assert first == again
    # the same chain ingested in another order (blocks 3-5 before 1-2) into a fresh store
    full = world_a().batch
    other = ChainStore(":memory:")
    try:
        late = UtxoBatch("btc", blocks=full.blocks[2:])
        early = UtxoBatch("btc", blocks=full.blocks[:2])
        for b in (late, early):
            heights = {blk.height for blk in b.blocks}
            for i, txid in enumerate(full.tx_txid):
                if full.tx_height[i] in heights:
                    b.add_tx(txid, full.tx_height[i], full.tx_time[i], 0, coinbase=full.tx_coinbase[i])
            for i, txid in enumerate(full.out_txid):
                if full.tx_height[full.tx_txid.index(txid)] in heights:
                    b.add_output(txid, full.out_n[i], full.out_address[i], full.out_value[i], "p2wpkh")
            for i, txid in enumerate(full.in_txid):
                if full.tx_height[full.tx_txid.index(txid)] in heights:
                    b.add_input(txid, full.in_n[i], full.in_prev_txid[i], full.in_prev_n[i])
            other.write_batch(b)
        other.resolve_inputs("btc")
        tag(other, "exchange", "Northwind Exchange", "exchange")
        assert json.dumps(trace_funds(other, "btc", [A("thief")], policy="fifo").to_dict()) == first
    finally:
        other.close()


def test_a_result_renders_after_its_store_is_closed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # the API closes the store before it renders the document; flows are built on demand
    with ChainStore(tmp_path / "chain.duckdb") as s:
        s.write_batch(world_a().batch)
        open_doc = trace_funds(s, "btc", [A("thief")]).to_dict()
        result = trace_funds(s, "btc", [A("thief")])
    assert result.to_dict() == open_doc
    assert len(open_doc["flows"]) == 5


def test_the_graph_is_rebuilt_when_the_chain_grows(world: ChainStore) -> None:
    before = trace_funds(world, "btc", [A("thief")])
    assert ("dave", "unspent", 39_333, 1) in ends(before)
    w = World()
    w.height = 5
    w.tx("late", [("mix", 1)], [("frank", 58_000)])
    world.write_batch(w.batch)
    after = trace_funds(world, "btc", [A("thief")])
    # DAVE's 39333 of 59000 moves on: FRANK gets floor(39333 * 58000 / 59000) = 38666
    assert ("frank", "unspent", 38_666, 2) in ends(after)
    assert all(e[0] != "dave" for e in ends(after))


def test_a_read_only_store_is_read_once_and_a_reopened_one_again(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "chain.duckdb"
    with ChainStore(path) as s:
        s.write_batch(world_a().batch)
        assert snapshot(s, "btc") is not snapshot(s, "btc")  # writable: read on every trace
    with ChainStore(path, read_only=True) as ro:
        assert snapshot(ro, "btc") is snapshot(ro, "btc")  # read-only: nobody can change it
        assert ("dave", "unspent", 39_333, 1) in ends(trace_funds(ro, "btc", [A("thief")]))
    w = World()
    w.height = 5
    w.tx("late", [("mix", 1)], [("frank", 58_000)])
    with ChainStore(path) as s:
        s.write_batch(w.batch)
    with ChainStore(path, read_only=True) as ro:  # a new connection sees the new block
        assert ("frank", "unspent", 38_666, 2) in ends(trace_funds(ro, "btc", [A("thief")]))


# ------------------------------------------------------------------------------------------ CLI


def test_cli_trace_json_and_human(cli, home) -> None:  # type: ignore[no-untyped-def]
    with ChainStore.open_home(home) as s:
        s.write_batch(world_a().batch)
        tag(s, "exchange", "Northwind Exchange", "exchange")
    out = cli("trace", A("thief"), "--chain", "btc", "--policy", "fifo", "--home", str(home),
              "--format", "json")
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert [(NAME_OF[e["address"]], e["tainted_value"]) for e in doc["endpoints"]] == [
        ("dave", "59000"), ("carol", "29000"), ("exchange", "9500")]
    back = cli("trace", A("exchange"), "--direction", "backward", "--max-hops", "2", "--home", str(home),
               "-f", "json")
    assert [e["reason"] for e in json.loads(back.stdout)["endpoints"]] == ["max_hops"]
    window = cli("trace", A("thief"), "--until", "2020-09-13T12:50:00Z", "--home", str(home), "-f", "json")
    assert json.loads(window.stdout)["parameters"]["until"] == 1_600_001_400
    human = cli("trace", A("thief"), "--no-stop-at-services", "--home", str(home))
    assert human.exit_code == 0
    assert "Northwind" in human.stdout and "flows per owner hop" in human.stdout


def test_cli_unknown_seed_is_exit_2(cli, home) -> None:  # type: ignore[no-untyped-def]
    with ChainStore.open_home(home) as s:
        s.write_batch(world_a().batch)
    bad = cli("trace", "bc1qnotanaddress", "--home", str(home))
    assert bad.exit_code == 2
    assert "not a valid btc address" in bad.stderr
    missing = cli("trace", "ab" * 32, "--home", str(home))
    assert missing.exit_code == 2 and "not found" in missing.stderr
    when = cli("trace", A("thief"), "--since", "yesterday", "--home", str(home))
    assert when.exit_code == 2 and "--since" in when.stderr


# ----------------------------------------------------------------------------------- invariants


@st.composite
def random_chains(draw: st.DrawFn) -> tuple[World, list[Any]]:
    """Coinbases to a few reused addresses, then transactions spending 1-3 unspent outputs into 1-3."""
    w = World()
    spec: list[Any] = []  # (tx name, [(spent tx, n)], [(receiver, value)])
    unspent: list[tuple[str, int, int]] = []
    people = NAMES[:6]
    for i in range(draw(st.integers(2, 4))):
        who = draw(st.sampled_from(people))
        value = draw(st.integers(1, 10**8))
        w.tx(f"cb{i}", [], [(who, value)], coinbase=True)
        spec.append((f"cb{i}", [], [(who, value)]))
        unspent.append((f"cb{i}", 0, value))
    for i in range(draw(st.integers(1, 12))):
        if not unspent:
            break
        k = draw(st.integers(1, min(3, len(unspent))))
        picks = draw(st.lists(st.integers(0, len(unspent) - 1), min_size=k, max_size=k, unique=True))
        spent = [unspent[j] for j in picks]
        unspent = [u for j, u in enumerate(unspent) if j not in picks]
        total = sum(v for _, _, v in spent)
        n_out = draw(st.integers(1, 3))
        fee = draw(st.integers(0, total // 10))
        cuts = sorted(draw(st.lists(st.integers(0, total - fee), min_size=n_out - 1, max_size=n_out - 1)))
        values = [b - a for a, b in zip([0, *cuts], [*cuts, total - fee], strict=True)]
        outs = [(draw(st.sampled_from(people)), v) for v in values]
        name = f"t{i}"
        w.tx(name, [(t, n) for t, n, _ in spent], outs)
        spec.append((name, [(t, n) for t, n, _ in spent], outs))
        unspent.extend((name, n, v) for n, (_, v) in enumerate(outs))
    return w, spec


def _reference_haircut(spec: list[Any], seed: str) -> dict[str, int]:
    """Unspent taint per address, by a plain dictionary walk in chain order (no stops, no hop limit)."""
    taint: dict[tuple[str, int], int] = {}
    value: dict[tuple[str, int], int] = {}
    owner: dict[tuple[str, int], str] = {}
    spent: set[tuple[str, int]] = set()
    for name, inputs, outputs in spec:
        for n, (who, v) in enumerate(outputs):
            value[(name, n)] = v
            owner[(name, n)] = who
        tainted = sum(taint.get(i, 0) for i in inputs)
        total = sum(value[i] for i in inputs)
        spent.update(inputs)
        shares = haircut_shares(tainted, total, [v for _, v in outputs]) if inputs else (0,) * len(outputs)
        for n, (who, v) in enumerate(outputs):
            taint[(name, n)] = v if who == seed else shares[n]
    held: dict[str, int] = defaultdict(int)
    for out, t in taint.items():
        if out not in spent and t:
            held[owner[out]] += t
    return dict(held)


@settings(max_examples=40, deadline=None)
@given(random_chains(), st.data())
def test_random_chains_conserve_taint_and_match_a_plain_walk(chain: Any, data: st.DataObject) -> None:
    w, spec = chain
    store = ChainStore(":memory:")
    try:
        store.write_batch(w.batch)
        receivers = sorted({who for _, _, outs in spec for who, _ in outs})
        seed = data.draw(st.sampled_from(receivers))
        results = {p: trace_funds(store, "btc", [A(seed)], policy=p, max_hops=50, hub_degree=10**6)
                   for p in ("haircut", "fifo", "poison")}
        for policy in ("haircut", "fifo"):
            r = results[policy]
            total = sum(e.tainted_value for e in r.endpoints) + fees(r) + r.overlap.get("native", 0)
            assert total == r.seeded["native"], policy
        # poison >= haircut at every address
        per_address: dict[str, dict[str, int]] = {p: defaultdict(int) for p in results}
        for p, r in results.items():
            for e in r.endpoints:
                per_address[p][e.address or ""] += e.tainted_value
        for address, value in per_address["haircut"].items():
            assert per_address["poison"][address] >= value
        # a plain walk over the same transactions gives the same unspent taint per address
        unspent = {NAME_OF[e.address]: e.tainted_value for e in results["haircut"].endpoints
                   if e.reason == "unspent" and e.address}
        assert unspent == _reference_haircut(spec, seed)
        # taint out of each transaction never exceeds taint in (outputs of the flows vs. their inputs)
        out_taint = {(f.txid, f.output): f.tainted_value for f in results["haircut"].flows}
        seed_outputs = {(T(name), n) for name, _, outs in spec for n, (who, _) in enumerate(outs)
                        if who == seed}
        values = {(T(name), n): v for name, _, outs in spec for n, (_, v) in enumerate(outs)}
        for name, inputs, _ in spec:
            produced = sum(v for (txid, _), v in out_taint.items() if txid == T(name))
            consumed = sum(values[(T(t), n)] if (T(t), n) in seed_outputs else out_taint.get((T(t), n), 0)
                           for t, n in inputs)
            assert produced <= consumed
        # backward: the value of interest is fully attributed
        back = trace_funds(store, "btc", [A(seed)], direction="backward", max_hops=50, hub_degree=10**6)
        attributed = sum(e.tainted_value for e in back.endpoints) + back.overlap.get("native", 0)
        assert attributed == back.seeded["native"]
        # deterministic
        again = trace_funds(store, "btc", [A(seed)], policy="fifo", max_hops=50, hub_degree=10**6)
        assert again.to_dict() == results["fifo"].to_dict()
    finally:
        store.close()


@settings(max_examples=25, deadline=None)
@given(random_chains())
def test_single_input_chains_give_the_same_trace_under_every_policy(chain: Any) -> None:
    # with one source coin per transaction nothing is ever mixed: poison, haircut and fifo agree
    w, spec = chain
    if any(len(inputs) > 1 for _, inputs, _ in spec):
        return
    store = ChainStore(":memory:")
    try:
        store.write_batch(w.batch)
        seed = T(spec[0][0])
        docs = [trace_funds(store, "btc", [seed], policy=p, hub_degree=10**6).to_dict() for p in
                ("poison", "haircut", "fifo")]
        assert docs[0]["endpoints"] == docs[1]["endpoints"] == docs[2]["endpoints"]
    finally:
        store.close()


def test_amounts_beyond_int64_stay_exact(store: ChainStore) -> None:
    big = 10**20
    w = World()
    w.tx("fund", [], [("thief", 3 * big)], coinbase=True)
    w.tx("clean", [], [("bob", big)], coinbase=True)
    w.tx("mix", [("clean", 0), ("fund", 0)], [("carol", 2 * big), ("dave", 2 * big - 1000)])
    store.write_batch(w.batch)
    r = trace_funds(store, "btc", [A("thief")])
    assert ends(r) == [("carol", "unspent", 3 * big // 2, 1), ("dave", "unspent", 3 * big // 2 - 750, 1)]
    assert fees(r) == 750
    # the thief's input brought the taint: it is where both outputs came from
    assert flows(r) == [("mix", 0, "thief", "carol", 2 * big, 3 * big // 2, 1),
                        ("mix", 1, "thief", "dave", 2 * big - 1000, 3 * big // 2 - 750, 1)]


def test_the_graph_finds_addresses_as_the_store_does(world: ChainStore) -> None:
    g = utxo_graph(world, "btc")
    known = [A(n) for n in NAMES if world.address_id("btc", A(n)) is not None]
    assert len(known) == 6
    for address in known:
        assert g.find_address(address) == world.address_id("btc", address)
    for missing in (A("nobody"), "", "zzz", known[0][:-1], known[0] + "q"):
        assert g.find_address(missing) is None


def test_building_a_document_leaves_the_garbage_collector_as_it_was(world: ChainStore) -> None:
    assert gc.isenabled()
    trace_funds(world, "btc", [A("thief")]).to_dict()
    assert gc.isenabled()
    gc.disable()
    try:
        trace_funds(world, "btc", [A("thief")]).to_dict()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_backward_into_blocks_the_store_lacks_says_so(cli, home) -> None:  # type: ignore[no-untyped-def]
    # The store starts at block 800,000: the mule's coin was made in an earlier block it does not hold.
    c = UtxoChain(start_height=800_000)
    first = c.tx(T("from-before"), [("ff" * 32, 0)], [(A("mule"), 40_000)])
    c.next_block()
    c.tx(T("to-exchange"), [first.out(0)], [(A("exchange"), 39_000)])
    with ChainStore.open_home(home) as s:
        c.write(s)
        doc = trace_funds(s, "btc", [A("exchange")], direction="backward").to_dict()
    assert [(e["txid"], e["reason"]) for e in doc["endpoints"]] == [(T("from-before"), "not_in_store")]
    human = cli("trace", A("exchange"), "--direction", "backward", "--home", str(home))
    text = " ".join(human.stdout.split())
    assert "the btc chain data before block 800,000 is not in the store" in text
    assert "hub" not in text and "CoinJoin" not in text  # no cause that does not apply
