"""Hops by owner: a 40-step peel chain is one hop; ``--max-steps`` bounds transactions and says so.

The ransomware chain (one block per transaction, payments 1-4% of the coin):

* ``ransom``: a coinbase pays ``victim-pay`` to the ransom address ``ransom``;
* ``p0`` .. ``p39``: a peel chain, each step spends the last remainder ``t{i-1}`` (``ransom`` first) and
  pays ``dep{i % 4}`` (deposit addresses of Northwind Exchange, tagged) and the rest to ``t{i}``;
* ``handover``: ``t39`` pays everything to ``mule`` (one output: another owner, a hop);
* ``mix``: ``mule`` and two strangers join a CoinJoin (``tx_patterns``).

Expected with the default options (max_hops 6, max_steps 200): the peel chain is followed to its end:
40 steps whose remainders stay with the thief (``same_owner: peel_chain``; the last step's remainder is a
hand-over, since the chain's next step is not one of its own), every payment reaches the exchange at hop
1, the mule holds the funds at hop 2 and the CoinJoin stops the trace at hop 2, step 41. With
``max_steps=10`` the trace stops after ten transactions with reason ``max_steps``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fundtrail.analysis.coinjoin import detect_patterns, ensure_table
from fundtrail.analysis.tracing import TraceParams, trace_funds
from fundtrail.domain.addresses import segwit_address
from fundtrail.errors import InputError
from fundtrail.store import ChainStore
from fundtrail.testing.utxo import UtxoChain

STEPS = 40


def A(name: str) -> str:
    """A valid bech32 (P2WPKH) address named after its role."""
    return segwit_address("btc", 0, hashlib.sha256(name.encode()).digest()[:20])


NAME_OF: dict[str, str] = {}


def named(name: str) -> str:
    NAME_OF[A(name)] = name
    return A(name)


def ransom_chain() -> UtxoChain:
    c = UtxoChain()
    c.coinbase("ransom", [(named("ransom"), 100_000_000), (named("s1"), 5_000_000), (named("s2"), 5_000_000)])
    coin, value = ("ransom", 0), 100_000_000
    for i in range(STEPS):
        c.next_block()
        pay = value * (1 + i % 4) // 100
        rest = value - pay - 1_000
        c.tx(f"p{i}", [coin], [(named(f"dep{i % 4}"), pay), (named(f"t{i}"), rest)])
        coin, value = (f"p{i}", 1), rest
    c.next_block()
    c.tx("handover", [coin], [(named("mule"), value - 1_000)])
    c.next_block()
    c.tx("mix", [("handover", 0), ("ransom", 1), ("ransom", 2)],
         [(named("m1"), 5_000_000), (named("m2"), 5_000_000), (named("m3"), 5_000_000),
          (named("mule2"), value - 15_003_000)])
    return c


@pytest.fixture()
def ransom(store: ChainStore) -> ChainStore:
    ransom_chain().write(store)
    assert detect_patterns(store, "btc").peel_chains == 1
    ensure_table(store)
    store.con.execute("INSERT INTO tx_patterns VALUES ('btc', 'mix', ?, 'coinjoin', 'test', 1.0, '{}')",
                      [STEPS + 3])
    for i in range(4):
        store.con.execute("INSERT INTO tags (chain, address, label, category, confidence_level, source) "
                          "VALUES ('btc', ?, 'Northwind Exchange', 'exchange', 80, 'test')", [A(f"dep{i}")])
    return store


def test_the_default_trace_follows_a_40_step_peel_chain_to_its_end(ransom: ChainStore) -> None:
    r = trace_funds(ransom, "btc", [A("ransom")])
    by_reason = {e.reason: e for e in r.endpoints if e.reason != "service"}
    assert set(by_reason) == {"coinjoin"} and by_reason["coinjoin"].hops == 2
    assert not r.stopped or {e.reason for e in r.stopped} <= {"service", "coinjoin"}
    at_exchange = [e for e in r.endpoints if e.reason == "service"]
    assert {NAME_OF[e.address or ""] for e in at_exchange} == {"dep0", "dep1", "dep2", "dep3"}
    assert all(e.hops == 1 and e.entity == "Northwind Exchange" for e in at_exchange)
    assert sum(e.tainted_value for e in r.endpoints) + r.fees["native"] == 100_000_000
    remainders = sorted((f for f in r.flows if NAME_OF.get(f.to_address or "", "").startswith("t")),
                        key=lambda f: f.steps)
    assert len(remainders) == STEPS
    assert [f.same_owner for f in remainders] == ["peel_chain"] * (STEPS - 1) + [None]
    assert all(f.hop == 0 for f in remainders[:-1]) and remainders[-1].hop == 1
    assert max(f.step for f in r.flows if f.step is not None) == STEPS + 1
    doc = r.to_dict()
    kept = next(f for f in doc["flows"] if f["to"] == A("t0"))
    assert (kept["hop"], kept["step"], kept["same_owner"]) == (0, 1, "peel_chain")
    assert "same owner: the next step of a detected peel chain (no hop)" in kept["evidence"]


def test_a_payment_to_another_owner_costs_a_hop(ransom: ChainStore) -> None:
    r = trace_funds(ransom, "btc", [A("ransom")])
    mule = next(f for f in r.flows if f.to_address == A("mule"))
    assert (mule.hop, mule.step, mule.same_owner) == (2, STEPS + 1, None)
    # one owner hand-over allowed: the exchange payments are reached, the mule is where it stops
    one = trace_funds(ransom, "btc", [A("ransom")], max_hops=1)
    assert {e.reason for e in one.stopped} == {"service", "max_hops"}
    stop = next(e for e in one.endpoints if e.reason == "max_hops")
    assert (NAME_OF[stop.address or ""], stop.hops) == ("t39", 1)


def test_max_steps_stops_the_trace_and_says_so(ransom: ChainStore) -> None:
    r = trace_funds(ransom, "btc", [A("ransom")], params=TraceParams(max_steps=10))
    stop = [e for e in r.endpoints if e.reason == "max_steps"]
    assert [(NAME_OF[e.address or ""], e.hops) for e in stop] == [("t9", 0)]
    assert {NAME_OF[e.address or ""] for e in r.endpoints if e.reason == "service"} == {
        "dep0", "dep1", "dep2", "dep3"}
    assert max(f.steps for f in r.flows) == 10
    doc = r.to_dict()
    assert doc["parameters"]["max_steps"] == 10
    assert [s["reason"] for s in doc["stopped"] if s["reason"] != "service"] == ["max_steps"]
    assert doc["totals"]["assets"]["native"]["by_reason"]["max_steps"] == str(stop[0].tainted_value)


def test_backward_hops_count_owners_too(ransom: ChainStore) -> None:
    r = trace_funds(ransom, "btc", [A("mule")], direction="backward")
    origin = next(e for e in r.endpoints if e.reason == "coinbase")
    # mule <- handover (a hand-over: 1) <- p39 (its remainder t39 ends the chain: a hand-over, 2)
    # <- p38 .. p0 (remainders that stay with the thief: no hop) <- the ransom's coinbase
    assert origin.hops == 2
    assert max(f.steps for f in r.flows) == STEPS + 1  # handover, then p39 .. p0


def test_trace_params_are_one_validated_value() -> None:
    p = TraceParams(direction="backward", policy="fifo", asset=" Native ")  # type: ignore[arg-type]
    assert (p.direction.value, p.policy.value, p.asset, p.max_hops, p.max_steps) == (
        "backward", "fifo", "native", 6, 200)
    assert TraceParams.from_dict(p.to_dict()) == p
    for bad in ({"max_hops": 51}, {"max_hops": -1}, {"max_steps": 0}, {"hub_degree": 0},
                {"min_value": -1}, {"since": 5, "until": 4}, {"policy": "proportional"}, {"hops": 3}):
        with pytest.raises(InputError):
            TraceParams.from_dict(bad)
    with pytest.raises(AttributeError):
        p.max_hops = 3  # type: ignore[misc]


@st.composite
def owned_chains(draw: st.DrawFn) -> tuple[UtxoChain, list[tuple[str, str]]]:
    """Random spends between a few reused addresses, some of them clustered together."""
    people = [A(n) for n in ("a", "b", "c", "d", "e", "f")]
    c = UtxoChain()
    unspent: list[tuple[tuple[str, int], int]] = []
    for i in range(draw(st.integers(1, 3))):
        value = draw(st.integers(10_000, 10**8))
        c.coinbase(f"cb{i}", [(draw(st.sampled_from(people)), value)])
        unspent.append(((f"cb{i}", 0), value))
    for i in range(draw(st.integers(1, 14))):
        if not unspent:
            break
        c.next_block()
        k = draw(st.integers(1, min(3, len(unspent))))
        picks = draw(st.lists(st.integers(0, len(unspent) - 1), min_size=k, max_size=k, unique=True))
        spent = [unspent[j] for j in picks]
        unspent = [u for j, u in enumerate(unspent) if j not in picks]
        total = max(sum(v for _, v in spent) - 100, 0)
        n_out = draw(st.integers(1, 3))
        cuts = sorted(draw(st.lists(st.integers(0, total), min_size=n_out - 1, max_size=n_out - 1)))
        values = [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]
        outs: list[Any] = [(draw(st.sampled_from(people)), v) for v in values]
        c.tx(f"t{i}", [o for o, _ in spent], outs)
        unspent.extend(((f"t{i}", n), v) for n, (_, v) in enumerate(outs))
    pairs = draw(st.lists(st.tuples(st.sampled_from(people), st.sampled_from(people)), max_size=3))
    return c, pairs


@settings(max_examples=30, deadline=None)
@given(owned_chains(), st.sampled_from(["haircut", "poison", "fifo"]),
       st.sampled_from(["forward", "backward"]))
def test_hops_never_exceed_steps(chain: tuple[UtxoChain, list[tuple[str, str]]], policy: str,
                                 direction: str) -> None:
    c, pairs = chain
    store = ChainStore(":memory:")
    try:
        c.write(store)
        store.con.execute("CREATE TABLE IF NOT EXISTS clusters (chain VARCHAR NOT NULL, "
                          "address_id BIGINT NOT NULL, cluster_id BIGINT NOT NULL, reason VARCHAR NOT NULL)")
        for x, y in pairs:  # each pair shares a cluster (named after the first)
            ids = [store.address_id("btc", a) for a in (x, y)]
            if None not in ids:
                for a in ids:
                    store.con.execute("INSERT INTO clusters SELECT 'btc', ?, ?, 'test' WHERE NOT EXISTS "
                                      "(SELECT 1 FROM clusters WHERE address_id = ?)", [a, ids[0], a])
        seed = next(A(a) for a in "abcdef" if store.address_id("btc", A(a)) is not None)
        r = trace_funds(store, "btc", [seed], policy=policy, direction=direction, max_hops=50,
                        hub_degree=10**6)
        for f in r.flows:
            assert f.step is not None and 0 <= f.hop <= f.step
            assert (f.same_owner is None) or f.same_owner in ("change", "peel_chain", "cluster")
        if policy != "poison":
            assert {e.reason for e in r.endpoints} <= {"unspent", "coinbase", "change", "not_in_store",
                                                         "unknown", "origin"}
    finally:
        store.close()
