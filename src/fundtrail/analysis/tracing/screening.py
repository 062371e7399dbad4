"""Sanctions screening of a trace: every flow and endpoint against the imported lists, as of its date.

A flow is flagged when its sender or receiver was on a list *in force on the day of its transaction*: the
latest snapshot of that list (and asset) dated on or before that day names the address. An address listed
after the transaction is not flagged for it; one delisted before it is not either. An endpoint, where the
value rests, is screened as of the transactions that brought traced value to it (or took it from it,
backward) and against the lists in force now, each hit with the day it was first listed, so that an
address sanctioned since the funds arrived is flagged where a freeze would be asked.

The cost stays small for every trace: one query of the listed addresses (a set), one set lookup per address
of the trace; the dates (transactions, snapshots) are read only when an address is on a list. A trace that
touches no listed address is returned as it was: its document is byte for byte the one without screening.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from fundtrail.analysis.tracing.lists import Key, TraceLists, listing_key
from fundtrail.analysis.tracing.result import Endpoint, Flow, TraceResult
from fundtrail.intel.tagstore import has_table
from fundtrail.store.chainstore import ChainStore

_key = listing_key


@dataclass(frozen=True, slots=True)
class ListingHit:
    """An address on a list in force on a day, with the day it was first listed (on or before that day)."""

    address: str
    list_name: str
    listed_on: date

    def row(self) -> tuple[str, str, str]:
        """(address, list, listed_on as ISO text): how flows and endpoints keep it."""
        return self.address, self.list_name, self.listed_on.isoformat()


class Screen:
    """The imported lists of a store, read once for one trace (``listed``: the listed addresses, when the
    caller holds them already)."""

    def __init__(self, store: ChainStore, listed: frozenset[Key] | None = None) -> None:
        self.store = store
        self.listed: set[Key] | frozenset[Key] = set()
        if listed is not None:
            self.listed = listed
        elif has_table(store, "sanctions"):
            rows = store.query("SELECT DISTINCT chain, address FROM sanctions")
            self.listed = {_key(str(c), str(a)) for c, a in rows}
        self._rows: dict[Key, list[tuple[str, str, date]]] = defaultdict(list)
        self._loaded: set[str] = set()
        self._snapshots: dict[tuple[str, str], list[date]] | None = None

    def hit(self, chain: str | None, address: str | None) -> bool:
        """Whether an address is on any list at all (one set lookup)."""
        return address is not None and _key(chain or "", address) in self.listed

    def _load(self, keys: Iterable[Key]) -> tuple[dict[Key, list[tuple[str, str, date]]],
                                                  dict[tuple[str, str], list[date]]]:
        """The list rows of the listed addresses among ``keys`` (read once each) and the snapshot days."""
        wanted = sorted({a for _, a in keys} - self._loaded)
        if wanted:
            self._loaded.update(wanted)
            rows = self.store.query(
                "SELECT chain, address, list_name, asset_code, listed_on FROM sanctions "
                "WHERE lower(address) IN (SELECT lower(unnest(?)))", [wanted])
            for chain, address, name, asset, day in rows:
                self._rows[_key(str(chain), str(address))].append((str(name), str(asset), day))
        if self._snapshots is None:
            self._snapshots = {}
            for name, asset, day in self.store.query(
                    "SELECT DISTINCT list_name, asset_code, listed_on FROM sanctions ORDER BY 3"):
                self._snapshots.setdefault((str(name), str(asset)), []).append(day)
        return self._rows, self._snapshots

    def lists_on(self, keys: Sequence[Key], chain: str, address: str, day: date | None) -> list[ListingHit]:
        """The lists naming ``address`` in their snapshot in force on ``day`` (the latest one when None)."""
        loaded, snapshots = self._load(keys)
        rows = loaded.get(_key(chain, address), [])
        found: dict[str, date] = {}
        by_list: dict[tuple[str, str], set[date]] = defaultdict(set)
        for name, asset, listed in rows:
            by_list[name, asset].add(listed)
        for (name, asset), days in by_list.items():
            snaps = [d for d in snapshots.get((name, asset), []) if day is None or d <= day]
            if not snaps or snaps[-1] not in days:
                continue
            first = min(d for d in days if day is None or d <= day)
            found[name] = min(first, found.get(name, first))
        return [ListingHit(address, name, when) for name, when in sorted(found.items())]


def _days(store: ChainStore, wanted: dict[str, set[str]]) -> dict[tuple[str, str], date]:
    """The day (UTC) of each transaction, per chain."""
    out: dict[tuple[str, str], date] = {}
    for chain, txids in wanted.items():
        rows = store.query("SELECT txid, min(time) FROM txs WHERE chain = ? AND txid IN (SELECT unnest(?)) "
                           "GROUP BY txid", [chain, sorted(txids)])
        if len(rows) < len(txids):
            rows += store.query("SELECT txid, min(time) FROM transfers WHERE chain = ? AND txid IN "
                                "(SELECT unnest(?)) GROUP BY txid", [chain, sorted(txids)])
        for txid, time in rows:
            out.setdefault((chain, str(txid)), datetime.fromtimestamp(int(time), UTC).date())
    return out


def screen_trace(store: ChainStore, result: TraceResult, lists: TraceLists | None = None) -> TraceResult:
    """``result`` with its flows and endpoints flagged (``sanctioned``, the lists, the listing days); the
    result itself when no address of it was ever on an imported list. ``lists``: the store's lists when
    the caller holds them (:func:`fundtrail.analysis.tracing.lists.trace_lists`)."""
    screen = Screen(store, None if lists is None else lists.listed)
    if not screen.listed:
        return result
    base = result.chain
    end_hits = [e for e in result.endpoints if screen.hit(e.chain or base, e.address)]
    source = result._flows
    if not end_hits and callable(source) and "flows" not in result.__dict__:
        def flagged() -> list[Flow]:
            flows = list(source())
            return _flag_flows(store, screen, base, flows) or flows
        return replace(result, _flows=flagged)
    flows = list(result.flows)
    new_flows = _flag_flows(store, screen, base, flows)
    endpoints = None
    if end_hits:
        endpoints = _flag_endpoints(store, screen, base, result.endpoints, new_flows or flows)
    if new_flows is None and endpoints is None:
        return result
    return replace(result, endpoints=result.endpoints if endpoints is None else tuple(endpoints),
                   _flows=tuple(flows if new_flows is None else new_flows))


def _flag_flows(store: ChainStore, screen: Screen, base: str, flows: list[Flow]) -> list[Flow] | None:
    """The flows flagged, or None when none touches a listed address."""
    marked = [i for i, f in enumerate(flows)
              if screen.hit(f.chain or base, f.from_address) or screen.hit(f.chain or base, f.to_address)]
    if not marked:
        return None
    wanted: dict[str, set[str]] = defaultdict(set)
    keys: list[Key] = []
    for i in marked:
        f = flows[i]
        wanted[f.chain or base].add(f.txid)
        keys.extend(_key(f.chain or base, a) for a in (f.from_address, f.to_address) if a)
    days = _days(store, wanted)
    out = list(flows)
    for i in marked:
        f = flows[i]
        chain = f.chain or base
        day = days.get((chain, f.txid))
        hits = [h for a in dict.fromkeys(x for x in (f.from_address, f.to_address) if x)
                for h in screen.lists_on(keys, chain, a, day)]
        if hits:
            out[i] = replace(f, sanctioned=tuple(sorted({h.list_name for h in hits})),
                             sanctions=tuple(h.row() for h in hits))
    return out


def _flag_endpoints(store: ChainStore, screen: Screen, base: str, endpoints: Iterable[Endpoint],
                    flows: Sequence[Flow]) -> list[Endpoint] | None:
    ends = list(endpoints)
    marked = [i for i, e in enumerate(ends) if screen.hit(e.chain or base, e.address)]
    touching: dict[tuple[str, str], set[str]] = defaultdict(set)
    wanted: dict[str, set[str]] = defaultdict(set)
    targets = {(ends[i].chain or base, ends[i].address) for i in marked}
    for f in flows:
        for a in (f.to_address, f.from_address):
            if a and (f.chain or base, a) in targets:
                touching[f.chain or base, a].add(f.txid)
                wanted[f.chain or base].add(f.txid)
    for i in marked:
        if ends[i].txid:
            wanted[ends[i].chain or base].add(str(ends[i].txid))
    days = _days(store, wanted)
    keys = [_key(c, a) for c, a in targets if a]
    changed = False
    for i in marked:
        e = ends[i]
        chain, address = e.chain or base, str(e.address)
        txids = touching.get((chain, address)) or ({e.txid} if e.txid else set())
        seen = sorted({d for t in txids if (d := days.get((chain, t))) is not None})
        dates: list[date | None] = [*seen, None]  # and the lists in force now: the funds rest there now
        hits: dict[str, ListingHit] = {}
        for day in dates:
            for h in screen.lists_on(keys, chain, address, day):
                hits.setdefault(h.list_name, h)
        if hits:
            ends[i] = replace(e, sanctioned=tuple(sorted(hits)),
                              sanctions=tuple(h.row() for _, h in sorted(hits.items())))
            changed = True
    return ends if changed else None

