"""Shortest value-carrying paths between two addresses.

UTXO chains: a path is a chain of transactions ``t_1 .. t_k`` where ``t_1`` spends a coin of the
source, each ``t_i`` pays an output that ``t_(i+1)`` spends, and ``t_k`` pays the target; it is found
by bidirectional breadth-first search over the transaction graph (integer arrays, one vectorised step
per hop and side, expanding the smaller side first). Account chains: a path is a chain of transfers
``source -> a_1 -> ... -> target`` in time order (each transfer after the one that funded its sender),
found by bidirectional search with one query per step.

Every step carries at least ``min_value``, falls inside ``since``/``until`` and passes no intermediate
address with more than ``hub_degree`` transactions. The options are a
:class:`~fundtrail.analysis.tracing.TraceParams`, as for a trace: a path has at most ``max_steps`` steps
(transactions or transfers) and at most ``max_hops`` owner hops, where a step that stays with its
sender (change, peel chain, co-spend cluster: :mod:`fundtrail.analysis.tracing.owners`) uses no hop.
Paths are the shortest ones in steps, at most ``limit``, in a deterministic order; the search finds the
fewest steps first and leaves out paths with more owner hops than ``max_hops``. Each is a list of flows
with txids, values, owner hop and step.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from fundtrail.analysis.graph import UtxoGraph, utxo_graph
from fundtrail.analysis.tracing import (
    RULE_NAMES,
    Flow,
    TraceParams,
    Transfer,
    address_degrees,
    address_id,
    address_texts,
    attribution_index,
    parse_seed,
    same_cluster,
    same_owner_rules,
    transfers,
)
from fundtrail.domain.chains import NATIVE_ASSET, get_chain
from fundtrail.errors import InputError
from fundtrail.store.chainstore import ChainStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PathsResult:
    """The paths found from ``source`` to ``target``."""

    chain: str
    source: str
    target: str
    parameters: dict[str, Any]
    paths: tuple[tuple[Flow, ...], ...]

    def to_dict(self) -> dict[str, Any]:
        """The ``fundtrail path --format json`` document."""
        return {"chain": self.chain, "source": self.source, "target": self.target,
                "parameters": self.parameters, "found": len(self.paths),
                "paths": [{"hops": p[-1].hop, "steps": len(p), "value": str(min(f.value for f in p)),
                           "flows": [_flow_doc(f) for f in p]} for p in self.paths]}


def _flow_doc(flow: Flow) -> dict[str, Any]:
    doc = flow.to_dict()
    doc.pop("tainted_value", None)
    return doc


def _address(store: ChainStore, chain: str, text: str, role: str) -> str:
    seed = parse_seed(store, chain, text)
    if seed.kind != "address":
        raise InputError(f"path search needs two addresses; the {role} {text!r} is a transaction")
    return seed.text


def _address_number(store: ChainStore, chain: str, text: str, g: UtxoGraph | None) -> int:
    """The interned id of an address: from the graph when it holds the texts, else from the store."""
    found = g.find_address(text) if g is not None else None
    return found if found is not None else address_id(store, chain, text)


PATH_LIMIT = 100
"""The most paths one search may return."""


def find_paths(store: ChainStore, chain: str, source: str, target: str, params: TraceParams | None = None,
               *, limit: int = 10, **options: Any) -> PathsResult:
    """Shortest value-carrying paths from ``source`` to ``target`` (addresses), at most ``limit``.

    ``params`` holds the options (keyword ``options``, the names of TraceParams, build it when absent).
    """
    if params is not None and options:
        raise InputError("give the path options either as TraceParams or as keywords, not both")
    trace = TraceParams.from_dict(options) if params is None else params
    info = get_chain(chain)
    chain = info.name
    if not 1 <= limit <= PATH_LIMIT:
        raise InputError(f"limit must be between 1 and {PATH_LIMIT}, got {limit}")
    max_hops, min_value, since, until = trace.max_hops, trace.min_value, trace.since, trace.until
    hub_degree, max_steps = trace.hub_degree, trace.max_steps
    src_text = _address(store, chain, source, "source")
    dst_text = _address(store, chain, target, "target")
    g = utxo_graph(store, chain) if info.is_utxo else None
    src = _address_number(store, chain, src_text, g)
    dst = _address_number(store, chain, dst_text, g)
    if src == dst:
        raise InputError("source and target are the same address")
    options = {**trace.path_options(), "limit": limit}
    if g is not None:
        search = _UtxoPaths(store, chain, g, max_steps, min_value, since, until, hub_degree, limit)
        paths = search.run(src, dst)
    else:
        accounts = _AccountPaths(store, chain, max_steps, min_value, since, until, hub_degree, limit)
        paths = accounts.run(src, dst)
    paths = [p for p in paths if p[-1].hop <= max_hops]
    log.info("paths %s %s -> %s: %d found", chain, src_text, dst_text, len(paths))
    return PathsResult(chain, src_text, dst_text, options, tuple(paths))


# ------------------------------------------------------------------------------------------ UTXO


class _UtxoPaths:
    def __init__(self, store: ChainStore, chain: str, g: UtxoGraph, max_hops: int, min_value: int,
                 since: int | None, until: int | None, hub_degree: int, limit: int) -> None:
        self.store, self.chain, self.g = store, chain, g
        self.max_hops, self.min_value, self.since, self.until = max_hops, min_value, since, until
        self.hub_degree, self.limit = hub_degree, limit

    def _edges_forward(self, txs: np.ndarray, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(parent tx, child tx, output row) for value-carrying spends of the outputs of ``txs``."""
        g = self.g
        rows = g.outputs_of(txs)
        return self._filter(rows, dst)

    def _edges_backward(self, txs: np.ndarray, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(parent tx, child tx, output row) for the outputs that ``txs`` spend."""
        g = self.g
        prev = g.in_prev[g.inputs_of(txs)]
        return self._filter(prev[prev >= 0], dst)

    def _filter(self, rows: np.ndarray, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        g = self.g
        child = g.out_spender[rows]
        ok = child >= 0
        ok &= g.out_value[rows] >= self.min_value if self.min_value else ok
        addrs = g.out_addr[rows]
        ok &= ~((g.degree(addrs) > self.hub_degree) & (addrs != dst))
        rows = rows[ok]
        child = child[ok]
        inside = g.in_window(child, self.since, self.until)
        rows, child = rows[inside], child[inside]
        return g.out_tx[rows], child, rows

    def run(self, src: int, dst: int) -> list[tuple[Flow, ...]]:
        g = self.g
        spend_rows = np.flatnonzero(g.in_addr == src)
        starts = np.unique(g.in_tx[spend_rows])
        starts = starts[g.in_window(starts, self.since, self.until)]
        pay_rows = np.flatnonzero(g.out_addr == dst)
        if self.min_value:
            pay_rows = pay_rows[g.out_value[pay_rows] >= self.min_value]
        ends = np.unique(g.out_tx[pay_rows])
        ends = ends[g.in_window(ends, self.since, self.until)]
        fdist = {int(t): 1 for t in starts.tolist()}
        bdist = {int(t): 1 for t in ends.tolist()}
        fparents: dict[int, list[tuple[int, int]]] = {}
        bchildren: dict[int, list[tuple[int, int]]] = {}
        ffront, bfront = starts, ends
        fdepth = bdepth = 1
        best = None
        while True:
            meet = set(fdist) & set(bdist)
            if meet:
                best = min(fdist[m] + bdist[m] - 1 for m in meet)
                break
            if fdepth + bdepth - 1 >= self.max_hops or (len(ffront) == 0 and len(bfront) == 0):
                break
            forward_side = len(bfront) == 0 or (len(ffront) != 0 and len(ffront) <= len(bfront))
            if forward_side:
                parent, child, rows = self._edges_forward(ffront, dst)
                new = []
                for p, c, r in zip(parent.tolist(), child.tolist(), rows.tolist(), strict=True):
                    if c not in fdist:
                        fdist[c] = fdepth + 1
                        new.append(c)
                    if fdist[c] == fdepth + 1:
                        fparents.setdefault(c, []).append((p, r))
                fdepth += 1
                ffront = np.unique(np.array(new, dtype=np.int64))
            else:
                parent, child, rows = self._edges_backward(bfront, dst)
                new = []
                for p, c, r in zip(parent.tolist(), child.tolist(), rows.tolist(), strict=True):
                    if p not in bdist:
                        bdist[p] = bdepth + 1
                        new.append(p)
                    if bdist[p] == bdepth + 1:
                        bchildren.setdefault(p, []).append((c, r))
                bdepth += 1
                bfront = np.unique(np.array(new, dtype=np.int64))
        if best is None or best > self.max_hops:
            return []
        meet_nodes = sorted(m for m in set(fdist) & set(bdist) if fdist[m] + bdist[m] - 1 == best)
        found: list[tuple[list[int], list[int]]] = []
        for m in meet_nodes:
            for head_txs, head_rows in self._prefixes(m, fdist, fparents):
                for tail_txs, tail_rows in self._suffixes(m, bdist, bchildren):
                    found.append((head_txs + tail_txs, head_rows + tail_rows))
                    if len(found) >= self.limit:
                        return [self._flows(txs, rows, src, dst) for txs, rows in found]
        return [self._flows(txs, rows, src, dst) for txs, rows in found]

    def _best_edges(self, edges: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """One edge per neighbour transaction: its largest output (lowest n on ties)."""
        g = self.g
        best: dict[int, int] = {}
        for tx, row in edges:
            cur = best.get(tx)
            if cur is None or ((int(g.out_value[row]), -int(g.out_n[row]))
                               > (int(g.out_value[cur]), -int(g.out_n[cur]))):
                best[tx] = row
        return sorted(best.items())

    def _prefixes(self, tx: int, fdist: dict[int, int],
                  fparents: dict[int, list[tuple[int, int]]]) -> Iterator[tuple[list[int], list[int]]]:
        """Paths from a start transaction to ``tx``: the transactions and the outputs between them."""
        if fdist[tx] == 1:
            yield [tx], []
            return
        for parent, row in self._best_edges(fparents.get(tx, [])):
            for txs, rows in self._prefixes(parent, fdist, fparents):
                yield [*txs, tx], [*rows, row]

    def _suffixes(self, tx: int, bdist: dict[int, int],
                  bchildren: dict[int, list[tuple[int, int]]]) -> Iterator[tuple[list[int], list[int]]]:
        """Paths from after ``tx`` to an end transaction: the transactions and the outputs leading in."""
        if bdist[tx] == 1:
            yield [], []
            return
        for child, row in self._best_edges(bchildren.get(tx, [])):
            for txs, rows in self._suffixes(child, bdist, bchildren):
                yield [child, *txs], [row, *rows]

    def _flows(self, txs: list[int], rows: list[int], src: int, dst: int) -> tuple[Flow, ...]:
        """Flows of a path: output ``rows[i]`` of ``txs[i]`` is spent by ``txs[i+1]``; the last pays dst."""
        g = self.g
        last = g.outputs_of(np.array([txs[-1]])).tolist()
        pay = [r for r in last if g.out_addr[r] == dst and g.out_value[r] >= self.min_value]
        rows = [*rows, max(pay, key=lambda r: (int(g.out_value[r]), -int(g.out_n[r])))]
        spent_from = [r for r in g.inputs_of(np.array([txs[0]])).tolist() if g.in_addr[r] == src]
        txids = g.txids(np.array(txs, dtype=np.int64))
        texts = address_texts(self.store, self.chain, [src, *[int(g.out_addr[r]) for r in rows]])
        rules = same_owner_rules(g, attribution_index(self.store, self.chain), np.array(rows, dtype=np.int64))
        hop = 0
        flows = []
        for i, (txid, row) in enumerate(zip(txids, rows, strict=True)):
            if i == 0:
                first = spent_from[0]
                prev = int(g.in_prev[first])
                spent = (f"{g.txids(np.array([g.out_tx[prev]]))[0]}:{int(g.out_n[prev])}" if prev >= 0
                         else f"input {int(g.in_n[first])}")
                evidence = (f"spends output {spent} of the source",)
                from_address = texts.get(src)
            else:
                evidence = (f"spends output {txids[i - 1]}:{int(g.out_n[rows[i - 1]])}",)
                from_address = texts.get(int(g.out_addr[rows[i - 1]]))
            value = int(g.out_value[row])
            kept = int(rules[i])
            hop += 0 if kept else 1
            flows.append(Flow(txid, from_address, texts.get(int(g.out_addr[row])), NATIVE_ASSET, value, value,
                              hop, evidence, output=int(g.out_n[row]), step=i + 1,
                              same_owner=RULE_NAMES.get(kept)))
        return tuple(flows)


# --------------------------------------------------------------------------------------- accounts


class _AccountPaths:
    def __init__(self, store: ChainStore, chain: str, max_hops: int, min_value: int, since: int | None,
                 until: int | None, hub_degree: int, limit: int) -> None:
        self.store, self.chain = store, chain
        self.max_hops, self.min_value, self.since, self.until = max_hops, min_value, since, until
        self.hub_degree, self.limit = hub_degree, limit
        self.degree: dict[int, int] = {}

    def _usable(self, tr: Transfer) -> bool:
        return (tr.kind in ("native", "internal", "token") and tr.src >= 0 and tr.dst >= 0
                and tr.value >= max(self.min_value, 1) and tr.src != tr.dst
                and (self.since is None or tr.time >= self.since)
                and (self.until is None or tr.time <= self.until))

    def _hubs(self, ids: set[int], keep: set[int]) -> set[int]:
        new = sorted(i for i in ids if i not in self.degree)
        if new:
            found = address_degrees(self.store, self.chain, new)
            for i in new:
                self.degree[i] = found.get(i, 0)
        return {i for i in ids if self.degree.get(i, 0) > self.hub_degree and i not in keep}

    def _side(self, ids: list[int], column: str) -> list[Transfer]:
        if not ids:
            return []
        placeholders = ", ".join("?" for _ in ids)
        return [tr for tr in transfers(self.store, self.chain, f"t.{column} IN ({placeholders})", list(ids))
                if self._usable(tr)]

    def run(self, src: int, dst: int) -> list[tuple[Flow, ...]]:
        # forward: earliest arrival per address and the transfer that achieved it
        arrive: dict[int, tuple[Any, ...]] = {src: (-1,)}
        fvia: dict[int, Transfer] = {}
        fdist = {src: 0}
        depart: dict[int, tuple[Any, ...]] = {dst: (2**62,)}
        bvia: dict[int, Transfer] = {}
        bdist = {dst: 0}
        ffront, bfront = [src], [dst]
        fdepth = bdepth = 0
        while True:
            meet = [m for m in set(fdist) & set(bdist) if arrive[m] < depart[m]]
            if meet:
                break
            if fdepth + bdepth >= self.max_hops or (not ffront and not bfront):
                return []
            if bfront == [] or (ffront and len(ffront) <= len(bfront)):
                new: list[int] = []
                for tr in sorted(self._side(ffront, "from_id"), key=lambda x: x.key):
                    if tr.key > arrive[tr.src] and fdist.get(tr.src) == fdepth and tr.dst not in fdist:
                        arrive[tr.dst], fvia[tr.dst], fdist[tr.dst] = tr.key, tr, fdepth + 1
                        new.append(tr.dst)
                fdepth += 1
                hubs = self._hubs(set(new), {dst})
                ffront = sorted(set(new) - hubs)
            else:
                new = []
                for tr in sorted(self._side(bfront, "to_id"), key=lambda x: x.key, reverse=True):
                    if tr.key < depart[tr.dst] and bdist.get(tr.dst) == bdepth and tr.src not in bdist:
                        depart[tr.src], bvia[tr.src], bdist[tr.src] = tr.key, tr, bdepth + 1
                        new.append(tr.src)
                bdepth += 1
                hubs = self._hubs(set(new), {src})
                bfront = sorted(set(new) - hubs)
        best = min(fdist[m] + bdist[m] for m in meet)
        chosen = sorted(m for m in meet if fdist[m] + bdist[m] == best)[: self.limit]
        paths = []
        for m in chosen:
            steps: list[Transfer] = []
            node = m
            while node != src:
                steps.insert(0, fvia[node])
                node = fvia[node].src
            node = m
            while node != dst:
                steps.append(bvia[node])
                node = bvia[node].dst
            paths.append(steps)
        ids = {i for p in paths for tr in p for i in (tr.src, tr.dst)}
        texts = address_texts(self.store, self.chain, ids)
        att = attribution_index(self.store, self.chain)
        found = []
        for p in paths:
            flows, hop = [], 0
            for i, tr in enumerate(p):
                kept = same_cluster(att, tr.src, tr.dst)
                hop += 0 if kept else 1
                evidence = (f"{tr.kind} transfer #{tr.index} in block {tr.height}",)
                flows.append(Flow(tr.txid or f"block:{tr.height}", texts.get(tr.src), texts.get(tr.dst),
                                  tr.asset, tr.value, tr.value, hop, evidence,
                                  index=tr.index, kind=tr.kind, step=i + 1,
                                  same_owner="cluster" if kept else None))
            found.append(tuple(flows))
        return found
