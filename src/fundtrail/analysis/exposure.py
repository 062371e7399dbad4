"""Exposure: which kinds of counterparties an address's funds came from and went to.

*Direct* exposure looks one hop away. On UTXO chains the value an address received in a transaction is
split over the transaction's input addresses in proportion to their inputs, and the value it sent is
its share of the inputs times each output; transactions where the address (or its cluster) is also on
the other side are change, not exposure. On account chains each transfer counts whole, per asset.
Counterparties are attributed through tags (propagated through clusters) and sanctions lists; a
counterparty counts towards its category and towards its abuse (``sanction`` when listed), so the
shares of different categories may overlap; ``unattributed`` holds the rest.

*Indirect* exposure follows funds further with :func:`fundtrail.analysis.tracing.trace_funds` (haircut
policy), backward for the sources of what the address received and forward for the destinations of
what it sent, and groups the endpoints of the trace by category.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from fundtrail.analysis import tracing
from fundtrail.domain.chains import get_chain
from fundtrail.domain.taint import Direction, TaintPolicy
from fundtrail.errors import InputError
from fundtrail.intel.attribution import Attribution, attribute
from fundtrail.intel.sanctions import SanctionHit, sanctioned_among
from fundtrail.intel.tagstore import attribute_addresses, canonical_or_given, has_table
from fundtrail.store.chainstore import ChainStore

log = logging.getLogger(__name__)

UNATTRIBUTED = "unattributed"
COINBASE = "coinbase"
DIRECTIONS = ("received", "sent")


@dataclass(frozen=True, slots=True)
class CounterpartyFlow:
    """Value that moved between the address and one counterparty, in one direction and asset."""

    direction: str
    asset: str
    counterparty: str | None
    counterparty_id: int | None
    value: int
    tx_count: int
    txids: tuple[str, ...]
    """Up to five of the transactions (the first ones)."""
    attribution: Attribution | None = None
    sanctions: tuple[SanctionHit, ...] = ()
    is_coinbase: bool = False

    @property
    def categories(self) -> list[str]:
        """The categories this counterparty counts towards (category, abuse, ``sanction``)."""
        out: list[str] = []
        if self.is_coinbase:
            return [COINBASE]
        att = self.attribution
        for label in (att.category if att else None, att.abuse if att else None,
                      "sanction" if self.sanctions else None):
            if label and label not in out:
                out.append(label)
        return out or [UNATTRIBUTED]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able mapping."""
        att = self.attribution
        return {"direction": self.direction, "asset": self.asset, "counterparty": self.counterparty,
                "value": str(self.value), "tx_count": self.tx_count, "txids": list(self.txids),
                "categories": self.categories,
                "entity": att.entity if att else None, "tag_source": att.source if att else None,
                "tag_confidence": att.confidence if att else None,
                "via_cluster": att.via_cluster if att else None,
                "sanctions": [f"{h.list_name} {h.asset_code}" for h in self.sanctions]}


@dataclass(frozen=True, slots=True)
class CategoryExposure:
    """The value of one category in one direction and asset, and its share of the total."""

    category: str
    value: int
    share: float
    counterparties: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able mapping."""
        return {"value": str(self.value), "share": round(self.share, 6),
                "counterparties": self.counterparties}


@dataclass(frozen=True, slots=True)
class DirectExposure:
    """Direct (one-hop) exposure of an address."""

    chain: str
    address: str
    flows: tuple[CounterpartyFlow, ...]
    totals: Mapping[tuple[str, str], int]
    """(asset, direction) -> total value that direction (change excluded)."""

    def assets(self) -> list[str]:
        """Assets with any flow, the native one first."""
        return sorted({a for a, _ in self.totals}, key=lambda a: (a != "native", a))

    def by_category(self, asset: str, direction: str) -> dict[str, CategoryExposure]:
        """Per category: value, share of the direction's total, and how many counterparties."""
        total = self.totals.get((asset, direction), 0)
        values: dict[str, int] = defaultdict(int)
        parties: dict[str, int] = defaultdict(int)
        for f in self.flows:
            if f.asset != asset or f.direction != direction:
                continue
            for cat in f.categories:
                values[cat] += f.value
                parties[cat] += 1
        return {cat: CategoryExposure(cat, v, v / total if total else 0.0, parties[cat])
                for cat, v in sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))}

    def to_dict(self) -> dict[str, Any]:
        """``{asset: {direction: {"total", "by_category": {category: {value, share, counterparties}}}}}``."""
        out: dict[str, Any] = {}
        for asset in self.assets():
            out[asset] = {d: {"total": str(self.totals.get((asset, d), 0)),
                              "by_category": {c: e.to_dict() for c, e in self.by_category(asset, d).items()}}
                          for d in DIRECTIONS}
        return out


def _self_ids(store: ChainStore, chain: str, address_id: int) -> list[int]:
    """The address and the other addresses of its cluster (its own change is not exposure)."""
    if not has_table(store, "clusters"):
        return [address_id]
    rows = store.con.execute(
        """SELECT m.address_id FROM clusters c
           JOIN clusters m ON m.chain = c.chain AND m.cluster_id = c.cluster_id
           WHERE c.chain = ? AND c.address_id = ?""", [chain, address_id]).fetchall()
    return sorted({address_id, *(int(r[0]) for r in rows)})


_UTXO_SQL = """
    WITH me AS (SELECT unnest($self::BIGINT[]) AS id),
         rx AS (SELECT txid, height, sum(value)::HUGEINT AS v FROM outputs
                WHERE chain = $c AND address_id = $x GROUP BY txid, height),
         rx_ext AS (SELECT rx.* FROM rx WHERE NOT EXISTS (
                      SELECT 1 FROM inputs i WHERE i.chain = $c AND i.txid = rx.txid AND i.height = rx.height
                        AND i.address_id IN (SELECT id FROM me))),
         senders AS (SELECT i.txid, i.height, i.address_id, any_value(i.address) AS address,
                            sum(i.value)::HUGEINT AS v
                     FROM inputs i JOIN rx_ext USING (txid, height) WHERE i.chain = $c GROUP BY ALL),
         stot AS (SELECT txid, height, sum(v) AS total FROM senders GROUP BY ALL),
         received AS (
            SELECT 'received' AS direction, s.address_id AS cid, s.address AS caddr, r.txid, r.height,
                   CASE WHEN t.total > 0 THEN (r.v * s.v) // t.total ELSE 0 END AS value
            FROM rx_ext r JOIN senders s USING (txid, height) JOIN stot t USING (txid, height)
            UNION ALL
            SELECT 'received', -1, NULL, r.txid, r.height, r.v FROM rx_ext r
            WHERE NOT EXISTS (SELECT 1 FROM senders s WHERE s.txid = r.txid AND s.height = r.height)),
         sx AS (SELECT txid, height, sum(value)::HUGEINT AS v FROM inputs
                WHERE chain = $c AND address_id = $x GROUP BY txid, height),
         tin AS (SELECT i.txid, i.height, sum(i.value)::HUGEINT AS total
                 FROM inputs i JOIN sx USING (txid, height) WHERE i.chain = $c GROUP BY ALL),
         outs AS (SELECT o.txid, o.height, o.address_id, any_value(o.address) AS address,
                         sum(o.value)::HUGEINT AS v
                  FROM outputs o JOIN sx USING (txid, height)
                  WHERE o.chain = $c AND o.value > 0
                    AND (o.address_id IS NULL OR o.address_id NOT IN (SELECT id FROM me))
                  GROUP BY ALL),
         sent AS (
            SELECT 'sent' AS direction, o.address_id AS cid, o.address AS caddr, o.txid, o.height,
                   CASE WHEN t.total > 0 THEN (o.v * s.v) // t.total ELSE 0 END AS value
            FROM outs o JOIN sx s USING (txid, height) JOIN tin t USING (txid, height)),
         flows AS (SELECT * FROM received UNION ALL SELECT * FROM sent)
    SELECT direction, 'native' AS asset, cid, caddr, sum(value)::HUGEINT, count(DISTINCT txid),
           list(DISTINCT txid ORDER BY txid)[1:5]
    FROM flows GROUP BY direction, cid, caddr"""

_ACCOUNT_SQL = """
    WITH me AS (SELECT unnest($self::BIGINT[]) AS id),
         tr AS (SELECT * FROM transfers t
                WHERE t.chain = $c AND (t.to_id = $x OR t.from_id = $x) AND t.value IS NOT NULL
                  AND t.kind IN ('native', 'internal', 'token')
                  AND t.from_id IS NOT NULL AND t.to_id IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM txs s
                                  WHERE s.chain = $c AND s.txid = t.txid AND s.status = false)),
         flows AS (
            SELECT 'received' AS direction, asset, from_id AS cid, from_address AS caddr, txid, value FROM tr
            WHERE to_id = $x AND from_id NOT IN (SELECT id FROM me)
            UNION ALL
            SELECT 'sent', asset, to_id, to_address, txid, value FROM tr
            WHERE from_id = $x AND to_id NOT IN (SELECT id FROM me))
    SELECT direction, asset, cid, caddr, sum(value)::HUGEINT, count(DISTINCT txid),
           list(DISTINCT txid ORDER BY txid)[1:5]
    FROM flows GROUP BY direction, asset, cid, caddr"""


def direct_exposure(store: ChainStore, chain: str, address: str) -> DirectExposure:
    """Direct exposure of an address, per asset and direction, with attributed counterparties."""
    params = get_chain(chain)
    address = canonical_or_given(chain, address)
    address_id = store.address_id(chain, address)
    if address_id is None:
        return DirectExposure(chain, address, (), {})
    me = _self_ids(store, chain, address_id)
    sql = _UTXO_SQL if params.is_utxo else _ACCOUNT_SQL
    rows = store.con.execute(sql, {"c": chain, "x": address_id, "self": me}).fetchall()
    ids = [int(r[2]) for r in rows if r[2] is not None and r[2] >= 0]
    attributions = attribute(store, chain, ids)
    listed = sanctioned_among(store, chain, [r[3] for r in rows if r[3] is not None])
    flows = []
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for direction, asset, cid, caddr, value, n, txids in rows:
        value = int(value)
        totals[(asset, direction)] += value
        key = None if caddr is None else (caddr.lower() if caddr.startswith("0x") else caddr)
        coinbase = cid == -1
        flows.append(CounterpartyFlow(
            direction=direction, asset=asset, counterparty=caddr, counterparty_id=None if coinbase else cid,
            value=value, tx_count=int(n), txids=tuple(txids or ()),
            attribution=attributions.get(int(cid)) if cid is not None else None,
            sanctions=tuple(listed.get(key, ())) if key else (), is_coinbase=coinbase))
    flows.sort(key=lambda f: (f.asset != "native", f.asset, f.direction, -f.value, f.counterparty or ""))
    return DirectExposure(chain, address, tuple(flows), dict(totals))


# ------------------------------------------------------------------------------------------------
# Indirect exposure through tracing


@dataclass(frozen=True, slots=True)
class TracedParty:
    """An address the traced funds passed through or stopped at, at least ``min_hops`` away.

    ``value`` is the traced (haircut) value that reached it (forward) or came from it (backward);
    a party without an address is a transaction the trace stopped at (a CoinJoin).
    """

    direction: str
    address: str | None
    asset: str
    category: str | None
    abuse: str | None
    entity: str | None
    value: int
    hops: int | None
    sanctioned: bool = False
    txid: str | None = None

    @property
    def categories(self) -> list[str]:
        """The categories this party counts towards."""
        out = [c for c in (self.category, self.abuse, "sanction" if self.sanctioned else None) if c]
        return list(dict.fromkeys(out)) or [UNATTRIBUTED]


@dataclass(frozen=True, slots=True)
class IndirectExposure:
    """Indirect exposure: attributed parties of traces backward (sources) and forward (destinations)."""

    available: bool
    reason: str | None = None
    max_hops: int = 0
    policy: str = "haircut"
    parties: tuple[TracedParty, ...] = ()
    totals: Mapping[tuple[str, str], int] = field(default_factory=dict)
    min_hops: int = 2

    def by_category(self, asset: str, direction: str) -> dict[str, CategoryExposure]:
        """Per category: traced value (at most the direction's total), its share, and how many parties.

        Tagged addresses of one category that follow one another on a path both count the value that
        passed through them: the value is an upper bound, capped at the total traced.
        """
        total = self.totals.get((asset, direction), 0)
        values: dict[str, int] = defaultdict(int)
        parties: dict[str, int] = defaultdict(int)
        for e in self.parties:
            if e.asset != asset or e.direction != direction:
                continue
            for cat in e.categories:
                values[cat] += e.value
                parties[cat] += 1
        capped = {cat: min(v, total) if total else v for cat, v in values.items()}
        return {cat: CategoryExposure(cat, v, v / total if total else 0.0, parties[cat])
                for cat, v in sorted(capped.items(), key=lambda kv: (-kv[1], kv[0]))}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able mapping, like :meth:`DirectExposure.to_dict` plus how it was traced."""
        if not self.available:
            return {"available": False, "reason": self.reason}
        assets = sorted({a for a, _ in self.totals} | {e.asset for e in self.parties},
                        key=lambda a: (a != "native", a))
        out: dict[str, Any] = {"available": True, "policy": self.policy, "max_hops": self.max_hops,
                               "min_hops": self.min_hops}
        for asset in assets:
            out[asset] = {d: {"total": str(self.totals.get((asset, d), 0)),
                              "by_category": {c: e.to_dict() for c, e in self.by_category(asset, d).items()}}
                          for d in DIRECTIONS}
        return out


def _field(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def indirect_exposure(store: ChainStore, chain: str, address: str, *, max_hops: int = 4, min_hops: int = 2,
                      totals: Mapping[tuple[str, str], int] | None = None) -> IndirectExposure:
    """Trace backward and forward from the address (haircut); group the attributed parties by category.

    A party is an address of the trace's flows (the source of a flow backward, its receiver forward) at
    ``min_hops`` owner hops or more (nearer ones are direct exposure), or a transaction the trace stopped
    at. Hops count hand-overs between owners, as in a trace: funds that move on inside one owner (change,
    a peel chain, a co-spend cluster) stay at the same hop, and ``max_hops`` bounds hand-overs.
    Only parties that are tagged or listed are kept. Shares are of the value each trace started from
    (else of ``totals``, the direct totals per (asset, direction)).
    """
    address = canonical_or_given(chain, address)
    found: dict[tuple[str, str, str], list[int]] = {}  # (direction, asset, address) -> [value, nearest hop]
    stops: list[TracedParty] = []
    denominators: dict[tuple[str, str], int] = dict(totals or {})
    for direction, trace_direction in (("received", Direction.BACKWARD), ("sent", Direction.FORWARD)):
        try:
            params = tracing.TraceParams(direction=trace_direction, policy=TaintPolicy.HAIRCUT,
                                         max_hops=max_hops)
            result = tracing.trace_funds(store, chain, [address], params)
        except (LookupError, InputError) as exc:  # an address the store has never seen, nothing to trace
            log.info("no %s trace for %s: %s", trace_direction, address, exc)
            continue
        except Exception as exc:  # noqa: BLE001 - a failing trace must not take the rest of the risk view down
            log.warning("%s trace of %s failed: %s", trace_direction, address, exc)
            first_line = (str(exc).splitlines() or [""])[0]
            return IndirectExposure(False, f"the {trace_direction} trace failed: "
                                           f"{type(exc).__name__}: {first_line}")
        for asset, value in (_field(result, "seeded", {}) or {}).items():
            if int(value):  # the value the trace started from is the base of the shares
                denominators[(asset, direction)] = int(value)
        side = "from_address" if trace_direction == "backward" else "to_address"
        for f in _field(result, "flows", ()) or ():
            party, hop = _field(f, side), int(_field(f, "hop", 0) or 0)
            if party is None or party == address or hop < min_hops:
                continue
            slot = found.setdefault((direction, str(_field(f, "asset", "native")), party), [0, hop])
            slot[0] += int(_field(f, "tainted_value", 0) or 0)
            slot[1] = min(slot[1], hop)
        for e in _field(result, "endpoints", ()) or ():
            hops = int(_field(e, "hops", 0) or 0)
            if _field(e, "address") is None and _field(e, "category") and hops >= min_hops:
                stops.append(TracedParty(direction, None, str(_field(e, "asset", "native")),
                                         _field(e, "category"), None, _field(e, "entity"),
                                         int(_field(e, "tainted_value", 0) or 0), hops,
                                         txid=_field(e, "txid")))
    named = sorted({a for _, _, a in found})
    listed = sanctioned_among(store, chain, named)
    attributions = attribute_addresses(store, chain, named)
    parties = list(stops)
    for (direction, asset, party), (value, hop) in sorted(found.items()):
        key = party.lower() if party.startswith("0x") else party
        att = attributions.get(key)
        if att is None and key not in listed:
            continue
        parties.append(TracedParty(direction, party, asset, att.category if att else None,
                                   att.abuse if att else None, att.entity if att else None, value, hop,
                                   sanctioned=key in listed))
    return IndirectExposure(True, None, max_hops, "haircut", tuple(parties), denominators, min_hops)


def counterparty_categories(store: ChainStore, chain: str) -> pa.Table:
    """(address_id, category) for every address of ``chain`` that is attributed (tags through clusters) or
    sanctioned: the categories it counts towards as a counterparty of direct exposure, as
    :attr:`CounterpartyFlow.categories` names them. Other addresses count as ``unattributed``.

    The whole-chain exposure job (Spark) joins its flows with this table.
    """
    from fundtrail.intel.tagstore import propagate_to_clusters

    attributions = propagate_to_clusters(store, chain)
    hits: dict[int, tuple[SanctionHit, ...]] = {}
    if has_table(store, "sanctions"):
        rows = store.con.execute(
            """SELECT a.id, a.address FROM addresses a
               WHERE a.chain = ? AND lower(a.address) IN (SELECT lower(address) FROM sanctions)""",
            [chain]).fetchall()
        listed = sanctioned_among(store, chain, [r[1] for r in rows])
        for aid, address in rows:
            found = listed.get(address.lower() if address.startswith("0x") else address)
            if found:
                hits[int(aid)] = tuple(found)
    ids: list[int] = []
    categories: list[str] = []
    for aid in sorted(set(attributions) | set(hits)):
        flow = CounterpartyFlow("", "", None, aid, 0, 0, (), attributions.get(aid), hits.get(aid, ()))
        for category in flow.categories:
            ids.append(aid)
            categories.append(category)
    return pa.table({"address_id": pa.array(ids, pa.int64()), "category": pa.array(categories, pa.string())})


def exposure_document(direct: DirectExposure, indirect: IndirectExposure | None) -> dict[str, Any]:
    """The ``exposure`` section of an address document."""
    return {"direct": direct.to_dict(),
            "indirect": (indirect or IndirectExposure(False, "not computed")).to_dict()}
