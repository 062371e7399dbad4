"""The UTXO engine of tracing: taint over the transaction graph, hop by owner, step by transaction.

(1) The frontier of outputs is expanded one step (transaction) at a time on the chain's transaction
graph (integer arrays, :mod:`fundtrail.analysis.graph`), all outputs of a step at once, to find the
transactions the funds can reach within ``max_hops`` owner hand-overs and ``max_steps`` transactions;
(2) taint is propagated over those transactions in chain order (forward) or reverse chain order
(backward), level by level with numpy for haircut and poison, transaction by transaction for fifo, so
every transaction is computed once with all its tainted inputs. An output's hop is the fewest owner
hand-overs and its step the fewest transactions on any tainted path from the seeds; an output that
stays with its transaction's sender (:mod:`fundtrail.analysis.tracing.owners`) uses no hop.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fundtrail.analysis.graph import Snapshot, UtxoGraph, snapshot, take_texts, utxo_graph
from fundtrail.analysis.tracing.attribution import attribution_index
from fundtrail.analysis.tracing.forward_flows import ForwardFlows, primary_links
from fundtrail.analysis.tracing.owners import RULE_EVIDENCE, RULE_NAMES, pays_a_funder, same_owner_rules
from fundtrail.analysis.tracing.params import TraceParams
from fundtrail.analysis.tracing.queries import address_id, address_texts
from fundtrail.analysis.tracing.result import Endpoint, Flow, FlowSource, TraceResult, bulk
from fundtrail.analysis.tracing.seeds import Seed
from fundtrail.domain.chains import NATIVE_ASSET
from fundtrail.domain.taint import (
    TAINT,
    Coin,
    Direction,
    Lot,
    TaintPolicy,
    haircut_shares_grouped,
    lots_amount,
    propagate_back,
    propagate_tx,
)
from fundtrail.errors import NotFoundError
from fundtrail.store.chainstore import ChainStore

(OK, SERVICE, HUB, CHANGE, UNSPENT, COINJOIN, WINDOW, COINBASE, UNKNOWN, MAX_HOPS, MIN_VALUE,
 MAX_STEPS) = range(12)
_CODE_REASON = {SERVICE: "service", HUB: "hub", CHANGE: "change", UNSPENT: "unspent", COINJOIN: "coinjoin",
                WINDOW: "time_window", COINBASE: "coinbase", UNKNOWN: "unknown", MAX_HOPS: "max_hops",
                MIN_VALUE: "min_value", MAX_STEPS: "max_steps"}
_BIG_HOP = 1 << 40
_NEVER = np.iinfo(np.int16).max
"""Explore: the hop and step of an output or transaction not reached (limits stay below it)."""


class _Groups:
    """Consecutive groups of ``counts`` rows: exact sums and minimums per group (the group starts are
    computed once for every reduction over the same groups)."""

    __slots__ = ("n", "nonempty", "starts")

    def __init__(self, counts: np.ndarray) -> None:
        self.n = len(counts)
        self.nonempty = counts > 0
        self.starts = np.concatenate(([0], np.cumsum(counts)[:-1]))[self.nonempty]

    def sum(self, values: np.ndarray) -> np.ndarray:
        """Sum of each group (0 for an empty one)."""
        out = np.zeros(self.n, dtype=values.dtype if values.dtype == object else np.int64)
        if len(self.starts):
            out[self.nonempty] = np.add.reduceat(values, self.starts)
        return out

    def min(self, values: np.ndarray, empty: int) -> np.ndarray:
        """Minimum of each group (``empty`` for an empty one)."""
        out = np.full(self.n, empty, dtype=np.int64)
        if len(self.starts):
            out[self.nonempty] = np.minimum.reduceat(values, self.starts)
        return out


def _levels(graph: UtxoGraph, txs: np.ndarray, *, backward: bool) -> np.ndarray:
    """Dependency level of each transaction inside ``txs`` (sorted): parents inside come at lower levels.

    Forward a transaction depends on the transactions whose outputs it spends; backward on the
    transactions spending its outputs.
    """
    n = len(txs)
    level = np.zeros(n, dtype=np.int64)
    if n < 2:
        return level
    rows = graph.inputs_of(txs)
    child = np.repeat(np.arange(n), graph.tx_in_ptr[txs + 1] - graph.tx_in_ptr[txs])
    prev = graph.in_prev[rows]
    has = prev >= 0
    parent_tx = graph.out_tx[prev[has]]
    child = child[has]
    pos = np.searchsorted(txs, parent_tx)
    inside = (pos < n) & (txs[np.minimum(pos, n - 1)] == parent_tx)
    parent, child = pos[inside], child[inside]
    if backward:
        parent, child = child, parent
    if len(parent) == 0:
        return level
    while True:
        updated = level.copy()
        np.maximum.at(updated, child, level[parent] + 1)
        if np.array_equal(updated, level):
            return level
        level = updated


class _Sparse:
    """Values kept for the rows (outputs or transactions) a trace has touched: sorted keys and one array
    per value, so that a trace costs in proportion to what it touches, not to the graph."""

    def __init__(self, **dtypes: Any) -> None:
        self.keys = np.zeros(0, dtype=np.int64)
        self.names = tuple(dtypes)
        for name, dtype in dtypes.items():
            setattr(self, name, np.zeros(0, dtype=dtype))

    hop: np.ndarray
    step: np.ndarray
    code: np.ndarray
    owner: np.ndarray

    def add(self, keys: np.ndarray, **values: Any) -> None:
        """Add keys not held yet (sorted, unique) with their values (arrays or one value each)."""
        if len(keys) == 0:
            return
        at = np.searchsorted(self.keys, keys) + np.arange(len(keys))  # where each new key lands
        old = np.ones(len(self.keys) + len(keys), dtype=bool)
        old[at] = False
        for name in ("keys", *self.names):
            kept = getattr(self, name)
            merged = np.empty(len(old), dtype=kept.dtype)
            merged[old] = kept
            merged[at] = keys if name == "keys" else values[name]
            setattr(self, name, merged)

    def at(self, keys: np.ndarray) -> np.ndarray:
        """Positions of held keys."""
        return np.searchsorted(self.keys, keys)

    def missing(self, keys: np.ndarray) -> np.ndarray:
        """The keys not held yet (sorted, unique)."""
        wanted = np.unique(keys)
        if len(self.keys) == 0 or len(wanted) == 0:
            return wanted
        pos = np.minimum(np.searchsorted(self.keys, wanted), len(self.keys) - 1)
        fresh: np.ndarray = wanted[self.keys[pos] != wanted]
        return fresh


@dataclass
class _Local:
    """The outputs a trace touches, sorted by row, with their stop codes and taint.

    Seeds keep their full value as taint; what reaches them from other seeds is kept in ``arrived``.
    """

    rows: np.ndarray
    code: np.ndarray
    exempt: np.ndarray
    taint: np.ndarray
    hop: np.ndarray
    step: np.ndarray
    owner: np.ndarray
    is_seed: np.ndarray
    arrived: np.ndarray
    lots: dict[int, tuple[Lot, ...]] = field(default_factory=dict)

    def find(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions of ``rows`` in the local arrays and whether each is there."""
        pos = np.searchsorted(self.rows, rows)
        n = len(self.rows)
        clipped = np.minimum(pos, max(n - 1, 0))
        found = (rows >= 0) & (pos < n) & (self.rows[clipped] == rows) if n else np.zeros(len(rows), bool)
        return clipped, found


class UtxoTrace:
    """One trace on a UTXO chain (forward or backward)."""

    def __init__(self, store: ChainStore, chain: str, params: TraceParams,
                 snap: Snapshot | None = None) -> None:
        self.store = store
        self.chain = chain
        self.p = params
        snap = snapshot(store, chain) if snap is None else snap
        self.g = utxo_graph(store, chain, snap)
        self.att = attribution_index(store, chain, snap)
        self.dtype = object if self.g.out_value.dtype == object else np.int64
        self.fee_taint = 0
        self.overlap = 0
        self.seeded = 0
        self.reached_steps = 0
        self.seed_pos = np.zeros(0, dtype=np.int64)
        # transactions that carried value, with their hop; the rows that brought it (forward: tainted
        # inputs, backward: outputs of interest) with the amounts; backward: what each input supplied
        self.live_chunks: list[tuple[np.ndarray, ...]] = []
        self.link_chunks: list[tuple[np.ndarray, ...]] = []
        self.share_chunks: list[tuple[np.ndarray, ...]] = []
        self.unattributed: list[tuple[int, int, int]] = []

    # ---- seeds

    def seed_rows(self, seeds: Sequence[Seed]) -> tuple[np.ndarray, np.ndarray]:
        """Seed output rows and whether each is exempt from service/hub stops (address seeds)."""
        g = self.g
        rows_list: list[np.ndarray] = []
        exempt_list: list[np.ndarray] = []
        for seed in seeds:
            if seed.kind == "address":
                found = g.find_address(seed.text)
                aid = found if found is not None else address_id(self.store, self.chain, seed.text)
                rows = g.outputs_to(aid)
                rows = rows[g.in_window(g.out_tx[rows], self.p.since, self.p.until)]
                rows_list.append(rows)
                exempt_list.append(np.ones(len(rows), dtype=bool))
            else:
                assert seed.txid is not None
                t = g.tx_index(seed.txid)
                rows = g.outputs_of(np.array([t]))
                if seed.kind == "output":
                    rows = rows[g.out_n[rows] == seed.n]
                    if len(rows) == 0:
                        raise NotFoundError(f"{self.chain} output", seed.text)
                rows_list.append(rows)
                exempt_list.append(np.zeros(len(rows), dtype=bool))
        rows = np.concatenate(rows_list) if rows_list else np.zeros(0, np.int64)
        exempt = np.concatenate(exempt_list) if exempt_list else np.zeros(0, bool)
        order = np.lexsort((~exempt, rows))  # an output seeded twice keeps its exemption
        rows, exempt = rows[order], exempt[order]
        first = np.ones(len(rows), dtype=bool)
        first[1:] = rows[1:] != rows[:-1]
        return rows[first], exempt[first]

    # ---- structure

    def forward_codes(self, rows: np.ndarray, exempt: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """Why the funds in each output cannot be followed further (OK when they can)."""
        g, p = self.g, self.p
        code = np.full(len(rows), OK, dtype=np.int64)
        if len(rows) == 0:
            return code
        addrs = g.out_addr[rows]
        spender = g.out_spender[rows]
        has_spender = spender >= 0
        window = np.ones(len(rows), dtype=bool)
        window[has_spender] = g.in_window(spender[has_spender], p.since, p.until)
        coinjoin = np.zeros(len(rows), dtype=bool)
        coinjoin[has_spender] = g.tx_coinjoin[spender[has_spender]]
        checks = [
            (p.stop_at_services & ~exempt & self.att.service_mask(addrs), SERVICE),
            (~exempt & (g.degree(addrs) > p.hub_degree), HUB),
            (~has_spender, UNSPENT),
            (coinjoin, COINJOIN),
            (~window, WINDOW),
        ]
        if not p.follow_change:
            checks.insert(2, (~seeds & pays_a_funder(g, rows), CHANGE))
        for mask, value in reversed(checks):
            code[mask] = value
        return code

    def backward_codes(self, rows: np.ndarray, exempt: np.ndarray) -> np.ndarray:
        """Why the origin of each output cannot be followed further back (OK when it can)."""
        g, p = self.g, self.p
        code = np.full(len(rows), OK, dtype=np.int64)
        if len(rows) == 0:
            return code
        addrs = g.out_addr[rows]
        creator = g.out_tx[rows]
        checks = [
            (p.stop_at_services & ~exempt & self.att.service_mask(addrs), SERVICE),
            (~exempt & (g.degree(addrs) > p.hub_degree), HUB),
            (g.tx_coinbase[creator], COINBASE),
            (g.tx_coinjoin[creator], COINJOIN),
            (~g.in_window(creator, p.since, p.until), WINDOW),
        ]
        for mask, value in reversed(checks):
            code[mask] = value
        return code

    def explore(self, seed_rows: np.ndarray, exempt: np.ndarray) -> tuple[_Local, np.ndarray]:
        """Phase 1: expand the frontier of outputs step by step; returns the touched outputs and the
        transactions the traced funds can reach (sorted).

        Each output keeps the fewest owner hops and the fewest steps it was reached with (arrays over
        the graph); an output is expanded again only when reached with fewer hops, so a step costs in
        proportion to its frontier. These bounds are never above what phase 2 finds on tainted paths,
        so every transaction phase 2 may pass value to is reached here.
        """
        g, p = self.g, self.p
        backward = p.direction is Direction.BACKWARD
        outs = _Sparse(hop=np.int16, step=np.int16, code=np.int8, owner=np.int8)
        txs = _Sparse(hop=np.int16, step=np.int16)
        seed_codes = (self.backward_codes(seed_rows, exempt) if backward
                      else self.forward_codes(seed_rows, exempt, np.ones(len(seed_rows), bool)))
        outs.add(seed_rows, hop=0, step=0, code=seed_codes, owner=same_owner_rules(g, self.att, seed_rows))
        touched = [seed_rows]
        all_exempt = [exempt]
        frontier = outs.at(seed_rows)
        while len(frontier):
            go = frontier[(outs.code[frontier] == OK) & (outs.hop[frontier] < p.max_hops)
                          & (outs.step[frontier] < p.max_steps)]
            rows = outs.keys[go]
            if backward:
                nxt = g.out_tx[rows]
                via_hop = outs.hop[go] + (outs.owner[go] == 0)
            else:
                nxt = g.out_spender[rows]
                via_hop = outs.hop[go]
            via_step = outs.step[go] + 1
            has = nxt >= 0
            nxt, via_hop, via_step = nxt[has], via_hop[has].astype(np.int16), via_step[has].astype(np.int16)
            if len(nxt) == 0:
                break
            txs.add(txs.missing(nxt), hop=_NEVER, step=_NEVER)
            at = txs.at(nxt)
            np.minimum.at(txs.step, at, via_step)
            before = txs.hop[at].copy()
            np.minimum.at(txs.hop, at, via_hop)
            new = np.unique(nxt[txs.hop[at] < before])
            if len(new) == 0:
                break
            if backward:
                in_rows = g.inputs_of(new)
                prev = g.in_prev[in_rows]
                known = prev >= 0
                cand, owner_at = prev[known], txs.at(g.in_tx[in_rows][known])
                cand_hop, cand_step = txs.hop[owner_at], txs.step[owner_at]
            else:
                cand = g.outputs_of(new)
                owner_at = txs.at(g.out_tx[cand])
            fresh = outs.missing(cand)
            if len(fresh):
                fresh_exempt = np.zeros(len(fresh), dtype=bool)
                outs.add(fresh, hop=_NEVER, step=_NEVER, owner=same_owner_rules(g, self.att, fresh),
                         code=(self.backward_codes(fresh, fresh_exempt) if backward
                               else self.forward_codes(fresh, fresh_exempt, np.zeros(len(fresh), bool))))
                touched.append(fresh)
                all_exempt.append(fresh_exempt)
            cand_at = outs.at(cand)
            if not backward:
                cand_hop = txs.hop[owner_at] + (outs.owner[cand_at] == 0)
                cand_step = txs.step[owner_at]
            outs.step[cand_at] = np.minimum(outs.step[cand_at], cand_step)
            better = cand_hop < outs.hop[cand_at]
            frontier = cand_at[better]
            outs.hop[frontier] = cand_hop[better]
        reached = txs.keys[txs.hop < _NEVER]
        rows = np.concatenate(touched)
        ex = np.concatenate(all_exempt)
        order = np.argsort(rows, kind="stable")
        rows, ex = rows[order], ex[order]
        n = len(rows)
        at = outs.at(rows)
        local = _Local(rows=rows, code=outs.code[at].astype(np.int64), exempt=ex,
                       taint=np.zeros(n, dtype=self.dtype), hop=np.full(n, _BIG_HOP, dtype=np.int64),
                       step=np.full(n, _BIG_HOP, dtype=np.int64), owner=outs.owner[at],
                       is_seed=np.zeros(n, dtype=bool), arrived=np.zeros(n, dtype=self.dtype))
        pos, _ = local.find(seed_rows)
        local.taint[pos] = g.out_value[seed_rows]
        local.hop[pos] = 0
        local.step[pos] = 0
        local.is_seed[pos] = True
        self.seeded = int(local.taint[pos].sum()) if len(pos) else 0
        self.seed_pos = pos
        return local, reached

    def propagating(self, local: _Local, pos: np.ndarray, found: np.ndarray) -> np.ndarray:
        """Which touched outputs pass their traced value on (structure, hop limit, min_value)."""
        taint = local.taint[pos]
        ok = (found & (local.code[pos] == OK) & (local.hop[pos] < self.p.max_hops)
              & (local.step[pos] < self.p.max_steps) & (taint > 0))
        if self.p.min_value > 0:
            ok &= taint >= self.p.min_value
        return np.asarray(ok, dtype=bool)

    # ---- phase 2, forward

    def _record(self, txs: np.ndarray, hop: np.ndarray, step: np.ndarray, live: np.ndarray,
                link_tx: np.ndarray, link_row: np.ndarray, link_amount: np.ndarray) -> None:
        """Remember the transactions that carried value (with their sender's hop and their step) and
        the rows that brought it (for flows)."""
        self.live_chunks.append((txs[live], hop[live], step[live]))
        if live.any():
            self.reached_steps = max(self.reached_steps, int(step[live].max()))
        self.link_chunks.append((link_tx, link_row, link_amount))

    def forward(self, local: _Local, reached: np.ndarray) -> None:
        """Propagate taint over the reached transactions in chain order."""
        if self.p.policy is TaintPolicy.FIFO:
            self._forward_fifo(local, reached)
            return
        g = self.g
        levels = _levels(g, reached, backward=False)
        for level in range(int(levels.max(initial=-1)) + 1):
            txs = reached[levels == level]
            in_counts = g.tx_in_ptr[txs + 1] - g.tx_in_ptr[txs]
            in_rows = g.inputs_of(txs)
            pos, found = local.find(g.in_prev[in_rows])
            prop = self.propagating(local, pos, found)
            amounts = np.where(prop, local.taint[pos], 0).astype(self.dtype)
            ins = _Groups(in_counts)
            tainted_in = ins.sum(amounts)
            hop = ins.min(np.where(prop, local.hop[pos], _BIG_HOP), _BIG_HOP)
            step = ins.min(np.where(prop, local.step[pos], _BIG_HOP), _BIG_HOP) + 1
            live = tainted_in > 0
            if not live.any():
                continue
            out_counts = g.tx_out_ptr[txs + 1] - g.tx_out_ptr[txs]
            out_rows = g.outputs_of(txs)
            values = g.out_value[out_rows]
            if self.p.policy is TaintPolicy.HAIRCUT:
                shares = haircut_shares_grouped(out_counts, tainted_in, g.tx_in_total[txs], values)
                self.fee_taint += int((tainted_in - _Groups(out_counts).sum(shares)).sum())
            else:
                shares = np.where(np.repeat(live, out_counts), values, 0)
                fees = np.maximum(g.tx_in_total[txs] - _Groups(out_counts).sum(values), 0)
                self.fee_taint += int(np.where(live, fees, 0).sum())
            opos, _ = local.find(out_rows)
            self._write_outputs(local, opos, shares, np.repeat(hop, out_counts) + (local.owner[opos] == 0),
                                np.repeat(step, out_counts))
            owner = np.repeat(txs, in_counts)
            self._record(txs, hop, step, live, owner[prop], in_rows[prop], amounts[prop])

    def _write_outputs(self, local: _Local, opos: np.ndarray, shares: np.ndarray, hops: np.ndarray,
                       steps: np.ndarray) -> None:
        """Set the taint of touched outputs; outputs that are seeds keep theirs (the rest is overlap)."""
        is_seed = local.is_seed[opos]
        if is_seed.any():
            self.overlap += int(np.where(is_seed, shares, 0).sum())
            local.arrived[opos[is_seed]] = shares[is_seed]
        write = ~is_seed
        local.taint[opos[write]] = shares[write]
        local.hop[opos[write]] = hops[write]
        local.step[opos[write]] = steps[write]

    @staticmethod
    def _fifo_coins(local: _Local, values: np.ndarray, pos: np.ndarray, prop: np.ndarray
                    ) -> tuple[list[Coin], list[int]]:
        """The coins of one transaction side for FIFO (tainted lots where taint propagates), and the
        tainted amount of each."""
        coins: list[Coin] = []
        amounts: list[int] = []
        for i, value in enumerate(values.tolist()):
            lots = local.lots[int(pos[i])] if prop[i] else ()
            amount = lots_amount(lots)
            coins.append(Coin(int(value), amount, lots) if prop[i] else Coin(int(value)))
            amounts.append(amount)
        return coins, amounts

    def _forward_fifo(self, local: _Local, reached: np.ndarray) -> None:
        g = self.g
        for p in self.seed_pos.tolist():
            local.lots[p] = (Lot(int(local.taint[p]), TAINT),)
        for t in reached.tolist():
            one = np.array([t])
            in_rows = g.inputs_of(one)
            pos, found = local.find(g.in_prev[in_rows])
            prop = self.propagating(local, pos, found)
            if not prop.any():
                continue
            coins, amounts = self._fifo_coins(local, g.in_value[in_rows], pos, prop)
            hop = int(local.hop[pos[prop]].min())
            step = int(local.step[pos[prop]].min()) + 1
            out_rows = g.outputs_of(one)
            result = propagate_tx(TaintPolicy.FIFO, coins, [int(v) for v in g.out_value[out_rows]])
            self.fee_taint += result.rest
            opos, _ = local.find(out_rows)
            self._write_outputs(local, opos, np.array(result.parts, dtype=self.dtype),
                                hop + (local.owner[opos] == 0), np.full(len(opos), step, dtype=np.int64))
            for o, lots in zip(opos.tolist(), result.lots, strict=True):
                if not local.is_seed[o]:
                    local.lots[o] = lots
            self._record(one, np.array([hop]), np.array([step]), np.array([True]),
                         np.full(int(prop.sum()), t),
                         in_rows[prop], np.array(amounts, dtype=self.dtype)[prop])

    # ---- phase 2, backward

    def backward(self, local: _Local, reached: np.ndarray) -> None:
        """Attribute the value of interest over the reached transactions in reverse chain order."""
        g = self.g
        if self.p.policy is TaintPolicy.FIFO:
            for p in self.seed_pos.tolist():
                local.lots[p] = (Lot(int(local.taint[p]), TAINT),)
            for t in reached[::-1].tolist():
                self._backward_fifo_tx(local, t)
            return
        levels = _levels(g, reached, backward=True)
        for level in range(int(levels.max(initial=-1)) + 1):
            txs = reached[levels == level]
            out_counts = g.tx_out_ptr[txs + 1] - g.tx_out_ptr[txs]
            out_rows = g.outputs_of(txs)
            pos, found = local.find(out_rows)
            prop = self.propagating(local, pos, found)
            amounts = np.where(prop, local.taint[pos], 0).astype(self.dtype)
            outs = _Groups(out_counts)
            interest = outs.sum(amounts)
            via = local.hop[pos] + (local.owner[pos] == 0)
            hop = outs.min(np.where(prop, via, _BIG_HOP), _BIG_HOP)
            step = outs.min(np.where(prop, local.step[pos], _BIG_HOP), _BIG_HOP) + 1
            live = interest > 0
            if not live.any():
                continue
            in_counts = g.tx_in_ptr[txs + 1] - g.tx_in_ptr[txs]
            in_rows = g.inputs_of(txs)
            values = g.in_value[in_rows]
            if self.p.policy is TaintPolicy.HAIRCUT:
                ins = _Groups(in_counts)
                whole = ins.sum(values)
                shares = haircut_shares_grouped(in_counts, np.minimum(interest, whole), whole, values)
                rest = interest - ins.sum(shares)
                for i in np.flatnonzero(rest > 0).tolist():
                    self.unattributed.append((int(txs[i]), int(rest[i]), int(hop[i])))
            else:
                shares = np.where(np.repeat(live, in_counts), values, 0)
            self._write_inputs(local, in_rows, shares, np.repeat(hop, in_counts), np.repeat(step, in_counts))
            owner = np.repeat(txs, out_counts)
            self._record(txs, hop, step, live, owner[prop], out_rows[prop], amounts[prop])

    def _write_inputs(self, local: _Local, in_rows: np.ndarray, shares: np.ndarray, hops: np.ndarray,
                      steps: np.ndarray) -> None:
        """Backward: the interest each input supplies goes to the output it spent."""
        give = shares > 0
        self.share_chunks.append((in_rows[give], shares[give], hops[give], steps[give]))
        ppos, pfound = local.find(self.g.in_prev[in_rows])
        write = pfound & give
        is_seed = np.zeros(len(in_rows), dtype=bool)
        is_seed[write] = local.is_seed[ppos[write]]
        self.overlap += int(np.where(is_seed, shares, 0).sum())
        write &= ~is_seed
        local.taint[ppos[write]] = shares[write]
        local.hop[ppos[write]] = hops[write]
        local.step[ppos[write]] = steps[write]

    def _backward_fifo_tx(self, local: _Local, t: int) -> None:
        g = self.g
        one = np.array([t])
        out_rows = g.outputs_of(one)
        pos, found = local.find(out_rows)
        prop = self.propagating(local, pos, found)
        if not prop.any():
            return
        coins, amounts = self._fifo_coins(local, g.out_value[out_rows], pos, prop)
        hop = int((local.hop[pos] + (local.owner[pos] == 0))[prop].min())
        step = int(local.step[pos[prop]].min()) + 1
        in_rows = g.inputs_of(one)
        values = [int(v) for v in g.in_value[in_rows]]
        fee = max(sum(values) - sum(c.value for c in coins), 0)
        result = propagate_back(TaintPolicy.FIFO, coins, values, fee)
        if result.rest:
            self.unattributed.append((t, result.rest, hop))
        self._write_inputs(local, in_rows, np.array(result.parts, dtype=self.dtype),
                           np.full(len(in_rows), hop, dtype=np.int64),
                           np.full(len(in_rows), step, dtype=np.int64))
        ppos, pfound = local.find(g.in_prev[in_rows])
        for i, lots in enumerate(result.lots):
            if pfound[i] and not local.is_seed[ppos[i]]:
                local.lots[int(ppos[i])] = lots
        self._record(one, np.array([hop]), np.array([step]), np.array([True]), np.full(int(prop.sum()), t),
                     out_rows[prop], np.array(amounts, dtype=self.dtype)[prop])

    # ---- results

    def run(self, seeds: Sequence[Seed]) -> TraceResult:
        """Trace from the seeds and assemble the result."""
        rows, exempt = self.seed_rows(seeds)
        local, reached = self.explore(rows, exempt)
        if self.p.direction is Direction.FORWARD:
            self.forward(local, reached)
        else:
            self.backward(local, reached)
        return self.assemble(local, seeds)

    def _endpoint_reason(self, local: _Local) -> np.ndarray:
        """Reason code per touched output where value rests (-1: passed on)."""
        p = self.p
        n = len(local.rows)
        reason = np.full(n, -1, dtype=np.int64)
        tainted = local.taint > 0
        code = local.code
        reason[tainted & (code != OK)] = code[tainted & (code != OK)]
        ok = tainted & (code == OK)
        max_hop = ok & (local.hop >= p.max_hops)
        reason[max_hop] = MAX_HOPS
        max_step = ok & ~max_hop & (local.step >= p.max_steps)
        reason[max_step] = MAX_STEPS
        max_hop |= max_step
        if p.min_value > 0:
            small = ok & ~max_hop & (local.taint < p.min_value)
            reason[small] = MIN_VALUE
        return reason

    def _chunks(self, chunks: list[tuple[np.ndarray, ...]], width: int) -> list[np.ndarray]:
        if not chunks:
            return [np.zeros(0, dtype=np.int64) for _ in range(width)]
        return [np.concatenate([c[i] for c in chunks]) for i in range(width)]

    def assemble(self, local: _Local, seeds: Sequence[Seed]) -> TraceResult:
        """Endpoints (aggregated with numpy) and the flows (built when asked for)."""
        g, p = self.g, self.p
        backward = p.direction is Direction.BACKWARD
        reason = self._endpoint_reason(local)
        ends = np.flatnonzero(reason >= 0)
        rows = local.rows[ends]
        codes = reason[ends]
        aid = g.out_addr[rows].copy()
        txkey = np.full(len(rows), -1, dtype=np.int64)
        cj = codes == COINJOIN
        txkey[cj] = g.out_tx[rows[cj]] if backward else g.out_spender[rows[cj]]
        aid[cj] = -1
        cb = codes == COINBASE
        txkey[cb] = g.out_tx[rows[cb]]
        order = np.lexsort((codes, txkey, aid))
        aid, txkey, codes = aid[order], txkey[order], codes[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = (aid[1:] != aid[:-1]) | (txkey[1:] != txkey[:-1]) | (codes[1:] != codes[:-1])
        starts = np.flatnonzero(first)
        amounts = np.zeros(0, dtype=self.dtype)
        hops = np.zeros(0, dtype=np.int64)
        if len(starts):
            amounts = np.add.reduceat(local.taint[ends][order], starts)
            hops = np.minimum.reduceat(local.hop[ends][order], starts)
        g_aid, g_tx, g_code = aid[starts], txkey[starts], codes[starts]
        g_text = self._text_column(g_aid)
        g_txid = self._txid_column(g_tx)
        merged: dict[tuple[str | None, str | None, str], list[Any]] = {
            (text, txid, _CODE_REASON[c]): [a, v, h]
            for a, c, text, txid, v, h in zip(g_aid.tolist(), g_code.tolist(), g_text, g_txid,
                                              amounts.tolist(), hops.tolist(), strict=True)}
        if backward:
            extra = self._unknown_inputs()
            texts = self._texts([i[0] for i in extra])
            for a, t, name, amount, hop, txid in extra:
                tid = txid if txid is not None else g.txids(np.array([t]))[0]
                entry = merged.setdefault((texts.get(a), tid, name), [a, 0, _BIG_HOP])
                entry[1] += amount
                entry[2] = min(entry[2], hop)
        with bulk():
            endpoints = self._endpoints(merged)
        flows: Callable[[], Sequence[Flow]] | Sequence[Flow] = (self._backward_flows if backward
                                                                 else self._forward_flows)(local)
        if g.addr_text is None and callable(flows):  # addresses come from the store: build now, while open
            flows = list(flows())
        return TraceResult(self.chain, p, tuple(s.text for s in seeds), tuple(endpoints),
                           {NATIVE_ASSET: self.seeded},
                           {NATIVE_ASSET: self.fee_taint} if not backward else {},
                           {NATIVE_ASSET: self.overlap} if self.overlap else {}, _flows=flows)

    def _endpoints(self, merged: dict[tuple[str | None, str | None, str], list[Any]]) -> list[Endpoint]:
        """Endpoints from (address, txid, reason) -> [address id, value, hops], with attribution, sorted."""
        known = self.att.known
        ids = [v[0] for v in merged.values()]
        clusters = self.att.clusters(ids) if len(self.att.cluster_members) else {}
        hubs = [v[0] for k, v in merged.items() if k[2] == "hub"]
        degrees = dict(zip(hubs, self.g.degree(np.array(hubs, dtype=np.int64)).tolist(), strict=True))
        endpoints = []
        # in Endpoint.sort_key order (chain and asset are the same for all): largest value first, then names
        items = sorted(merged.items(), key=lambda item: (-item[1][1], item[0][0] or "", item[0][1] or "",
                                                          item[0][2]))
        for (address, txid, name), (a, amount, hop) in items:
            att = known.get(a)
            if att is None:
                category = "coinjoin" if name == "coinjoin" else "coinbase" if name == "coinbase" else None
                endpoints.append(Endpoint(address, txid, NATIVE_ASSET, name, amount, hop, clusters.get(a),
                                          None, category, None, degrees.get(a) if name == "hub" else None))
                continue
            category = "coinjoin" if name == "coinjoin" else att.category
            if name == "coinbase" and category is None:
                category = "coinbase"
            endpoints.append(Endpoint(address, txid, NATIVE_ASSET, name, amount, hop, clusters.get(a),
                                      att.entity, category, att.jurisdiction,
                                      degrees.get(a) if name == "hub" else None, att.abuse))
        return endpoints

    def _txid_column(self, txs: np.ndarray) -> list[str | None]:
        """Txids for a transaction number array, in order (None for -1)."""
        out: list[str | None] = [None] * len(txs)
        has = np.flatnonzero(txs >= 0)
        for i, txid in zip(has.tolist(), self.g.txids(txs[has]), strict=True):
            out[i] = txid
        return out

    def _text_column(self, ids: np.ndarray) -> list[str | None]:
        """Address strings for an id array, in order (None for -1)."""
        g = self.g
        if g.addr_text is not None:
            ok = (ids >= 0) & (ids < len(g.addr_text))
            if ok.all():
                return take_texts(g.addr_text, ids)
            taken = take_texts(g.addr_text, np.where(ok, ids, 0))
            return [t if k else None for t, k in zip(taken, ok.tolist(), strict=True)]
        texts = self._texts(ids.tolist())
        return [texts.get(int(i)) for i in ids.tolist()]

    def _texts(self, ids: Iterable[int]) -> dict[int, str]:
        wanted = [int(i) for i in ids if int(i) >= 0]
        texts = self.g.address_texts(wanted)
        return texts if texts is not None else address_texts(self.store, self.chain, wanted)

    def _forward_flows(self, local: _Local) -> FlowSource:
        """Flows of a forward trace: every output that received taint, built on demand."""
        g, p = self.g, self.p
        live_tx, live_hop, live_step = self._chunks(self.live_chunks, 3)
        link_tx, link_row, link_amount = self._chunks(self.link_chunks, 3)
        order = np.argsort(live_tx, kind="stable")
        live_tx, live_hop, live_step = live_tx[order], live_hop[order], live_step[order]
        counts = g.tx_out_ptr[live_tx + 1] - g.tx_out_ptr[live_tx]
        out_rows = g.outputs_of(live_tx)
        pos, _ = local.find(out_rows)
        amount = np.where(local.is_seed[pos], local.arrived[pos], local.taint[pos])
        keep = amount > 0
        out_rows, amount = out_rows[keep], amount[keep]
        flow_tx = g.out_tx[out_rows]
        owner_rule = local.owner[pos][keep]
        flow_hop = np.repeat(live_hop, counts)[keep] + (owner_rule == 0)
        flow_step = np.repeat(live_step, counts)[keep]
        rule = {TaintPolicy.HAIRCUT: "haircut: outputs share the tainted input value in proportion",
                TaintPolicy.POISON: "poison: every output of a transaction with a tainted input",
                TaintPolicy.FIFO: "fifo: inputs in order fill outputs in order"}[p.policy]
        return ForwardFlows(g, self._text_column, rule, tx=flow_tx, row=out_rows, amount=amount, hop=flow_hop,
                            step=flow_step, owner=owner_rule, link_tx=link_tx, link_row=link_row,
                            link_amount=link_amount).source()

    def _backward_flows(self, local: _Local) -> Callable[[], list[Flow]]:
        """Flows of a backward trace: every input that supplied value of interest, built on demand."""
        g, p = self.g, self.p
        link_tx, link_row, link_amount = self._chunks(self.link_chunks, 3)
        in_rows, shares, hops, steps = self._chunks(self.share_chunks, 4)
        rule = {TaintPolicy.HAIRCUT: "haircut: inputs supply the value of interest in proportion",
                TaintPolicy.POISON: "poison: every input of a transaction with an output of interest",
                TaintPolicy.FIFO: "fifo: inputs in order fill outputs in order"}[p.policy]

        def build() -> list[Flow]:
            primary = dict(zip(*(a.tolist() for a in primary_links(link_tx, link_row, link_amount, g.out_n)),
                               strict=True))
            funds: dict[int, list[int]] = defaultdict(list)
            for t, r in zip(link_tx.tolist(), link_row.tolist(), strict=True):
                funds[t].append(int(g.out_n[r]))
            txs = g.in_tx[in_rows]
            txids = g.txids(txs)
            txid_of = dict(zip(txs.tolist(), txids, strict=True))
            prev = g.in_prev[in_rows]
            prev_txids = g.txids(np.where(prev >= 0, g.out_tx[prev], 0))
            texts = self._texts([*g.in_addr[in_rows].tolist(),
                                 *(int(g.out_addr[r]) for r in primary.values())])
            flows = []
            kept = {t: int(local.owner[local.find(np.array([r]))[0][0]]) for t, r in primary.items()}
            columns = zip(txs.tolist(), txids, in_rows.tolist(), prev.tolist(), prev_txids, shares.tolist(),
                          hops.tolist(), steps.tolist(), strict=True)
            for t, txid, row, pr, ptxid, a, h, s in columns:
                evidence = [f"spent output {ptxid}:{int(g.out_n[pr])}"] if pr >= 0 else []
                outs = ", ".join(f"{txid_of[t]}:{n}" for n in sorted(funds.get(t, [])))
                evidence += [f"funds outputs {outs}", rule]
                if kept.get(t):
                    evidence.append(RULE_EVIDENCE[kept[t]])
                to_row = primary.get(t)
                flows.append(Flow(txid, texts.get(int(g.in_addr[row])),
                                  texts.get(int(g.out_addr[to_row])) if to_row is not None else None,
                                  NATIVE_ASSET, int(g.in_value[row]), int(a), int(h), tuple(evidence),
                                  input=int(g.in_n[row]), step=int(s),
                                  same_owner=RULE_NAMES.get(kept.get(t, 0))))
            return flows

        return build

    def _unknown_inputs(self) -> list[tuple[int, int, str, int, int, str | None]]:
        """Backward: interest that inputs outside the store supplied, as endpoint items."""
        g = self.g
        out: list[tuple[int, int, str, int, int, str | None]] = []
        for t, amount, hop in self.unattributed:  # a spend of outputs the store lacks has no input value
            lacks = bool((g.in_prev[g.inputs_of(np.array([t]))] < 0).any())
            out.append((-1, t, "not_in_store" if lacks else "unknown", amount, hop, None))
        in_rows, shares, hops, steps = self._chunks(self.share_chunks, 4)
        missing = g.in_prev[in_rows] < 0
        for r, amount, hop in zip(in_rows[missing].tolist(), shares[missing].tolist(), hops[missing].tolist(),
                                  strict=True):
            txid = g.txids(np.array([g.in_tx[r]]))[0]
            found = self.store.con.execute(
                "SELECT prev_txid, prev_n FROM inputs WHERE chain = ? AND txid = ? AND n = ? LIMIT 1",
                [self.chain, txid, int(g.in_n[r])]).fetchall()
            prev = f"{found[0][0]}:{found[0][1]}" if found else None
            out.append((int(g.in_addr[r]), -1, "not_in_store", int(amount), int(hop), prev))
        return out


