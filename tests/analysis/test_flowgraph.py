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


def test_the_graph_script_builds_the_same_graph() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = (
        "const fs = require('fs');"
        "global.window = {fundtrailApi: {api() {}, coins: String, escapeHtml: String}};"
        f"eval(fs.readFileSync({json.dumps(str(GRAPH_JS))}, 'utf8'));"
        "process.stdout.write(JSON.stringify(window.FundTrailGraph.graphOf(JSON.parse(process.argv[1]))));"
    )
    done = subprocess.run([node, "-e", script, json.dumps(DOC)], capture_output=True, text=True, timeout=60,
                          check=True)
    assert json.loads(done.stdout) == flow_graph(DOC).to_dict()
