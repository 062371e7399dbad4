"""The flows of a forward UTXO trace kept as columns, rendered as Flow objects or straight as documents.

One row per output that received traced value. Both renderings read the same columns. The documents are
built column by column: sorted once with numpy, each text and number formatted in one pass over its
column, the transaction-wide parts (txid, spent-output evidence, the inputs of a consolidation) made
once per transaction and expanded per flow, then one dict per flow. They equal
``[f.to_dict() for f in sorted(flows, key=Flow.sort_key)]`` key for key and in the same key order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np

from fundtrail.analysis.graph import UtxoGraph
from fundtrail.analysis.tracing.owners import RULE_EVIDENCE, RULE_NAMES, pays_a_funder
from fundtrail.analysis.tracing.result import Flow, FlowInput, FlowSource
from fundtrail.domain.chains import NATIVE_ASSET

Texts = Callable[[np.ndarray], list[str | None]]
"""Address strings for an array of address ids, in order (None for an id without one)."""

PAYS_A_FUNDER = "change heuristic: output pays an address that funded the transaction"


def primary_links(link_tx: np.ndarray, link_row: np.ndarray, link_amount: np.ndarray,
                  n_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per transaction (sorted), the link row that brought the most value (lowest n on ties)."""
    if len(link_tx) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    amount = link_amount
    if amount.dtype == object:  # amounts beyond int64: sort by rank
        amount = np.unique(amount, return_inverse=True)[1]
    order = np.lexsort((link_row, -n_of[link_row], amount, link_tx))
    tx = link_tx[order]
    last = np.ones(len(tx), dtype=bool)
    last[:-1] = tx[1:] != tx[:-1]
    return tx[last], link_row[order][last]


def text_ranks(texts: list[str]) -> np.ndarray:
    """The rank of each text in sorted order (equal texts share a rank)."""
    order = sorted(range(len(texts)), key=texts.__getitem__)
    rank = [0] * len(texts)
    r, previous = -1, None
    for i in order:
        if texts[i] != previous:
            r, previous = r + 1, texts[i]
        rank[i] = r
    return np.array(rank, dtype=np.int64)


def _strings(values: np.ndarray) -> list[str]:
    """Decimal strings of integers (exact also for object arrays of Python ints)."""
    return list(map(str, values.tolist()))


class ForwardFlows:
    """The flows of a forward trace: per flow its transaction, output row, traced amount, hop, step and
    same-owner rule, with the links (the input rows that brought traced value, and how much)."""

    __slots__ = ("_from_ids", "_suffixes", "amount", "g", "hop", "link_amount", "link_row", "link_tx",
                 "owner", "row", "rule", "step", "texts", "tx")

    def __init__(self, g: UtxoGraph, texts: Texts, rule: str, *, tx: np.ndarray, row: np.ndarray,
                 amount: np.ndarray, hop: np.ndarray, step: np.ndarray, owner: np.ndarray,
                 link_tx: np.ndarray, link_row: np.ndarray, link_amount: np.ndarray) -> None:
        self.g, self.texts, self.rule = g, texts, rule
        self.tx, self.row, self.amount, self.hop, self.step, self.owner = tx, row, amount, hop, step, owner
        self.link_tx, self.link_row, self.link_amount = link_tx, link_row, link_amount
        self._from_ids: np.ndarray | None = None
        self._suffixes: tuple[np.ndarray, list[tuple[str, ...]]] | None = None

    def source(self) -> FlowSource:
        """The flows as a :class:`FlowSource`: Flow objects or documents, each built when asked for."""
        return FlowSource(self.flows, self.documents)

    # ---- columns shared by both renderings

    def from_ids(self) -> np.ndarray:
        """Per flow, the address of the link that brought its transaction the most traced value."""
        if self._from_ids is None:
            g = self.g
            ptx, prow = primary_links(self.link_tx, self.link_row, self.link_amount, g.in_n)
            self._from_ids = (g.in_addr[prow[np.searchsorted(ptx, self.tx)]] if len(ptx)
                              else self.tx * 0 - 1)
        return self._from_ids

    def suffixes(self) -> tuple[np.ndarray, list[tuple[str, ...]]]:
        """The evidence tail of each flow (what follows its transaction's evidence: the change heuristics,
        the same-owner rule) as an index per flow, and the few distinct tails by index."""
        if self._suffixes is None:
            g = self.g
            change = pays_a_funder(g, self.row).astype(np.int64)
            code = g.out_change[self.row].astype(np.int64)
            key = (self.owner.astype(np.int64) * (len(g.change_names) + 1) + code) * 2 + change
            keys, index = np.unique(key, return_inverse=True)
            names = g.change_names
            tails = []
            for k in keys.tolist():
                rest, is_change = divmod(k, 2)
                kept, c = divmod(rest, len(names) + 1)
                tail: tuple[str, ...] = (PAYS_A_FUNDER,) if is_change else ()
                if c:
                    tail += (f"change heuristic: {names[c - 1]}",)
                if kept:
                    tail += (RULE_EVIDENCE[kept],)
                tails.append(tail)
            self._suffixes = (index.reshape(-1), tails)
        return self._suffixes

    def spent_evidence(self, txs: np.ndarray) -> list[tuple[str, ...]]:
        """For each of ``txs`` (sorted, unique): the tainted outputs its inputs spent, in input order,
        then the policy's rule."""
        g = self.g
        link_tx, link_row = self.link_tx, self.link_row
        order = np.lexsort((g.in_n[link_row], link_tx))
        tx, row = link_tx[order], link_row[order]
        prev = g.in_prev[row]
        ptx = g.out_tx[prev]
        uptx, inverse = np.unique(ptx, return_inverse=True)
        ptxids = g.txids(uptx)
        columns = zip(inverse.reshape(-1).tolist(), g.out_n[prev].tolist(),
                      self.link_amount[order].tolist(), strict=True)
        texts = [f"spent output {ptxids[p]}:{pn} ({a} tainted)" for p, pn, a in columns]
        starts = np.searchsorted(tx, txs).tolist()
        ends = np.searchsorted(tx, txs, side="right").tolist()
        rule = self.rule
        return [(*texts[a:b], rule) for a, b in zip(starts, ends, strict=True)]

    def input_columns(self, txs: np.ndarray) -> tuple[np.ndarray, list[int], list[int], list[str | None],
                                                        list[int | None], list[int]]:
        """The inputs of those of ``txs`` (sorted, unique) with more than one input, so that each sender of
        a consolidation is drawn: the transactions, then per input in order its row, n, address, value
        (None when the store does not hold the output it spends) and the traced value it brought."""
        g = self.g
        multi = txs[(g.tx_in_ptr[txs + 1] - g.tx_in_ptr[txs]) > 1]
        rows = g.inputs_of(multi)
        order = np.argsort(self.link_row, kind="stable")
        linked = self.link_row[order]
        at = np.searchsorted(linked, rows, side="right") - 1  # the last link of a row, as a dict would keep
        hit = (at >= 0) & (linked[np.maximum(at, 0)] == rows)
        tainted = np.zeros(len(rows), dtype=self.link_amount.dtype if len(self.link_amount) else np.int64)
        tainted[hit] = self.link_amount[order][at[hit]]
        values: list[Any] = g.in_value[rows].tolist()
        resolved = g.in_resolved[rows].tolist()
        return (multi, rows.tolist(), g.in_n[rows].tolist(), self.texts(g.in_addr[rows]),
                [int(v) if r else None for v, r in zip(values, resolved, strict=True)],
                [int(t) for t in tainted.tolist()])

    # ---- Flow objects

    def flows(self) -> list[Flow]:
        """The Flow objects, in column order."""
        g = self.g
        utx, inverse = np.unique(self.tx, return_inverse=True)
        inverse = inverse.reshape(-1)
        spent = self.spent_evidence(utx)
        suffix, tails = self.suffixes()
        evidence = [spent[u] + tails[s] for u, s in zip(inverse.tolist(), suffix.tolist(), strict=True)]
        multi, _, ns, addresses, values, tainted = self.input_columns(utx)
        inputs: dict[int, list[FlowInput]] = defaultdict(list)
        in_tx = g.in_tx[g.inputs_of(multi)].tolist()
        for t, n, address, value, amount in zip(in_tx, ns, addresses, values, tainted, strict=True):
            inputs[t].append(FlowInput(n, address, value, amount))
        by_tx = {t: tuple(items) for t, items in inputs.items()}
        columns = zip(self.tx.tolist(), g.txids(self.tx), self.texts(self.from_ids()),
                      self.texts(g.out_addr[self.row]), g.out_value[self.row].tolist(), self.amount.tolist(),
                      self.hop.tolist(), self.step.tolist(), self.owner.tolist(), g.out_n[self.row].tolist(),
                      evidence, strict=True)
        return [Flow(txid, src, dst, NATIVE_ASSET, value, a, h, ev, output=n, step=s,
                     same_owner=RULE_NAMES.get(kept), inputs=by_tx.get(t, ()))
                for t, txid, src, dst, value, a, h, s, kept, n, ev in columns]

    # ---- documents

    def order(self, utx: np.ndarray, inverse: np.ndarray, txids: list[str]) -> np.ndarray:
        """The flows' positions in :meth:`Flow.sort_key` order: hop, step, txid, output."""
        rank = text_ranks(txids)[inverse]
        return np.lexsort((self.g.out_n[self.row], rank, self.step, self.hop))

    def documents(self) -> list[dict[str, Any]]:
        """The flows' documents (``Flow.to_dict``), sorted as the flows are, without making Flow objects."""
        g = self.g
        if len(self.tx) == 0:
            return []
        utx, inverse = np.unique(self.tx, return_inverse=True)
        inverse = inverse.reshape(-1)
        u_txids = g.txids(utx)
        o = self.order(utx, inverse, u_txids)
        u = inverse[o]
        rows = self.row[o]
        u_list = u.tolist()
        txids = [u_txids[i] for i in u_list]
        spent = self.spent_evidence(utx)
        suffix, tails = self.suffixes()
        evidence = [[*spent[i], *tails[s]] for i, s in zip(u_list, suffix[o].tolist(), strict=True)]
        inputs = self._input_docs(utx, u)
        names = list(map(RULE_NAMES.get, self.owner[o].tolist()))
        columns = zip(txids, self.texts(self.from_ids()[o]), self.texts(g.out_addr[rows]),
                      _strings(g.out_value[rows]), _strings(self.amount[o]), self.hop[o].tolist(),
                      self.step[o].tolist(), names, g.out_n[rows].tolist(), inputs, evidence, strict=True)
        asset = NATIVE_ASSET
        docs: list[dict[str, Any]] = []
        append = docs.append
        for txid, src, dst, value, amount, hop, step, name, n, items, ev in columns:
            doc: dict[str, Any] = {"txid": txid, "from": src, "to": dst, "asset": asset, "value": value,
                                   "tainted_value": amount, "hop": hop, "step": step}
            if name is not None:
                doc["same_owner"] = name
            doc["output"] = n
            if items:
                doc["inputs"] = items
            doc["evidence"] = ev
            append(doc)
        return docs

    def _input_docs(self, utx: np.ndarray, u: np.ndarray) -> list[list[dict[str, Any]] | None]:
        """Per flow (``u``: its transaction's position in ``utx``), the documents of its transaction's
        inputs when it has several (``FlowInput.to_dict``), a fresh list of fresh dicts for each flow."""
        multi, _, ns, addresses, values, tainted = self.input_columns(utx)
        out: list[list[dict[str, Any]] | None] = [None] * len(u)
        if len(multi) == 0:
            return out
        protos = [{"input": n, "address": a, "value": None if v is None else str(v), "tainted_value": str(t)}
                  for n, a, v, t in zip(ns, addresses, values, tainted, strict=True)]
        counts = self.g.tx_in_ptr[multi + 1] - self.g.tx_in_ptr[multi]
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        m = np.searchsorted(multi, utx[u])  # each flow's transaction among the multi-input ones
        has = (m < len(multi)) & (multi[np.minimum(m, len(multi) - 1)] == utx[u])
        flows = np.flatnonzero(has)
        first, n_in = starts[m[flows]], counts[m[flows]]
        copy = dict.copy
        for f, a, k in zip(flows.tolist(), first.tolist(), n_in.tolist(), strict=True):
            out[f] = list(map(copy, protos[a:a + k]))
        return out
