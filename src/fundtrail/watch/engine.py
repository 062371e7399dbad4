"""Evaluating watches against the chain store: which watches new blocks touch, and what their funds did.

Incremental: :class:`WatchIndex` maps every watched point (an address, an output ``txid:n``, and the
addresses the funds reached since) to its watches, so that for new blocks only the inputs (UTXO chains)
or transfers (account chains) of those blocks are read and matched; only the watches they touch are
evaluated again, by a forward trace from the watch's targets with the tracing service. A trace's
endpoints and flows give the findings: ``moved`` (a transaction spent watched funds), ``at_service`` (an
attributed service, with its jurisdiction), ``sanctioned``, ``mixer`` and ``bridge``. Each finding has a
key; the same finding always has the same key, so that raising it twice is recognised.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fundtrail.analysis.tracing import TraceParams, trace_funds
from fundtrail.analysis.tracing.result import TraceResult
from fundtrail.domain.chains import get_chain
from fundtrail.errors import FundTrailError
from fundtrail.intel.attribution import SERVICE_CATEGORIES
from fundtrail.store.chainstore import ChainStore

log = logging.getLogger(__name__)

MIXER_CATEGORIES = frozenset({"mixing_service", "coinjoin", "mixer", "privacy_pool"})
"""Categories (and the trace's ``coinjoin`` stop) that raise a ``mixer`` alert."""
BRIDGE_CATEGORIES = frozenset({"bridge", "defi_bridge"})
"""Categories that raise a ``bridge`` alert."""
ALERT_KINDS = ("moved", "at_service", "sanctioned", "mixer", "bridge")
"""The kinds of alert, as the alert document names them."""

WATCH_TRACE = TraceParams(max_hops=6, max_steps=200)
"""The trace a watch runs: forward, haircut, stopping at services (the defaults of ``fundtrail trace``)."""


@dataclass(frozen=True, slots=True)
class Point:
    """An address or an output (``txid:n``) on a chain."""

    chain: str
    address: str = ""
    txid: str = ""
    n: int = -1

    @property
    def seed(self) -> str:
        """The point as a trace seed."""
        return f"{self.txid}:{self.n}" if self.txid else self.address


@dataclass(frozen=True, slots=True)
class Finding:
    """An alert to raise (once: ``key`` names it)."""

    key: str
    watch_id: int
    kind: str
    chain: str
    txid: str | None
    address: str | None
    value: int | None
    height: int | None = None
    entity: str | None = None
    category: str | None = None
    jurisdiction: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Evaluation:
    """What evaluating one watch found: the findings and the addresses its funds now rest at."""

    watch_id: int
    findings: list[Finding]
    reached: set[str]


class WatchIndex:
    """Every watched point of one chain, to its watches."""

    def __init__(self, chain: str) -> None:
        self.chain = chain
        self.by_address: dict[str, set[int]] = defaultdict(set)
        self.by_output: dict[tuple[str, int], set[int]] = defaultdict(set)

    def add(self, watch_id: int, point: Point) -> None:
        """Follow ``point`` for the watch."""
        if point.txid:
            self.by_output[(point.txid, point.n)].add(watch_id)
        elif point.address:
            self.by_address[point.address].add(watch_id)

    def __len__(self) -> int:
        return len(self.by_address) + len(self.by_output)

    def touched(self, store: ChainStore, low: int, high: int) -> dict[int, set[str]]:
        """Watches whose points blocks ``low..high`` spend (or send from): watch id -> txids."""
        out: dict[int, set[str]] = defaultdict(set)
        if not self.by_address and not self.by_output:
            return out
        if get_chain(self.chain).is_utxo:
            rows = store.con.execute(
                "SELECT txid, prev_txid, prev_n, address FROM inputs "
                "WHERE chain = ? AND height BETWEEN ? AND ?",
                [self.chain, low, high],
            ).fetchall()
            for txid, prev_txid, prev_n, address in rows:
                hit = self.by_address.get(address) if address is not None else None
                if hit:
                    for w in hit:
                        out[w].add(txid)
                if self.by_output:
                    hit = self.by_output.get((prev_txid, prev_n))
                    if hit:
                        for w in hit:
                            out[w].add(txid)
        else:
            rows = store.con.execute(
                "SELECT txid, from_address FROM transfers WHERE chain = ? AND height BETWEEN ? AND ? "
                "AND from_address IS NOT NULL",
                [self.chain, low, high],
            ).fetchall()
            for txid, address in rows:
                hit = self.by_address.get(address)
                if hit:
                    for w in hit:
                        out[w].add(txid)
        return out


def _heights(store: ChainStore, chain: str, txids: Iterable[str]) -> dict[str, int]:
    wanted = sorted(set(txids))
    if not wanted:
        return {}
    marks = ", ".join("?" for _ in wanted)
    rows = store.con.execute(
        f"SELECT txid, height FROM txs WHERE chain = ? AND txid IN ({marks})", [chain, *wanted]
    ).fetchall()
    if not rows and not get_chain(chain).is_utxo:
        rows = store.con.execute(
            f"SELECT DISTINCT txid, height FROM transfers WHERE chain = ? AND txid IN ({marks})",
            [chain, *wanted],
        ).fetchall()
    return {t: int(h) for t, h in rows}


def block_times(store: ChainStore, chain: str, heights: Iterable[int]) -> dict[int, int]:
    """The block time (Unix seconds) of each stored height among ``heights``."""
    wanted = sorted(set(heights))
    if not wanted:
        return {}
    marks = ", ".join("?" for _ in wanted)
    rows = store.con.execute(
        f"SELECT height, time FROM blocks WHERE chain = ? AND height IN ({marks})", [chain, *wanted]
    ).fetchall()
    return {int(h): int(t) for h, t in rows}


def _sanctioned(store: ChainStore, chain: str, addresses: Iterable[str]) -> dict[str, list[Any]]:
    from fundtrail.intel.sanctions import sanctioned_among
    from fundtrail.intel.tagstore import has_table

    if not has_table(store, "sanctions"):
        return {}
    return sanctioned_among(store, chain, [a for a in set(addresses) if a])


def findings_of(
    store: ChainStore, chain: str, watch_id: int, targets: Sequence[Point], trace: TraceResult
) -> Evaluation:
    """The findings of a watch's trace: moves, services, sanctioned addresses, mixers, bridges."""
    flows = trace.flows
    endpoints = trace.endpoints
    heights = _heights(store, chain, [f.txid for f in flows] + [e.txid for e in endpoints if e.txid])
    found: list[Finding] = []
    first_steps: dict[str, int] = defaultdict(int)
    for f in flows:
        if (f.step or 1) == 1:
            first_steps[f.txid] += f.tainted_value
    watched = {p.address for p in targets if p.address}
    for txid, value in first_steps.items():
        found.append(
            Finding(
                f"w{watch_id}:moved:{chain}:{txid}",
                watch_id,
                "moved",
                chain,
                txid,
                next((f.from_address for f in flows if f.txid == txid and f.from_address), None)
                or next(iter(sorted(watched)), None),
                value,
                heights.get(txid),
            )
        )
    into: dict[str, str] = {}
    for f in flows:
        if f.to_address:
            into.setdefault(f.to_address, f.txid)
    reached: set[str] = set()
    for e in endpoints:
        at_tx = e.txid or (into.get(e.address) if e.address else None)
        category = (e.category or "").lower()
        kind = None
        if category in MIXER_CATEGORIES or e.reason == "coinjoin":
            kind = "mixer"
        elif category in BRIDGE_CATEGORIES:
            kind = "bridge"
        elif e.entity and (category in SERVICE_CATEGORIES or e.reason == "service"):
            kind = "at_service"
        if kind is not None:
            where = e.address or at_tx or ""
            height = heights.get(at_tx or "")
            details: dict[str, Any] = {"hops": e.hops}
            if height is not None and kind == "at_service":
                # the freeze clock starts when the funds arrived at the service: the block's time
                arrived = block_times(store, chain, [height]).get(height)
                if arrived is not None:
                    details["arrived_at"] = datetime.fromtimestamp(arrived, UTC).isoformat()
            found.append(
                Finding(
                    f"w{watch_id}:{kind}:{chain}:{where}",
                    watch_id,
                    kind,
                    chain,
                    at_tx,
                    e.address,
                    e.tainted_value,
                    height,
                    e.entity,
                    e.category,
                    (e.jurisdiction or "").split(",")[0].strip().upper()[:2] or None,
                    details,
                )
            )
        elif e.reason == "unspent" and e.address and e.tainted_value > 0:
            reached.add(e.address)
    touched = {f.to_address for f in flows if f.to_address} | {e.address for e in endpoints if e.address}
    for address, hits in _sanctioned(store, chain, touched).items():
        if address in watched or not hits:
            continue
        at_tx = into.get(address)
        value = sum(f.tainted_value for f in flows if f.to_address == address)
        found.append(
            Finding(
                f"w{watch_id}:sanctioned:{chain}:{address}",
                watch_id,
                "sanctioned",
                chain,
                at_tx,
                address,
                value,
                heights.get(at_tx or ""),
                None,
                None,
                None,
                {"lists": sorted({str(getattr(h, "list_name", "")) for h in hits})},
            )
        )
    return Evaluation(watch_id, found, reached)


def evaluate(
    store: ChainStore, chain: str, watch_id: int, targets: Sequence[Point], params: TraceParams = WATCH_TRACE
) -> Evaluation:
    """Trace a watch's targets forward and return what it found (nothing when no target is in the store)."""
    seeds = [p.seed for p in targets]
    try:
        trace = trace_funds(store, chain, seeds, params)
    except FundTrailError as error:  # a target the store does not hold yet: nothing to follow
        log.debug("watch %d: not traced (%s)", watch_id, error)
        return Evaluation(watch_id, [], set())
    return findings_of(store, chain, watch_id, targets, trace)
