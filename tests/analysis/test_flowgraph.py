"""The flow graph of a trace document (``fundtrail.analysis.flowgraph``), and its twin in the dashboard's
graph script (``graphOf`` in ``web/static/graph.js``), which must build the same graph."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fundtrail.analysis.flowgraph import flow_graph, hop_profile, input_shares, value_beyond

GRAPH_JS = Path(__file__).resolve().parents[2] / "src" / "fundtrail" / "web" / "static" / "graph.js"

# A, B and C (the seeds) pay together into T (one transaction, two outputs: T and change back to A);
# T pays the exchange X, which is where the trace stops; an outside input O (no traced value) joins A's.
DOC: dict[str, Any] = {
    "chain": "btc", "seeds": ["A", "B", "C"], "parameters": {"max_hops": 3},
    "flows": [
        {"txid": "t1", "from": "B", "to": "T", "asset": "native", "value": "100", "tainted_value": "100",
         "hop": 1, "inputs": [{"input": 0, "address": "A", "value": "30", "tainted_value": "30"},
                              {"input": 1, "address": "B", "value": "50", "tainted_value": "50"},
                              {"input": 2, "address": "C", "value": "20", "tainted_value": "20"},
                              {"input": 3, "address": "O", "value": "7", "tainted_value": "0"},
                              {"input": 4, "address": None, "value": None, "tainted_value": "0"}]},
        {"txid": "t1", "from": "B", "to": "A", "asset": "native", "value": "7", "tainted_value": "7",
         "hop": 0, "inputs": [{"input": 0, "address": "A", "value": "30", "tainted_value": "30"},
                              {"input": 1, "address": "B", "value": "50", "tainted_value": "50"},
                              {"input": 2, "address": "C", "value": "20", "tainted_value": "20"}]},
        {"txid": "t2", "from": "T", "to": "X", "asset": "native", "value": "99", "tainted_value": "99",
         "hop": 2},
    ],
    "endpoints": [
        {"address": "X", "txid": None, "asset": "native", "entity": "Northwind Exchange",
         "category": "exchange", "tainted_value": "99", "hops": 2, "reason": "service"},
        {"address": "A", "txid": None, "asset": "native", "entity": None, "category": None,
         "tainted_value": "7", "hops": 0, "reason": "unspent"},
    ],
}


# Across chains: S (btc) pays the memo vault V; the conversion pays D on eth, D swaps at pair P (same chain)
# and deposits into pool L; two candidate withdrawals (W1 linked by the same address, W2 by a rare gas
# price); the bridge-flow recipient R is on a sanctions list.
CROSS: dict[str, Any] = {
    "chain": "btc", "seeds": ["S"], "parameters": {"max_hops": 6},
    "flows": [
        {"chain": "btc", "txid": "b1", "from": "S", "to": "V", "asset": "native", "value": "100",
         "tainted_value": "100", "hop": 1},
        {"chain": "eth", "txid": "e2", "from": "D", "to": "P", "asset": "0xa", "value": "10",
         "tainted_value": "10", "hop": 2},
        {"chain": "eth", "txid": "e3", "from": "D", "to": "L", "asset": "0xb", "value": "9",
         "tainted_value": "9", "hop": 3},
        {"chain": "eth", "txid": "e5", "from": "W1", "to": "R", "asset": "native", "value": "4",
         "tainted_value": "4", "hop": 4, "sanctioned": True, "sanctions_lists": ["OFAC SDN"],
         "sanctions": [{"address": "R", "list": "OFAC SDN", "listed_on": "2024-01-01"}]},
    ],
    "endpoints": [
        {"chain": "eth", "address": "R", "txid": None, "asset": "native", "entity": None, "category": None,
         "tainted_value": "4", "hops": 4, "reason": "unspent", "sanctioned": True,
         "sanctions_lists": ["EU", "OFAC SDN"]},
        {"chain": "eth", "address": "L", "txid": None, "asset": "native", "entity": None,
         "category": "mixing_service", "tainted_value": "1", "hops": 3, "reason": "unspent"},
    ],
    "conversions": [
        {"kind": "bridge", "rule": "thorchain-memo", "confidence": 0.99, "candidates": 1,
         "in": {"chain": "btc", "txid": "b1", "address": "V", "asset": "native", "value": "100"},
         "out": {"chain": "eth", "txid": "e1", "address": "D", "asset": "0xa", "value": "10"},
         "tainted_in": "100", "tainted_out": "10", "hop": 1, "step": 2, "followed": "followed"},
        {"kind": "swap", "rule": "uniswap-v2-swap", "confidence": 0.99, "candidates": 1,
         "in": {"chain": "eth", "txid": "e2", "address": "P", "asset": "0xa", "value": "10"},
         "out": {"chain": "eth", "txid": "e2", "address": "D", "asset": "0xb", "value": "9"},
         "tainted_in": "10", "tainted_out": "9", "hop": 2, "step": 3, "followed": "followed"},
        {"kind": "pool", "rule": "pool-same-address", "confidence": 0.9, "candidates": 2, "anonymity_set": 7,
         "in": {"chain": "eth", "txid": "e3", "address": "L", "asset": "native", "value": "9"},
         "out": {"chain": "eth", "txid": "e4", "address": "W1", "asset": "native", "value": "4"},
         "tainted_in": "4", "tainted_out": "4", "hop": 3, "step": 4, "followed": "followed"},
        {"kind": "pool", "rule": "pool-gas-price", "confidence": 0.6, "candidates": 2, "anonymity_set": 7,
         "in": {"chain": "eth", "txid": "e3", "address": "L", "asset": "native", "value": "9"},
         "out": {"chain": "eth", "txid": "e6", "address": "W2", "asset": "native", "value": "4"},
         "tainted_in": "4", "tainted_out": "4", "hop": 3, "step": 4, "followed": "nothing tainted"},
    ],
}


def test_conversions_are_edges_and_a_pool_lists_its_candidates() -> None:
    graph = flow_graph(CROSS)
    conversions = [(e.source, e.target, e.value, e.conversion["kind"], e.conversion["rule"],
                    e.conversion["confidence"], e.conversion["in_chain"], e.conversion["out_chain"])
                   for e in graph.edges if e.conversion]
    assert conversions == [("V", "D", 10, "bridge", "thorchain-memo", 0.99, "btc", "eth"),
                           ("P", "D", 9, "swap", "uniswap-v2-swap", 0.99, "eth", "eth")]
    assert graph.to_dict()["edges"][-2]["id"] == "c:b1>e1>D"
    pool = graph.node("L")
    assert pool is not None and [(c["target"], c["conversion"]["rule"], c["conversion"]["anonymity_set"],
                                  c["chain"], c["id"]) for c in pool.candidates] == [
        ("W1", "pool-same-address", 7, "eth", "c:e3>e4>W1"), ("W2", "pool-gas-price", 7, "eth", "c:e3>e6>W2")]
    assert graph.node("W2") is None  # not drawn until the investigator adds it
    assert {n.id: n.chain for n in graph.nodes} == {"S": "btc", "V": "btc", "D": "eth", "P": "eth",
                                                   "L": "eth", "W1": "eth", "R": "eth"}
    assert graph.to_dict()["chains"] == {"btc": "#f7931a", "eth": "#627eea"}
    r = graph.node("R")
    assert r is not None and r.to_dict()["sanctions_lists"] == ["EU", "OFAC SDN"]
    assert graph.to_dict()["nodes"][0]["sanctions_lists"] == []
    # a single-chain document: every node on the document's chain
    assert {n.chain for n in flow_graph(DOC).nodes} == {"btc"}


def test_every_input_of_a_multi_input_flow_sends_its_share() -> None:
    assert input_shares(DOC["flows"][0]) == [("A", 30), ("B", 50), ("C", 20), ("O", 0)]
    # 7 split 30:50:20 rounds down to 2, 3, 1; the rest goes to `from` (B), so the shares sum to 7
    assert input_shares(DOC["flows"][1]) == [("A", 2), ("B", 4), ("C", 1)]
    assert input_shares(DOC["flows"][2]) == [("T", 99)]


def test_graph_connects_every_seed_and_keeps_the_endpoint_amounts() -> None:
    graph = flow_graph(DOC)
    edges = {(e.source, e.target): e.value for e in graph.edges}
    assert edges == {("A", "T"): 30, ("B", "T"): 50, ("C", "T"): 20, ("O", "T"): 0, ("B", "A"): 4,
                     ("C", "A"): 1, ("T", "X"): 99}  # A -> A (its own change) is left out
    exchange = graph.node("X")
    assert exchange is not None and exchange.tainted == 99 and exchange.entity == "Northwind Exchange"
    assert {n.id for n in graph.nodes if n.seed} == {"A", "B", "C"}


def test_hop_profile_says_what_lies_beyond_each_hop_count() -> None:
    assert value_beyond(DOC["endpoints"], 1) == {"native": 99}
    assert hop_profile(DOC) == {"max_hops": 3, "deepest": 2, "beyond": {"native": ["99", "99"]},
                                "at_limit": {}}


@pytest.mark.parametrize("doc", [DOC, CROSS], ids=["one-chain", "across-chains"])
def test_the_graph_script_builds_the_same_graph(doc: dict[str, Any]) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = (
        "const fs = require('fs');"
        "global.window = {fundtrailApi: {api() {}, coins: String, escapeHtml: String}};"
        f"eval(fs.readFileSync({json.dumps(str(GRAPH_JS))}, 'utf8'));"
        "process.stdout.write(JSON.stringify(window.FundTrailGraph.graphOf(JSON.parse(process.argv[1]))));"
    )
    done = subprocess.run([node, "-e", script, json.dumps(doc)], capture_output=True, text=True, timeout=60,
                          check=True)
    assert json.loads(done.stdout) == flow_graph(doc).to_dict()
