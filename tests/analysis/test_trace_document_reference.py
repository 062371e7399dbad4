"""The trace document built in columns against a plain rendering of the same trace.

The forward flows' documents are built column by column (:mod:`fundtrail.analysis.tracing.forward_flows`);
here the same flows are rendered the plain way, one flow at a time from the graph (the links of its
transaction, its inputs, its output), sorted by Python tuples, and the two must be equal key for key and
in key order (compared as JSON text). The endpoints, where the trace stopped and the totals are checked
against a plain rendering of the result's endpoints, with and without the chain named.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from test_graph_persisted import CHAIN, world
from test_graph_trace import seeded_world

from fundtrail.analysis.change import detect_change
from fundtrail.analysis.tracing import trace_funds
from fundtrail.analysis.tracing.forward_flows import ForwardFlows
from fundtrail.analysis.tracing.owners import RULE_EVIDENCE, RULE_NAMES
from fundtrail.analysis.tracing.params import TraceParams
from fundtrail.analysis.tracing.result import STOP_REASONS, Endpoint, FlowSource, TraceResult
from fundtrail.store.chainstore import ChainStore


def plain_flow_documents(ff: ForwardFlows) -> list[dict[str, Any]]:
    """The flows' documents, one flow at a time (the rendering the columns replace)."""
    g = ff.g

    def text(address_id: int) -> str | None:
        found = g.address_texts([address_id]) if address_id >= 0 else {}
        return None if found is None else found.get(address_id)

    def txid(tx: int) -> str:
        return g.txids(np.array([tx]))[0]

    links: dict[int, list[tuple[int, int, int]]] = defaultdict(list)  # tx -> (input n, input row, amount)
    brought: dict[int, int] = {}
    for t, r, a in zip(ff.link_tx.tolist(), ff.link_row.tolist(), ff.link_amount.tolist(), strict=True):
        links[t].append((int(g.in_n[r]), r, int(a)))
        brought[r] = int(a)
    docs = []
    for t, row, amount, hop, step, owner in zip(ff.tx.tolist(), ff.row.tolist(), ff.amount.tolist(),
                                                 ff.hop.tolist(), ff.step.tolist(), ff.owner.tolist(),
                                                 strict=True):
        best = max(links[t], key=lambda link: (link[2], -link[0], link[1]))  # most value, lowest n
        doc: dict[str, Any] = {"txid": txid(t), "from": text(int(g.in_addr[best[1]])),
                               "to": text(int(g.out_addr[row])), "asset": "native",
                               "value": str(int(g.out_value[row])), "tainted_value": str(int(amount)),
                               "hop": int(hop), "step": int(step)}
        if owner:
            doc["same_owner"] = RULE_NAMES[owner]
        doc["output"] = int(g.out_n[row])
        in_rows = list(range(int(g.tx_in_ptr[t]), int(g.tx_in_ptr[t + 1])))
        if len(in_rows) > 1:
            doc["inputs"] = [{"input": int(g.in_n[r]), "address": text(int(g.in_addr[r])),
                              "value": str(int(g.in_value[r])) if g.in_resolved[r] else None,
                              "tainted_value": str(brought.get(r, 0))} for r in in_rows]
        evidence = []
        for _, r, a in sorted(links[t]):
            prev = int(g.in_prev[r])
            evidence.append(f"spent output {txid(int(g.out_tx[prev]))}:{int(g.out_n[prev])} ({a} tainted)")
        evidence.append(ff.rule)
        funders = {int(g.in_addr[r]) for r in in_rows}
        if g.out_addr[row] >= 0 and int(g.out_addr[row]) in funders:
            evidence.append("change heuristic: output pays an address that funded the transaction")
        heuristic = g.change_heuristic(row)
        if heuristic:
            evidence.append(f"change heuristic: {heuristic}")
        if owner:
            evidence.append(RULE_EVIDENCE[owner])
        doc["evidence"] = evidence
        docs.append(doc)
    docs.sort(key=lambda d: (d["hop"], d["step"], d["txid"], d["output"]))
    return docs


def plain_endpoint(e: Endpoint) -> dict[str, Any]:
    """An endpoint's document, field by field."""
    doc: dict[str, Any] = {} if e.chain is None else {"chain": e.chain}
    for key, value in (("address", e.address), ("txid", e.txid), ("asset", e.asset), ("cluster", e.cluster),
                       ("entity", e.entity), ("category", e.category), ("jurisdiction", e.jurisdiction),
                       ("tainted_value", str(e.tainted_value)), ("hops", e.hops), ("reason", e.reason)):
        doc[key] = value
    if e.sanctioned:
        doc["sanctioned"] = True
        doc["sanctions_lists"] = list(e.sanctioned)
        doc["sanctions"] = [{"address": a, "list": n, "listed_on": d} for a, n, d in e.sanctions]
    return doc


def plain_stopped(e: Endpoint) -> dict[str, Any]:
    """Where the trace was cut short, as ``stopped`` lists it."""
    doc: dict[str, Any] = {} if e.chain is None else {"chain": e.chain}
    if e.address is None and e.txid:
        doc["txid"] = e.txid
    else:
        doc["address"] = e.address
    doc.update(reason=e.reason, asset=e.asset, tainted_value=str(e.tainted_value), hops=e.hops)
    if e.degree is not None:
        doc["degree"] = e.degree
    if e.reason == "service":
        doc["entity"] = e.entity
        doc["category"] = e.category
    return doc


def plain_totals(result: TraceResult, n_flows: int) -> dict[str, Any]:
    """The totals, asset by asset, each with a pass over every endpoint."""
    def key(e: Endpoint) -> str:
        return e.asset if e.chain is None or e.chain == result.chain else f"{e.chain}:{e.asset}"

    assets = {}
    for asset in sorted(set(result.seeded) | {key(e) for e in result.endpoints} | set(result.fees)):
        by_reason: dict[str, int] = defaultdict(int)
        for e in result.endpoints:
            if key(e) == asset:
                by_reason[e.reason] += e.tainted_value
        assets[asset] = {"seeded": str(result.seeded.get(asset, 0)),
                         "endpoints": str(sum(by_reason.values())), "fees": str(result.fees.get(asset, 0)),
                         "overlap": str(result.overlap.get(asset, 0)),
                         "by_reason": {r: str(v) for r, v in sorted(by_reason.items())}}
    stopped = sum(e.reason in STOP_REASONS for e in result.endpoints)
    return {"flows": n_flows, "endpoints": len(result.endpoints), "stopped": stopped, "assets": assets}


def check_document(result: TraceResult) -> None:
    doc = result.to_dict()
    assert json.dumps(doc["endpoints"]) == json.dumps([plain_endpoint(e) for e in result.endpoints])
    assert json.dumps(doc["stopped"]) == json.dumps([plain_stopped(e) for e in result.endpoints
                                                     if e.reason in STOP_REASONS])
    assert json.dumps(doc["totals"]) == json.dumps(plain_totals(result, len(doc["flows"])))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), n_blocks=st.integers(2, 12),
       policy=st.sampled_from(["haircut", "poison", "fifo"]), change=st.booleans(),
       max_hops=st.integers(1, 8))
def test_flow_documents_from_columns_equal_the_plain_rendering(seed: int, n_blocks: int, policy: str,
                                                               change: bool, max_hops: int) -> None:
    with ChainStore(":memory:") as store:
        for seed_text in seeded_world(store, seed, n_blocks, change):
            result = trace_funds(store, CHAIN, [seed_text], policy=policy, max_hops=max_hops)
            source = result._flows
            assert isinstance(source, FlowSource)
            columns = source.documents.__self__  # type: ignore[attr-defined]
            assert isinstance(columns, ForwardFlows)
            doc = result.to_dict()
            assert json.dumps(doc["flows"]) == json.dumps(plain_flow_documents(columns))
            check_document(result)


def test_a_world_with_consolidations_and_change_has_every_kind_of_flow_document() -> None:
    """The random worlds above do reach the branches the columns handle apart (so the comparison means
    something): flows with inputs, with a same-owner rule, with change evidence."""
    kinds: set[str] = set()
    with ChainStore(":memory:") as store:
        blocks = world(5, 12)
        for batch in blocks:
            store.write_batch(batch)
        detect_change(store, CHAIN)
        for seed_text in [t for b in blocks[:3] for t in b.tx_txid]:
            result = trace_funds(store, CHAIN, [seed_text], max_hops=8)
            columns = result._flows.documents.__self__  # type: ignore[union-attr]
            flows = result.to_dict()["flows"]
            assert json.dumps(flows) == json.dumps(plain_flow_documents(columns))
            for f in flows:
                kinds.update(k for k in ("inputs", "same_owner") if k in f)
                kinds.update("change" for e in f["evidence"] if e.startswith("change heuristic"))
    assert kinds == {"inputs", "same_owner", "change"}


def test_endpoints_naming_their_chain_render_as_before() -> None:
    """Endpoints of other chains (a trace that crossed) put the chain first; totals key them by chain."""
    params = TraceParams.from_dict({})
    ends = (Endpoint("bc1qa", None, "native", "service", 7, 2, entity="X", category="exchange", chain="btc"),
            Endpoint("0xb", None, "USDC", "unspent", 5, 3, chain="eth"),
            Endpoint(None, "ab" * 32, "native", "coinjoin", 3, 1, degree=None, chain="btc"),
            Endpoint("bc1qc", None, "native", "hub", 4, 4, degree=900, sanctioned=("OFAC SDN",),
                     sanctions=(("bc1qc", "OFAC SDN", "2024-01-01"),)),
            Endpoint("bc1qd", None, "native", "unspent", 0, 1))
    result = TraceResult("btc", params, ("bc1qs",), ends, {"native": 19, "eth:USDC": 5}, {"native": 1})
    check_document(result)
    assert list(result.to_dict()["endpoints"][1])[:2] == ["chain", "address"]
