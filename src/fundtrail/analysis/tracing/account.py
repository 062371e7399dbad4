"""The account engine of tracing: transfers replayed in time order through each address's balance.

(1) One query per step collects the transfers of every address the funds can reach within ``max_hops``
owner hand-overs and ``max_steps`` transfers; (2) the transfers are replayed in time order through each
address's balance (:class:`fundtrail.domain.taint.BalancePool`). A transfer between two addresses of one
cluster stays inside one owner and uses no hop.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from fundtrail.analysis.tracing.attribution import attribution_index
from fundtrail.analysis.tracing.owners import CLUSTER, RULE_EVIDENCE, RULE_NAMES, same_cluster
from fundtrail.analysis.tracing.params import TraceParams
from fundtrail.analysis.tracing.queries import (
    STATUS_OK,
    Transfer,
    address_degrees,
    address_id,
    address_texts,
    coinjoin_txids,
    transfers,
    with_ids,
)
from fundtrail.analysis.tracing.result import Endpoint, Flow, TraceResult
from fundtrail.analysis.tracing.seeds import Seed
from fundtrail.domain.taint import (
    TAINT,
    BalancePool,
    Direction,
    Lot,
    TaintPolicy,
    haircut_shares,
    lots_amount,
)
from fundtrail.errors import NotFoundError
from fundtrail.store.chainstore import ChainStore

ZERO_ADDRESS = "0x" + "0" * 40
"""Tokens are minted from the zero address: where a backward trace finds their origin."""
_BIG_HOP = 1 << 40


class AccountTrace:
    """One trace on an account chain (forward or backward), all assets at once."""

    def __init__(self, store: ChainStore, chain: str, params: TraceParams) -> None:
        self.store = store
        self.chain = chain
        self.p = params
        self.att = attribution_index(store, chain)
        self.events: dict[int, Transfer] = {}
        self.degree: dict[int, int] = {}
        self.terminal: dict[int, str] = {}
        self.start: dict[tuple[str, int], int] = {}
        self.bound: dict[tuple[str, int], int] = {}
        self.prebalance: dict[tuple[str, int], int] = {}
        self.flows: list[tuple[Transfer, int, int, int, bool]] = []
        self.ends: dict[tuple[int, str | None, str, str], list[int]] = {}
        self.seeded: dict[str, int] = defaultdict(int)
        self.fees: dict[str, int] = defaultdict(int)
        self.overlap: dict[str, int] = defaultdict(int)
        self._coinjoin: set[str] | None = None
        zero = store.address_id(chain, ZERO_ADDRESS)
        self.zero_id = -2 if zero is None else int(zero)

    # ---- look-ups

    def _load(self, items: dict[tuple[str, int], tuple[int, int]], *, prebalance: bool) -> None:
        """Load the transfers of (asset, address) between heights lo and hi, one query per side for all."""
        if not items:
            return
        keys = sorted(items)
        prefix = ("WITH f AS (SELECT unnest(?::VARCHAR[]) AS asset, unnest(?::BIGINT[]) AS id, "
                  "unnest(?::BIGINT[]) AS lo, unnest(?::BIGINT[]) AS hi)")
        lists = [[k[0] for k in keys], [k[1] for k in keys], [items[k][0] for k in keys],
                 [items[k][1] for k in keys]]
        for side in ("from_id", "to_id"):
            join = f"JOIN f ON t.{side} = f.id AND t.asset = f.asset AND t.height BETWEEN f.lo AND f.hi"
            for tr in transfers(self.store, self.chain, "true", [], join, prefix, lists):
                self.events[tr.row] = tr
        if not prebalance:
            return
        net: dict[tuple[str, int], int] = defaultdict(int)
        for side, sign in (("to_id", 1), ("from_id", -1)):
            rows = self.store.con.execute(
                f"""{prefix} SELECT f.asset, f.id, sum(t.value)
                    FROM f JOIN transfers t ON t.{side} = f.id AND t.asset = f.asset AND t.height < f.lo
                    LEFT JOIN txs x ON x.chain = t.chain AND x.txid = t.txid AND x.height = t.height
                    WHERE t.chain = ? AND t.value IS NOT NULL AND {STATUS_OK}
                      AND t.from_id IS DISTINCT FROM t.to_id
                    GROUP BY f.asset, f.id""", [*lists, self.chain]).fetchall()
            for asset, aid, total in rows:
                net[(asset, int(aid))] += sign * int(total)
        for key, value in net.items():
            self.prebalance[key] = max(value, 0)

    def _classify(self, addrs: Iterable[int], exempt: set[int]) -> None:
        """Look up degree and attribution of new addresses; mark services and hubs as terminal."""
        new = sorted({a for a in addrs if a >= 0 and a not in self.degree})
        if not new:
            return
        found = address_degrees(self.store, self.chain, new)
        services = self.att.service_mask(np.array(new, dtype=np.int64))
        for a, is_service in zip(new, services.tolist(), strict=True):
            self.degree[a] = found.get(a, 0)
            if a in exempt:
                continue
            if is_service and self.p.stop_at_services:
                self.terminal[a] = "service"
            elif self.degree[a] > self.p.hub_degree:
                self.terminal[a] = "hub"

    def _is_coinjoin(self, txid: str | None) -> bool:
        if txid is None:
            return False
        if self._coinjoin is None:
            txids = sorted({e.txid for e in self.events.values() if e.txid})
            self._coinjoin = coinjoin_txids(self.store, self.chain, txids)
        return txid in self._coinjoin

    def _in_window(self, tr: Transfer) -> bool:
        return ((self.p.since is None or tr.time >= self.p.since)
                and (self.p.until is None or tr.time <= self.p.until))

    def _end(self, aid: int, txid: str | None, asset: str, reason: str, amount: int, hop: int) -> None:
        if amount <= 0:
            return
        entry = self.ends.setdefault((aid, txid, asset, reason), [0, _BIG_HOP])
        entry[0] += amount
        entry[1] = min(entry[1], hop)

    def _seed_transfers(self, seeds: Sequence[Seed]) -> tuple[list[Transfer], set[int]]:
        """Transfers of the seed transactions and the ids of seed addresses."""
        asset_filter = "true" if self.p.asset is None else "t.asset = ?"
        asset_args = [] if self.p.asset is None else [self.p.asset]
        rows: list[Transfer] = []
        addresses: set[int] = set()
        for seed in seeds:
            if seed.kind == "address":
                addresses.add(address_id(self.store, self.chain, seed.text))
                continue
            where = f"t.txid = ? AND t.kind <> 'fee' AND {asset_filter}"
            args: list[Any] = [seed.txid, *asset_args]
            if seed.kind == "output":
                where += " AND t.transfer_index = ?"
                args.append(seed.n)
            found = transfers(self.store, self.chain, where, args)
            if not found and seed.kind == "output":
                raise NotFoundError(f"{self.chain} transfer", seed.text)
            rows.extend(found)
        return rows, addresses

    def _received_assets(self, addresses: set[int]) -> set[str]:
        if self.p.asset is not None:
            return {self.p.asset}
        rows = with_ids(self.store, addresses, "SELECT DISTINCT t.asset FROM transfers t JOIN {ids} i "
                                                "ON t.to_id = i.id WHERE t.chain = ? AND t.value IS NOT NULL",
                         [self.chain])
        return {r[0] for r in rows}

    # ---- forward

    def forward(self, seeds: Sequence[Seed]) -> None:
        """Replay, in time order, every transfer of every address the funds can reach."""
        p = self.p
        seed_rows, seed_addrs = self._seed_transfers(seeds)
        seed_row_ids = {tr.row for tr in seed_rows}
        frontier: dict[tuple[str, int], int] = {}
        for asset in self._received_assets(seed_addrs):
            for a in seed_addrs:
                frontier[(asset, a)] = 0
        for tr in seed_rows:
            self.events[tr.row] = tr
            if tr.dst >= 0:
                frontier[(tr.asset, tr.dst)] = min(frontier.get((tr.asset, tr.dst), tr.height), tr.height)
        seed_keys = {k for k in frontier if k[1] in seed_addrs}
        # (owner hops, steps) each key is reached with at best; keys are loaded within both limits and
        # expanded while below them, again when reached earlier in time or with fewer hops
        reach = {k: (0, 0) for k in frontier}
        improved: set[tuple[str, int]] = set()
        while frontier:
            todo = {k: lo for k, lo in frontier.items()
                    if k not in self.start or lo < self.start[k] or k in improved}
            self._classify((k[1] for k in todo), seed_addrs)
            todo = {k: min(lo, self.start.get(k, lo)) for k, lo in todo.items() if k[1] not in self.terminal}
            if not todo:
                break
            self._load({k: (lo, 2**62) for k, lo in todo.items()}, prebalance=True)
            self.start.update(todo)
            expand = {k: lo for k, lo in todo.items()
                      if reach[k][0] < p.max_hops and reach[k][1] < p.max_steps}
            nxt: dict[tuple[str, int], int] = {}
            improved = set()
            for e in self.events.values():
                k = (e.asset, e.src)
                if k in expand and e.height >= expand[k] and e.dst >= 0:
                    d = (e.asset, e.dst)
                    dh = reach[k][0] + (0 if self._same_owner(e.src, e.dst) else 1)
                    ds = reach[k][1] + 1
                    if dh > p.max_hops:
                        continue
                    old = reach.get(d)
                    if old is None or dh < old[0]:
                        improved.add(d)
                    reach[d] = (dh, ds) if old is None else (min(dh, old[0]), min(ds, old[1]))
                    earlier = d not in self.start or e.height < self.start[d]
                    if (earlier or d in improved) and e.height < nxt.get(d, 2**62):
                        nxt[d] = e.height
            frontier = nxt
        self._replay_forward(seed_row_ids, seed_keys)

    def _same_owner(self, src: int, dst: int) -> bool:
        """Whether a transfer stays inside one owner (sender and receiver share a cluster)."""
        return same_cluster(self.att, src, dst)

    def _replay_forward(self, seed_rows: set[int], seed_keys: set[tuple[str, int]]) -> None:
        p = self.p
        pools: dict[tuple[str, int], BalancePool] = {}
        hop: dict[tuple[str, int], int] = {}
        step: dict[tuple[str, int], int] = {}
        for k in self.start:
            pools[k] = BalancePool(p.policy)
            pools[k].receive(self.prebalance.get(k, 0), None)
        after_until: set[tuple[str, int]] = set()
        for e in sorted(self.events.values(), key=lambda x: x.key):
            skey, dkey = (e.asset, e.src), (e.asset, e.dst)
            s_on = skey in pools and e.height >= self.start[skey]
            d_on = dkey in pools and e.height >= self.start[dkey]
            if p.until is not None and e.time > p.until:
                if s_on:
                    after_until.add(skey)
                continue
            lots = pools[skey].send(e.value) if s_on else (Lot(e.value, None),)
            tainted = lots_amount(lots)
            if e.row in seed_rows or (dkey in seed_keys and d_on and self._in_window(e)):
                self.seeded[e.asset] += e.value
                self.overlap[e.asset] += tainted
                if d_on:
                    pools[dkey].receive(e.value, TAINT)
                    hop[dkey] = 0
                    step[dkey] = 0
                elif e.dst in self.terminal:
                    self._end(e.dst, None, e.asset, self.terminal[e.dst], e.value, 0)
                continue
            if tainted == 0:
                if d_on:
                    pools[dkey].receive(e.value, None)
                continue
            kept = self._same_owner(e.src, e.dst)
            h = hop.get(skey, 0) + (0 if kept else 1)
            s = step.get(skey, 0) + 1
            reason = None
            if e.dst < 0:  # gas fees (and value sent to no one) leave the trace as fees
                self.fees[e.asset] += tainted
                continue
            if h > p.max_hops or s > p.max_steps:
                self._end(e.src, None, e.asset, "max_hops" if h > p.max_hops else "max_steps", tainted,
                          hop.get(skey, 0))
                lots = (Lot(e.value, None),)
            else:
                self.flows.append((e, tainted, h, s, kept))
                if self._is_coinjoin(e.txid):
                    reason = "coinjoin"
                    self._end(-1, e.txid, e.asset, reason, tainted, h)
                elif e.dst in self.terminal:
                    reason = self.terminal[e.dst]
                elif p.min_value and tainted < p.min_value:
                    reason = "min_value"
                elif not d_on:
                    reason = "max_steps" if s >= p.max_steps else "max_hops"
                if reason is not None:
                    if reason != "coinjoin":
                        self._end(e.dst, None, e.asset, reason, tainted, h)
                    lots = (Lot(e.value, None),)
            if d_on:
                for lot in lots:
                    pools[dkey].receive(lot.amount, lot.source)
                if lots_amount(lots):
                    hop[dkey] = min(hop.get(dkey, _BIG_HOP), h)
                    step[dkey] = min(step.get(dkey, _BIG_HOP), s)
        for k, pool in pools.items():
            held = lots_amount(pool.held())
            if held:
                reason = "time_window" if k in after_until else "unspent"
                self._end(k[1], None, k[0], reason, held, hop.get(k, 0))

    # ---- backward

    def backward(self, seeds: Sequence[Seed]) -> None:
        """Attribute the value of interest to earlier transfers, in reverse time order."""
        p = self.p
        seed_rows, seed_addrs = self._seed_transfers(seeds)
        if seed_addrs:
            asset_filter = "" if p.asset is None else " AND t.asset = ?"
            args = [] if p.asset is None else [p.asset]
            for a in sorted(seed_addrs):
                seed_rows.extend(tr for tr in transfers(self.store, self.chain, f"t.to_id = ?{asset_filter}",
                                                         [a, *args]) if self._in_window(tr))
        interest: dict[int, Any] = {}
        hop: dict[int, tuple[int, int]] = {}
        for tr in seed_rows:
            self.events[tr.row] = tr
            interest[tr.row] = [(0, tr.value)] if p.policy is TaintPolicy.FIFO else tr.value
            hop[tr.row] = (0 if self._same_owner(tr.src, tr.dst) else 1, 1)
            self.seeded[tr.asset] += tr.value
        self._classify((tr.src for tr in seed_rows), set())
        frontier: dict[tuple[str, int], int] = {}
        reach: dict[tuple[str, int], tuple[int, int]] = {}
        for tr in seed_rows:
            if tr.src >= 0:
                k = (tr.asset, tr.src)
                frontier[k] = max(frontier.get(k, -1), tr.height)
                old = reach.get(k, (_BIG_HOP, _BIG_HOP))
                reach[k] = (min(old[0], hop[tr.row][0]), 1)
        improved: set[tuple[str, int]] = set()
        while frontier:
            todo = {k: max(hi, self.bound.get(k, -1)) for k, hi in frontier.items()
                    if k[1] not in self.terminal and (hi > self.bound.get(k, -1) or k in improved)
                    and reach[k][0] < p.max_hops and reach[k][1] < p.max_steps}
            if not todo:
                break
            self._load({k: (0, hi) for k, hi in todo.items()}, prebalance=False)
            self.bound.update(todo)
            nxt: dict[tuple[str, int], int] = {}
            improved = set()
            for e in self.events.values():
                k = (e.asset, e.dst)
                if k in todo and e.height <= todo[k] and e.src >= 0:
                    s = (e.asset, e.src)
                    sh = reach[k][0] + (0 if self._same_owner(e.src, e.dst) else 1)
                    prior = reach.get(s)
                    if prior is None or sh < prior[0]:
                        improved.add(s)
                    reach[s] = ((sh, reach[k][1] + 1) if prior is None
                                else (min(sh, prior[0]), min(reach[k][1] + 1, prior[1])))
                    nxt[s] = max(nxt.get(s, -1), e.height)
            self._classify((k[1] for k in nxt), set())
            frontier = nxt
        self._attribute_backward(interest, hop)

    def _compositions(self, key: tuple[str, int]) -> dict[int, list[tuple[int | None, int, int]]]:
        """Replay an address's balance: per outgoing transfer, the received transfers it drew on.

        Each piece is (receipt row or None, offset inside the receipt, amount).
        """
        asset, aid = key
        pool = BalancePool(self.p.policy if self.p.policy is not TaintPolicy.POISON else TaintPolicy.FIFO)
        consumed: dict[int | None, int] = defaultdict(int)
        out: dict[int, list[tuple[int | None, int, int]]] = {}
        mine = [e for e in self.events.values() if e.asset == asset and (e.src == aid or e.dst == aid)]
        for e in sorted(mine, key=lambda x: x.key):
            if e.src == aid:
                pieces = []
                for lot in pool.send(e.value):
                    source = lot.source if isinstance(lot.source, int) else None
                    pieces.append((source, consumed[source], lot.amount))
                    consumed[source] += lot.amount
                out[e.row] = pieces
            if e.dst == aid:
                pool.receive(e.value, e.row)
        return out

    def _attribute_backward(self, interest: dict[int, Any], hop: dict[int, tuple[int, int]]) -> None:
        p = self.p
        heap = [(tuple(-x for x in self.events[r].key), r) for r in interest]
        heapq.heapify(heap)
        comps: dict[tuple[str, int], dict[int, list[tuple[int | None, int, int]]]] = {}
        done: set[int] = set()
        while heap:
            _, row = heapq.heappop(heap)
            if row in done:
                continue
            done.add(row)
            e = self.events[row]
            h, s = hop[row]
            value = interest[row]
            amount = sum(b - a for a, b in value) if p.policy is TaintPolicy.FIFO else int(value)
            if amount <= 0:
                continue
            self.flows.append((e, amount, h, s, self._same_owner(e.src, e.dst)))
            reason = None
            if e.src < 0 or e.src == self.zero_id:  # rewards, genesis, withdrawals; token mints
                reason = "origin"
                self._end(e.dst, e.txid, e.asset, reason, amount, h)
                continue
            if self._is_coinjoin(e.txid):
                self._end(-1, e.txid, e.asset, "coinjoin", amount, h)
                continue
            if e.src in self.terminal:
                reason = self.terminal[e.src]
            elif h >= p.max_hops or s >= p.max_steps or (e.asset, e.src) not in self.bound:
                reason = "max_steps" if h < p.max_hops and s >= p.max_steps else "max_hops"
            elif p.min_value and amount < p.min_value:
                reason = "min_value"
            elif p.since is not None and e.time < p.since:
                reason = "time_window"
            if reason is not None:
                self._end(e.src, None, e.asset, reason, amount, h)
                continue
            skey = (e.asset, e.src)
            if skey not in comps:
                comps[skey] = self._compositions(skey)
            pieces = comps[skey].get(row, [(None, 0, e.value)])
            gains: list[tuple[int | None, Any]] = []
            if p.policy is TaintPolicy.HAIRCUT:
                shares = haircut_shares(amount, e.value, [piece[2] for piece in pieces])
                gains = [(piece[0], share) for piece, share in zip(pieces, shares, strict=True) if share]
            elif p.policy is TaintPolicy.FIFO:
                at = 0
                for source, offset, size in pieces:
                    hits = [(max(a, at) - at + offset, min(b, at + size) - at + offset)
                            for a, b in value if min(b, at + size) > max(a, at)]
                    if hits:
                        gains.append((source, hits))
                    at += size
            else:
                receipts = [r for r, ev in self.events.items()
                            if ev.dst == e.src and ev.asset == e.asset and ev.key < e.key]
                gains = [(r, self.events[r].value) for r in receipts]
                drawn = sum(piece[2] for piece in pieces if piece[0] is not None)
                if drawn < e.value:
                    gains.append((None, e.value - drawn))
            for source, gain in gains:
                if source is None:
                    lost = sum(b - a for a, b in gain) if p.policy is TaintPolicy.FIFO else gain
                    self._end(e.src, None, e.asset, "unknown", lost, h)
                    continue
                if source in done:
                    continue
                if p.policy is TaintPolicy.FIFO:
                    interest[source] = sorted([*interest.get(source, []), *gain])
                elif p.policy is TaintPolicy.HAIRCUT:
                    interest[source] = interest.get(source, 0) + gain
                else:
                    interest[source] = gain
                src_tr = self.events[source]
                via = (h + (0 if self._same_owner(src_tr.src, src_tr.dst) else 1), s + 1)
                old = hop.get(source, (_BIG_HOP, _BIG_HOP))
                hop[source] = (min(old[0], via[0]), min(old[1], via[1]))
                heapq.heappush(heap, (tuple(-x for x in self.events[source].key), source))

    # ---- result

    def result(self, seeds: Sequence[Seed]) -> TraceResult:
        """Endpoints and flows as strings, sorted."""
        p = self.p
        ids = {aid for aid, *_ in self.ends}
        ids |= {f[0].src for f in self.flows} | {f[0].dst for f in self.flows}
        texts = address_texts(self.store, self.chain, ids)
        end_ids = [aid for aid, *_ in self.ends if aid >= 0]
        clusters = self.att.clusters(end_ids)
        agg: dict[tuple[str | None, str | None, str, str], list[Any]] = {}
        for (aid, txid, asset, reason), (amount, h) in self.ends.items():
            key = (texts.get(aid), txid, asset, reason)
            entry = agg.setdefault(key, [aid, 0, _BIG_HOP])
            entry[1] += amount
            entry[2] = min(entry[2], h)
        endpoints = []
        for (address, txid, asset, reason), (aid, amount, h) in agg.items():
            att = self.att.get(aid) if aid >= 0 else None
            category = "coinjoin" if reason == "coinjoin" else (att.category if att else None)
            endpoints.append(Endpoint(address, txid, asset, reason, amount, h, clusters.get(aid),
                                      att.entity if att else None, category,
                                      att.jurisdiction if att else None,
                                      self.degree.get(aid) if reason == "hub" else None,
                                      att.abuse if att else None))
        endpoints.sort(key=Endpoint.sort_key)
        rule = {
            (Direction.FORWARD, TaintPolicy.HAIRCUT): "haircut: the sender's tainted share of its balance",
            (Direction.FORWARD, TaintPolicy.POISON): "poison: everything a tainted account sends",
            (Direction.FORWARD, TaintPolicy.FIFO): "fifo: the sender's oldest received value goes first",
            (Direction.BACKWARD, TaintPolicy.HAIRCUT): "haircut: received value in the sender's balance, "
                                                       "in proportion",
            (Direction.BACKWARD, TaintPolicy.POISON): "poison: everything the sender received before",
            (Direction.BACKWARD, TaintPolicy.FIFO): "fifo: the sender's oldest received value goes first",
        }[(p.direction, p.policy)]
        flows = [Flow(e.txid or f"block:{e.height}", texts.get(e.src), texts.get(e.dst), e.asset, e.value,
                      amount, h, (f"{e.kind} transfer #{e.index} in block {e.height}", rule,
                                  *((RULE_EVIDENCE[CLUSTER],) if kept else ())),
                      index=e.index, kind=e.kind, step=s, same_owner=RULE_NAMES[CLUSTER] if kept else None)
                 for e, amount, h, s, kept in self.flows]
        return TraceResult(self.chain, p, tuple(s.text for s in seeds), tuple(endpoints), dict(self.seeded),
                           dict(self.fees), {k: v for k, v in self.overlap.items() if v}, _flows=flows)


def trace_account(store: ChainStore, chain: str, params: TraceParams, seeds: Sequence[Seed]) -> TraceResult:
    """Trace on an account chain (transfers per asset: native, internal, token)."""
    trace = AccountTrace(store, chain, params)
    if params.direction is Direction.FORWARD:
        trace.forward(seeds)
    else:
        trace.backward(seeds)
    return trace.result(seeds)


