"""A trace over the graph: its document built from the engine's columns equals the one built from its Flow
objects (key order included), on random worlds, policies and seeds; and a trace touches only what it
reaches (no array the size of the graph)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_graph_persisted import CHAIN, world

from fundtrail.analysis.change import detect_change
from fundtrail.analysis.graph import utxo_graph
from fundtrail.analysis.tracing import trace_funds
from fundtrail.analysis.tracing.result import FlowSource
from fundtrail.store.chainstore import ChainStore


def seeded_world(store: ChainStore, seed: int, n_blocks: int, change: bool) -> list[str]:
    """Write a random world into ``store`` (with change detection when ``change``); up to four seed
    transactions of its first two blocks."""
    blocks = world(seed, n_blocks)
    for batch in blocks:
        store.write_batch(batch)
    if change:
        detect_change(store, CHAIN)
    return [t for b in blocks[:2] for t in b.tx_txid][:4]


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10**6), n_blocks=st.integers(2, 12), policy=st.sampled_from(["haircut", "poison",
                                                                                       "fifo"]),
       change=st.booleans(), max_hops=st.integers(1, 8))
def test_documents_from_columns_equal_documents_from_flows(seed: int, n_blocks: int, policy: str,
                                                           change: bool, max_hops: int) -> None:
    with ChainStore(":memory:") as store:
        for address in seeded_world(store, seed, n_blocks, change):
            columns = trace_funds(store, CHAIN, [address], policy=policy, max_hops=max_hops)
            assert isinstance(columns._flows, FlowSource)
            objects = trace_funds(store, CHAIN, [address], policy=policy, max_hops=max_hops)
            assert len(objects.flows) >= 0  # the Flow objects first: to_dict then renders them
            assert json.dumps(columns.to_dict()) == json.dumps(objects.to_dict())


def test_a_trace_allocates_nothing_the_size_of_the_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every array a trace makes is bounded by what it reaches (the graph here is much larger)."""
    with ChainStore(":memory:") as store:
        blocks = world(99, 60)
        for batch in blocks:
            store.write_batch(batch)
        g = utxo_graph(store, CHAIN)
        seed = blocks[-2].tx_txid[0]
        trace_funds(store, CHAIN, [seed], max_hops=2).to_dict()  # caches warm
        largest = [0]
        made = (np.full, np.zeros, np.ones, np.empty)
        for fn in made:
            def spy(shape: object, *args: object, _fn: object = fn, **kwargs: object) -> np.ndarray:
                largest[0] = max(largest[0], int(np.prod(shape)))  # type: ignore[call-overload]
                return _fn(shape, *args, **kwargs)  # type: ignore[operator,no-any-return]
            monkeypatch.setattr(np, fn.__name__, spy)
        trace_funds(store, CHAIN, [seed], max_hops=2).to_dict()
        assert 0 < largest[0] < min(len(g.out_tx), g.tx_count) // 4


def test_pays_a_funder_agrees_for_few_and_many_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-output look-up for a few outputs and the vectorised one for many agree on every output."""
    from fundtrail.analysis.tracing import owners

    with ChainStore(":memory:") as store:
        for batch in world(7, 40):
            store.write_batch(batch)
        g = utxo_graph(store, CHAIN)
        rows = np.arange(len(g.out_tx), dtype=np.int64)
        few = np.concatenate([owners.pays_a_funder(g, rows[i:i + 5]) for i in range(0, len(rows), 5)])
        monkeypatch.setattr(owners, "_FEW", 0)
        many = owners.pays_a_funder(g, rows)
        assert many.any() and not many.all()
        assert few.tolist() == many.tolist()
