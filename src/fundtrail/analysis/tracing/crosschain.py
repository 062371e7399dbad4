"""A forward trace across conversions (swaps, bridges, pools): from one chain and asset to the next.

When traced value comes to rest at the in side of a stored conversion (the pair, bridge, vault or pool
that received it in the conversion's transaction, same chain, address and asset), the value that went in
leaves that endpoint and crosses: tainted out = value out x tainted in / value in (the in flows carry the
trace's policy). The trace goes on from the out side (the recipient, on the out chain and asset) with the
same policy and the rest of the budget: the hand-over into the conversion was the owner hop, the payment
out is one more step. Several conversions from one in side (candidates of a pool or a lock/mint match)
share its tainted value equally. Unlinked value at a pool stays there, an endpoint of category
``mixing_service``. The trace then names the chain of every flow and endpoint, lists the conversions it
followed and flags the addresses on imported sanctions lists.

A continuation is a trace of the out transfers (outputs) scaled to the tainted value that crossed: exact
for haircut and poison (taint is linear in what is seeded); for fifo, the tainted part of a conversion's
out is treated as spread over it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from fundtrail.analysis.tracing.lists import TraceLists
from fundtrail.analysis.tracing.params import TraceParams
from fundtrail.analysis.tracing.result import Endpoint, Flow, TraceResult
from fundtrail.analysis.tracing.seeds import Seed
from fundtrail.domain.chains import get_chain
from fundtrail.domain.taint import Direction
from fundtrail.store.chainstore import ChainStore

if TYPE_CHECKING:  # the conversion layer is imported when a trace reaches a conversion
    from fundtrail.domain.conversions import Conversion

log = logging.getLogger(__name__)

Engine = Callable[[ChainStore, str, Sequence[Seed], TraceParams], TraceResult]
"""Runs one trace on one chain (without following conversions)."""

MAX_CONVERSIONS = 500
"""The most conversions one trace follows (each starts a trace on its out side)."""
POOL_CATEGORY = "mixing_service"
"""The category of a pool's endpoint: value that no heuristic links to a withdrawal."""


@dataclass(frozen=True, slots=True)
class _Part:
    """A trace on one chain, its amounts scaled by ``num / den`` and its hops and steps shifted."""

    result: TraceResult
    chain: str
    num: int = 1
    den: int = 1
    hop: int = 0
    step: int = 0

    def scale(self, amount: int) -> int:
        return amount if self.num == self.den else amount * self.num // self.den


class _Crossing:
    """Follows the conversions reached by a trace, part after part."""

    def __init__(self, store: ChainStore, params: TraceParams, engine: Engine,
                 lists: TraceLists | None = None) -> None:
        self.store = store
        self.p = params
        self.engine = engine
        self.lists = lists
        self.flows: list[Flow] = []
        self.endpoints: list[Endpoint] = []
        self.docs: list[dict[str, Any]] = []
        self.fees: dict[tuple[str, str], int] = defaultdict(int)
        self.pools: dict[str, set[str]] = {}
        self.parts: list[tuple[_Part, list[Flow] | None]] = []
        self.changed = False

    def pools_of(self, chain: str) -> set[str]:
        if chain not in self.pools:
            if self.lists is not None:
                self.pools[chain] = set(self.lists.pools.get(chain, ()))
            else:
                from fundtrail.analysis.conversions import pool_addresses

                self.pools[chain] = pool_addresses(self.store, chain)
        return self.pools[chain]

    def add(self, part: _Part) -> None:
        """Take in one part: its flows and endpoints (scaled), then follow its conversions."""
        r, chain = part.result, part.chain
        ends = [replace(e, chain=chain, tainted_value=part.scale(e.tainted_value), hops=e.hops + part.hop)
                for e in r.endpoints]
        ends = [e for e in ends if e.tainted_value > 0]
        for asset, fee in r.fees.items():
            self.fees[chain, asset] += part.scale(fee)
        resting = {e.address for e in ends if e.address is not None and e.txid is None}
        found = []
        if self.lists is None or self.lists.reaches_conversion(chain, resting):
            from fundtrail.analysis.conversions import conversions_into

            found = conversions_into(self.store, chain, resting, self.p.min_confidence)
        flows: list[Flow] | None = None
        if found or part.num != part.den or part.hop or part.step or part.chain != r.chain:
            flows = [replace(f, chain=chain, tainted_value=part.scale(f.tainted_value), hop=f.hop + part.hop,
                             step=f.steps + part.step) for f in r.flows]
        by_in: dict[tuple[str, str, str], list[Conversion]] = defaultdict(list)
        for c in found:
            by_in[c.in_.txid, c.in_.address, c.in_.asset].append(c)
        into: dict[tuple[str, str, str], list[Flow]] = defaultdict(list)
        for f in flows or ():
            key = (f.txid, f.to_address or "", f.asset)
            if key in by_in and f.tainted_value > 0:
                into[key].append(f)
        for key in sorted(into):
            self._cross(ends, into[key], by_in[key])
        pools = self.pools_of(chain)
        if pools:
            for i, e in enumerate(ends):
                if e.address in pools and e.category is None:
                    ends[i] = replace(e, category=POOL_CATEGORY)
                    self.changed = True
        self.endpoints.extend(ends)
        self.parts.append((part, flows))

    def finish(self) -> None:
        """Every flow with its chain (built only now: a trace that crossed nothing never builds them), and
        the endpoints of one place merged."""
        for part, flows in self.parts:
            if flows is None:
                self.flows.extend(replace(f, chain=part.chain) for f in part.result.flows)
            else:
                self.flows.extend(f for f in flows if f.tainted_value > 0)
        merged: dict[tuple[Any, ...], Endpoint] = {}
        for e in self.endpoints:
            key = (e.chain, e.address, e.txid, e.asset, e.reason)
            old = merged.get(key)
            merged[key] = e if old is None else replace(
                old, tainted_value=old.tainted_value + e.tainted_value, hops=min(old.hops, e.hops))
        self.endpoints = sorted(merged.values(), key=Endpoint.sort_key)

    def _cross(self, ends: list[Endpoint], into: list[Flow], convs: list[Conversion]) -> None:
        """Value that flowed into one in side: take it off the endpoint there and cross each conversion."""
        first = convs[0].in_
        at = [i for i, e in enumerate(ends) if e.address == first.address and e.asset == first.asset
              and e.txid is None]
        resting = sum(ends[i].tainted_value for i in at)
        total = min(sum(f.tainted_value for f in into), resting)
        hop = min(f.hop for f in into)
        step = min(f.steps for f in into)
        shares = [total // len(convs)] * len(convs)
        shares[0] += total - sum(shares)
        for c, share in zip(convs, shares, strict=True):
            tainted_in = min(share, c.in_.value)
            if tainted_in <= 0 or len(self.docs) >= MAX_CONVERSIONS:
                continue
            left = tainted_in
            for i in sorted(at, key=lambda i: (ends[i].reason != "unspent", -ends[i].tainted_value)):
                taken = min(left, ends[i].tainted_value)
                ends[i] = replace(ends[i], tainted_value=ends[i].tainted_value - taken)
                left -= taken
            tainted_out = c.out.value * tainted_in // c.in_.value if c.in_.value else 0
            doc = c.to_dict()
            doc.pop("evidence", None)
            doc.update({"tainted_in": str(tainted_in), "tainted_out": str(tainted_out), "hop": hop,
                        "step": step + 1})
            self.docs.append(doc)
            self.changed = True
            doc["followed"] = self._follow(c, tainted_out, hop, step + 1)
        ends[:] = [e for e in ends if e.tainted_value > 0]

    def _follow(self, c: Conversion, tainted_out: int, hop: int, step: int) -> str:
        """Trace on from the out side; returns what happened (followed, or why not)."""
        out = c.out
        if tainted_out <= 0:
            return "nothing tainted"
        reason = None
        seeds: list[Seed] = []
        if step >= self.p.max_steps:
            reason = "max_steps"
        else:
            seeds = self._out_seeds(c)
            if not seeds:
                reason = "not_in_store"
        if reason is None:
            params = replace(self.p, max_hops=self.p.max_hops - hop, max_steps=self.p.max_steps - step,
                             asset=None, follow_conversions=False)
            sub = self.engine(self.store, out.chain, seeds, params)
            seeded = sum(sub.seeded.values())
            if seeded > 0:
                self.add(_Part(sub, out.chain, tainted_out, seeded, hop, step))
                return "followed"
            reason = "time_window" if self.p.since is not None or self.p.until is not None else "not_in_store"
        self.endpoints.append(Endpoint(out.address, None, out.asset, reason, tainted_out, hop,
                                       chain=out.chain))
        return reason

    def _out_seeds(self, c: Conversion) -> list[Seed]:
        """The outputs (UTXO) or transfers (accounts) of the out transaction that pay the out side."""
        out = c.out
        if get_chain(out.chain).is_utxo:
            rows = self.store.query("SELECT n FROM outputs WHERE chain = ? AND txid = ? AND address = ? "
                                    "ORDER BY n", [out.chain, out.txid, out.address])
        else:
            rows = self.store.query(
                "SELECT transfer_index FROM transfers WHERE chain = ? AND txid = ? AND to_address = ? "
                "AND asset = ? AND kind <> 'fee' AND value > 0 ORDER BY transfer_index",
                [out.chain, out.txid, out.address, out.asset])
        return [Seed("output", f"{out.txid}:{n}", out.txid, int(n)) for (n,) in rows]


def follow_conversions(store: ChainStore, result: TraceResult, params: TraceParams,
                       engine: Engine, lists: TraceLists | None = None) -> TraceResult:
    """The trace ``result`` continued across the conversions it reached (forward traces only); the result
    itself when it reached none. ``lists``: the store's conversion in sides and pools when the caller holds
    them (then a trace that reaches none asks the store nothing)."""
    if params.direction is not Direction.FORWARD or not params.follow_conversions:
        return result
    if lists is not None:  # nothing to cross and no pool to mark: the result as it is, asking nothing
        pools = lists.pools.get(result.chain, frozenset())
        if not lists.conversion_in and not pools:  # a store without conversions: no endpoint to look at
            return result
        resting = {e.address for e in result.endpoints if e.address is not None and e.txid is None}
        if not lists.reaches_conversion(result.chain, resting) and not any(
                e.address in pools and e.category is None and e.tainted_value > 0 for e in result.endpoints):
            return result
    crossing = _Crossing(store, params, engine, lists)
    crossing.add(_Part(result, result.chain))
    if not crossing.changed:
        return result
    crossing.finish()
    fees = {(asset if chain == result.chain else f"{chain}:{asset}"): value
            for (chain, asset), value in sorted(crossing.fees.items()) if value}
    log.info("trace %s: %d conversions followed", result.chain, len(crossing.docs))
    flows = tuple(crossing.flows)
    return TraceResult(result.chain, params, result.seeds, tuple(crossing.endpoints), dict(result.seeded),
                       fees, dict(result.overlap), tuple(crossing.docs), _flows=flows)
