"""The flow graph of a trace document: the addresses it touches as nodes, the traced value between them as
edges, and how much of it lies beyond a given number of owner hops.

The dashboard draws this graph (``web/static/graph.js`` builds the same graph in the browser for a trace
it runs itself, ``graphOf``; the two follow the rules below, and a change to one is a change to both):

* one node per address (a CoinJoin endpoint, which names a transaction, is the node ``tx:<txid>``);
* one edge per (sender, receiver) pair, the traced value of its flows summed, self-payments left out;
* a flow of a transaction with several inputs (``inputs``) gives an edge from every input address to the
  flow's receiver, carrying the share of the flow's traced value that the input brought (in proportion
  to each input's traced value; the rounding rest goes to the ``from`` input, so the edges of a flow sum
  to its traced value). An input that brought no traced value still gets its edge, with value 0;
* endpoints carry who is behind them (entity, category), why the trace stopped there and the value;
* every node names its chain (the flow's or endpoint's ``chain``, else the document's), and the sanctions
  lists that name it (``sanctions`` of flows, ``sanctions_lists`` of endpoints), sorted; the graph lists
  the colour of each chain it holds (:data:`CHAIN_COLORS`, else :data:`OTHER_CHAIN_COLOR`);
* a conversion the trace followed (``conversions``) is its own edge from its in side (the pair, bridge or
  vault) to its out side (the recipient, perhaps on another chain), id ``c:<in txid>><out txid>><out
  address>``, carrying the tainted value out and ``conversion`` (kind, rule, confidence, candidates,
  anonymity set, in and out chain); a pool's candidate withdrawals are not drawn: they are listed, in the
  document's order, under the pool node's ``candidates`` (each the edge it would add) for the
  investigator to add one by one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

_TXID = re.compile(r"^(0x)?[0-9a-f]{64}$")

CHAIN_COLORS: dict[str, str] = {
    "btc": "#f7931a", "eth": "#627eea", "bsc": "#d4a20b", "polygon": "#8247e5", "arb": "#28a0f0",
    "arbitrum": "#28a0f0", "optimism": "#ff0420", "base": "#0052ff", "trx": "#c4161c", "ltc": "#345d9d",
    "bch": "#0ac18e", "doge": "#b59a30", "avax": "#e84142",
}
"""The colour of each chain in the graph (nodes are ringed in their chain's colour); ``graph.js`` holds the
same map."""
OTHER_CHAIN_COLOR = "#64748b"
"""The colour of a chain :data:`CHAIN_COLORS` does not name."""


def chain_color(chain: str | None) -> str:
    """The graph colour of a chain."""
    return CHAIN_COLORS.get(chain or "", OTHER_CHAIN_COLOR)


@dataclass(slots=True)
class GraphNode:
    """An address (or a CoinJoin transaction) of the graph, with the endpoint found there, if any."""

    id: str
    address: str | None = None
    txid: str | None = None
    seed: bool = False
    entity: str | None = None
    category: str | None = None
    reason: str | None = None
    asset: str | None = None
    tainted: int | None = None
    hops: int | None = None
    chain: str | None = None
    sanctions_lists: list[str] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    """A pool: its candidate withdrawals (each the conversion edge it would add), not drawn until chosen."""

    def to_dict(self) -> dict[str, Any]:
        """The node as a JSON object (the value as a string of base units)."""
        doc: dict[str, Any] = {"id": self.id, "address": self.address, "txid": self.txid, "seed": self.seed,
                               "entity": self.entity, "category": self.category, "reason": self.reason,
                               "asset": self.asset,
                               "tainted": None if self.tainted is None else str(self.tainted),
                               "hops": self.hops, "chain": self.chain,
                               "sanctions_lists": sorted(self.sanctions_lists)}
        if self.candidates:
            doc["candidates"] = [dict(c) for c in self.candidates]
        return doc


@dataclass(slots=True)
class GraphEdge:
    """Traced value from one address to another, over one or more transactions."""

    source: str
    target: str
    asset: str
    value: int
    hop: int
    txids: list[str] = field(default_factory=list)
    conversion: dict[str, Any] | None = None
    """A conversion edge: kind, rule, confidence, candidates, anonymity_set, in_chain, out_chain."""

    @property
    def id(self) -> str:
        """The edge's id: ``e:<source>><target>``, a conversion's ``c:<in txid>><out txid>><out address>``."""
        if self.conversion is not None and len(self.txids) == 2:
            return f"c:{self.txids[0]}>{self.txids[1]}>{self.target}"
        return f"e:{self.source}>{self.target}"

    def to_dict(self) -> dict[str, Any]:
        """The edge as a JSON object (the value as a string of base units)."""
        doc: dict[str, Any] = {"id": self.id, "source": self.source, "target": self.target,
                               "asset": self.asset, "value": str(self.value), "hop": self.hop,
                               "txids": list(self.txids)}
        if self.conversion is not None:
            doc["conversion"] = dict(self.conversion)
        return doc


@dataclass(frozen=True)
class FlowGraph:
    """The nodes and edges of a trace, in the order the document names them."""

    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]

    def node(self, node_id: str) -> GraphNode | None:
        """The node of an address (or ``tx:<txid>``), if the graph has it."""
        return next((n for n in self.nodes if n.id == node_id), None)

    def edges_from(self, source: str) -> list[GraphEdge]:
        """The edges leaving an address."""
        return [e for e in self.edges if e.source == source]

    def to_dict(self) -> dict[str, Any]:
        """The graph as JSON: ``{"nodes": [...], "edges": [...], "chains": {chain: colour}}``."""
        chains = sorted({n.chain for n in self.nodes if n.chain})
        return {"nodes": [n.to_dict() for n in self.nodes], "edges": [e.to_dict() for e in self.edges],
                "chains": {c: chain_color(c) for c in chains}}


def _amount(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def input_shares(flow: Mapping[str, Any]) -> list[tuple[str, int]]:
    """The senders of a flow with the part of its traced value each brought: every input address of a
    multi-input flow (in proportion to the traced value it brought in), else ``from`` with all of it."""
    total = _amount(flow.get("tainted_value") or flow.get("value"))
    sender = flow.get("from")
    inputs = [i for i in flow.get("inputs") or [] if isinstance(i, Mapping) and i.get("address")]
    if not inputs:
        return [(str(sender), total)] if sender else []
    brought = [_amount(i.get("tainted_value")) for i in inputs]
    whole = sum(brought)
    shares = [total * b // whole if whole else 0 for b in brought]
    rest = total - sum(shares)
    if rest:
        first = next((k for k, i in enumerate(inputs) if i["address"] == sender), None)
        shares[first if first is not None else brought.index(max(brought))] += rest
    merged: dict[str, int] = {}
    for i, share in zip(inputs, shares, strict=True):
        merged[str(i["address"])] = merged.get(str(i["address"]), 0) + share
    return list(merged.items())


def _is_address(seed: str) -> bool:
    return ":" not in seed and not _TXID.match(seed)


def flow_graph(doc: Mapping[str, Any]) -> FlowGraph:
    """The graph of a trace document (``fundtrail trace --format json``)."""
    nodes: dict[str, GraphNode] = {}
    edges: dict[tuple[str, str], GraphEdge] = {}
    home = str(doc.get("chain")) if doc.get("chain") else None

    def node(node_id: str, address: str | None = None, txid: str | None = None,
             chain: str | None = None) -> GraphNode:
        if node_id not in nodes:
            nodes[node_id] = GraphNode(node_id, address=address, txid=txid, chain=chain or home)
        return nodes[node_id]

    def listed(n: GraphNode, names: Iterable[Any]) -> None:
        for name in names:
            if str(name) not in n.sanctions_lists:
                n.sanctions_lists.append(str(name))

    def edge(source: str, target: str, asset: str, value: int, hop: int, txid: str) -> None:
        e = edges.get((source, target))
        if e is None:
            e = edges[(source, target)] = GraphEdge(source, target, asset, 0, hop)
        e.value += value
        e.hop = min(e.hop, hop)
        if txid and txid not in e.txids:
            e.txids.append(txid)

    flows = [f for f in doc.get("flows") or [] if isinstance(f, Mapping)]
    for flow in flows:
        to = flow.get("to")
        if not to:
            continue
        chain = flow.get("chain")
        for sender, share in input_shares(flow):
            if sender == to:
                continue
            node(sender, address=sender, chain=chain)
            node(str(to), address=str(to), chain=chain)
            edge(sender, str(to), str(flow.get("asset") or "native"), share, int(flow.get("hop") or 0),
                 str(flow.get("txid") or ""))
        for hit in flow.get("sanctions") or []:
            if isinstance(hit, Mapping) and str(hit.get("address")) in nodes:
                listed(nodes[str(hit["address"])], [hit.get("list")])
    for end in doc.get("endpoints") or []:
        address, txid = end.get("address"), end.get("txid")
        if not address and not txid:
            continue
        n = node(str(address) if address else f"tx:{txid}", address=address, txid=txid,
                 chain=end.get("chain"))
        listed(n, end.get("sanctions_lists") or [])
        n.entity, n.category, n.reason = end.get("entity"), end.get("category"), end.get("reason")
        n.asset, n.hops = end.get("asset"), end.get("hops")
        n.tainted = (n.tainted or 0) + _amount(end.get("tainted_value"))
        if not address:  # a CoinJoin: link the senders of flows into it, when the trace has them
            for flow in flows:
                if flow.get("txid") == txid and flow.get("from") and (flow["from"], n.id) not in edges:
                    node(str(flow["from"]), address=str(flow["from"]))
                    edge(str(flow["from"]), n.id, str(end.get("asset") or "native"),
                         _amount(end.get("tainted_value")), int(end.get("hops") or 0), str(txid))
    conversion_edges: list[GraphEdge] = []
    for c in doc.get("conversions") or []:
        if not isinstance(c, Mapping) or not isinstance(c.get("in"), Mapping) or not isinstance(
                c.get("out"), Mapping):
            continue
        side_in, side_out = c["in"], c["out"]
        source = node(str(side_in.get("address")), address=str(side_in.get("address")),
                      chain=side_in.get("chain"))
        about = {"kind": c.get("kind"), "rule": c.get("rule"), "confidence": c.get("confidence"),
                 "candidates": c.get("candidates"), "anonymity_set": c.get("anonymity_set"),
                 "in_chain": side_in.get("chain"), "out_chain": side_out.get("chain")}
        e = GraphEdge(source.id, str(side_out.get("address")), str(side_out.get("asset") or "native"),
                      _amount(c.get("tainted_out")), int(c.get("hop") or 0),
                      [str(side_in.get("txid")), str(side_out.get("txid"))], about)
        if c.get("kind") == "pool":
            source.candidates.append({**e.to_dict(), "chain": side_out.get("chain")})
        else:
            node(e.target, address=e.target, chain=side_out.get("chain"))
            conversion_edges.append(e)
    for seed in doc.get("seeds") or []:
        if _is_address(str(seed)):
            node(str(seed), address=str(seed)).seed = True
    return FlowGraph(tuple(nodes.values()), (*edges.values(), *conversion_edges))


def value_beyond(endpoints: Iterable[Mapping[str, Any]], hops: int) -> dict[str, int]:
    """Per asset, the traced value a trace found at endpoints more than ``hops`` owner hops out: what a
    trace limited to ``hops`` does not reach."""
    out: dict[str, int] = {}
    for e in endpoints:
        if int(e.get("hops") or 0) > hops:
            asset = str(e.get("asset") or "native")
            out[asset] = out.get(asset, 0) + _amount(e.get("tainted_value"))
    return out


def hop_profile(doc: Mapping[str, Any]) -> dict[str, Any]:
    """How a trace's value spreads over owner hops, for comparing it with a trace of another hop limit:
    its limit, its deepest endpoint, per asset the value beyond ``n`` hops for ``n`` = 0 .. deepest - 1
    (``beyond[asset][n]``; nothing lies beyond the deepest), and the value it left at its own limit."""
    endpoints = [e for e in doc.get("endpoints") or [] if isinstance(e, Mapping)]
    deepest = max((int(e.get("hops") or 0) for e in endpoints), default=0)
    beyond: dict[str, list[str]] = {}
    for n in range(deepest):
        for asset, value in value_beyond(endpoints, n).items():
            beyond.setdefault(asset, ["0"] * deepest)[n] = str(value)
    at_limit: dict[str, int] = {}
    for e in endpoints:
        if e.get("reason") == "max_hops":
            asset = str(e.get("asset") or "native")
            at_limit[asset] = at_limit.get(asset, 0) + _amount(e.get("tainted_value"))
    parameters = doc.get("parameters") or {}
    return {"max_hops": parameters.get("max_hops"), "deepest": deepest, "beyond": beyond,
            "at_limit": {asset: str(v) for asset, v in sorted(at_limit.items())}}
