"""Tracing funds with a named taint policy: forward (where did the funds go) or backward (where from).

``trace_funds`` follows value hop by hop, a hop being one transaction (UTXO chains) or one transfer
(account chains), and applies the policy's rule (:mod:`fundtrail.domain.taint`) at each step. It stops
where the funds rest or where it cannot or should not see further, and says why:

* ``service``: an address attributed to a service (exchange, mixer, bridge ...), when
  ``stop_at_services``; ``hub``: an address with more than ``hub_degree`` transactions;
  ``coinjoin``: a CoinJoin transaction (``tx_patterns``); ``unspent``: funds not spent (yet);
  ``max_hops``; ``min_value``: a tainted value below ``min_value``; ``time_window``: a spend outside
  ``since``/``until``; ``change``: a change output when ``follow_change`` is off;
  backward also ``coinbase`` (newly mined), ``origin`` (rewards, genesis) and ``unknown`` (history the
  store does not hold).

How it works. UTXO chains: (1) the frontier of outputs is expanded one hop at a time on the chain's
transaction graph (integer arrays, :mod:`fundtrail.analysis.graph`), all outputs of a hop at once, to
find the transactions the funds can reach; (2) taint is propagated over those transactions in chain
order (forward) or reverse chain order (backward), level by level with numpy for haircut and poison,
transaction by transaction for fifo, so every transaction is computed once with all its tainted
inputs and a hop count is the length of the shortest tainted path. Account chains: (1) one query per
hop collects the transfers of every address the funds can reach; (2) the transfers are replayed in
time order through each address's balance (:class:`fundtrail.domain.taint.BalancePool`).

The result is deterministic: sorted by strings and integers only, so a re-run on the same data gives
the same document byte for byte.
"""

from __future__ import annotations

import gc
import logging
import re
import threading
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from fundtrail.analysis.graph import (
    COINJOIN_PATTERNS,
    Snapshot,
    UtxoGraph,
    catalog,
    expand_ranges,
    has_patterns,
    snapshot,
    utxo_graph,
)
from fundtrail.domain.addresses import canonical_address, is_valid_address
from fundtrail.domain.chains import NATIVE_ASSET, get_chain
from fundtrail.domain.taint import (
    TAINT,
    BalancePool,
    Coin,
    Direction,
    Lot,
    TaintPolicy,
    haircut_shares,
    haircut_shares_grouped,
    lots_amount,
    propagate_back,
    propagate_tx,
)
from fundtrail.errors import InputError, InvalidAddressError, NotFoundError
from fundtrail.intel.attribution import Attribution, attribute
from fundtrail.store.chainstore import ChainStore

try:  # the tag store registers its tables on import, so that stores opened afterwards have them
    import fundtrail.intel.tagstore  # noqa: F401
except ImportError:  # pragma: no cover - the intel layer is optional for tracing
    pass

log = logging.getLogger(__name__)

REASONS = ("service", "hub", "coinjoin", "unspent", "max_hops", "min_value", "time_window", "change",
           "coinbase", "origin", "unknown")
"""Why a trace stopped at an endpoint."""

STOP_REASONS = frozenset(REASONS) - {"unspent", "coinbase", "origin"}
"""Reasons where the trace was cut short (listed under ``stopped``), as opposed to where funds rest."""

_TXID = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


# ------------------------------------------------------------------------------------------ model


@dataclass(frozen=True, slots=True)
class TraceParams:
    """The options of a trace, as given (normalised)."""

    direction: Direction
    policy: TaintPolicy
    max_hops: int
    min_value: int
    since: int | None
    until: int | None
    asset: str | None
    stop_at_services: bool
    hub_degree: int
    follow_change: bool

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON values (amounts as strings)."""
        return {"direction": self.direction.value, "policy": self.policy.value, "max_hops": self.max_hops,
                "min_value": str(self.min_value), "since": self.since, "until": self.until,
                "asset": self.asset, "stop_at_services": self.stop_at_services,
                "hub_degree": self.hub_degree, "follow_change": self.follow_change}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where traced value rests or where the trace stopped, with who is behind it."""

    address: str | None
    txid: str | None
    asset: str
    reason: str
    tainted_value: int
    hops: int
    cluster: str | None = None
    entity: str | None = None
    category: str | None = None
    jurisdiction: str | None = None
    degree: int | None = None
    abuse: str | None = None

    def sort_key(self) -> tuple[Any, ...]:
        """Deterministic order: largest value first, then by names."""
        return (-self.tainted_value, self.asset, self.address or "", self.txid or "", self.reason)

    def to_dict(self) -> dict[str, Any]:
        """The endpoint as a JSON object (values as strings)."""
        return {"address": self.address, "txid": self.txid, "asset": self.asset, "cluster": self.cluster,
                "entity": self.entity, "category": self.category, "jurisdiction": self.jurisdiction,
                "tainted_value": str(self.tainted_value), "hops": self.hops, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Flow:
    """One movement of traced value: an output (UTXO forward), an input (UTXO backward) or a transfer."""

    txid: str
    from_address: str | None
    to_address: str | None
    asset: str
    value: int
    tainted_value: int
    hop: int
    evidence: tuple[str, ...] = ()
    output: int | None = None
    input: int | None = None
    index: int | None = None
    kind: str | None = None

    def sort_key(self) -> tuple[Any, ...]:
        """Deterministic order: by hop, transaction, position."""
        return (self.hop, self.txid, self.asset, self.kind or "",
                self.index if self.index is not None else -1,
                self.output if self.output is not None else -1, self.input if self.input is not None else -1,
                self.from_address or "", self.to_address or "")

    def to_dict(self) -> dict[str, Any]:
        """The flow as a JSON object (values as strings)."""
        doc: dict[str, Any] = {"txid": self.txid, "from": self.from_address, "to": self.to_address,
                               "asset": self.asset, "value": str(self.value),
                               "tainted_value": str(self.tainted_value), "hop": self.hop}
        if self.output is not None:
            doc["output"] = self.output
        if self.input is not None:
            doc["input"] = self.input
        if self.index is not None:
            doc["index"] = self.index
        if self.kind is not None:
            doc["kind"] = self.kind
        doc["evidence"] = list(self.evidence)
        return doc


@dataclass(frozen=True)
class TraceResult:
    """A finished trace: endpoints, flows, where it stopped, totals. ``to_dict`` is the JSON contract.

    ``flows`` are built on first access (from arrays the trace kept), sorted by hop, txid, position.
    """

    chain: str
    params: TraceParams
    seeds: tuple[str, ...]
    endpoints: tuple[Endpoint, ...]
    seeded: dict[str, int] = field(default_factory=dict)
    fees: dict[str, int] = field(default_factory=dict)
    overlap: dict[str, int] = field(default_factory=dict)
    _flows: Sequence[Flow] | Callable[[], Sequence[Flow]] = field(default=(), repr=False, compare=False)

    @cached_property
    def flows(self) -> tuple[Flow, ...]:
        """Every movement of traced value, sorted."""
        source = self._flows
        with _bulk():
            flows = source() if callable(source) else source
            return tuple(sorted(flows, key=Flow.sort_key))

    @property
    def policy(self) -> TaintPolicy:
        """The taint policy."""
        return self.params.policy

    @property
    def direction(self) -> Direction:
        """Forward or backward."""
        return self.params.direction

    @property
    def stopped(self) -> tuple[Endpoint, ...]:
        """Endpoints where the trace was cut short (hub, service, coinjoin, limits)."""
        return tuple(e for e in self.endpoints if e.reason in STOP_REASONS)

    def totals(self) -> dict[str, Any]:
        """Per asset: value seeded, value at endpoints by reason, fees; counts."""
        assets: dict[str, dict[str, Any]] = {}
        names = sorted(set(self.seeded) | {e.asset for e in self.endpoints} | set(self.fees))
        for asset in names:
            by_reason: dict[str, int] = defaultdict(int)
            for e in self.endpoints:
                if e.asset == asset:
                    by_reason[e.reason] += e.tainted_value
            assets[asset] = {
                "seeded": str(self.seeded.get(asset, 0)),
                "endpoints": str(sum(by_reason.values())),
                "fees": str(self.fees.get(asset, 0)),
                "overlap": str(self.overlap.get(asset, 0)),
                "by_reason": {r: str(v) for r, v in sorted(by_reason.items())},
            }
        return {"flows": len(self.flows), "endpoints": len(self.endpoints), "stopped": len(self.stopped),
                "assets": assets}

    def to_dict(self) -> dict[str, Any]:
        """The trace as the ``fundtrail trace --format json`` document."""
        with _bulk():
            return self._document()

    def _document(self) -> dict[str, Any]:
        stopped = []
        for e in self.stopped:
            item: dict[str, Any] = ({"txid": e.txid} if e.address is None and e.txid
                                    else {"address": e.address})
            item.update({"reason": e.reason, "asset": e.asset, "tainted_value": str(e.tainted_value),
                         "hops": e.hops})
            if e.degree is not None:
                item["degree"] = e.degree
            if e.reason == "service":
                item["entity"] = e.entity
                item["category"] = e.category
            stopped.append(item)
        return {"chain": self.chain, "policy": self.params.policy.value,
                "direction": self.params.direction.value, "seeds": list(self.seeds),
                "parameters": self.params.to_dict(),
                "endpoints": [e.to_dict() for e in self.endpoints],
                "flows": [f.to_dict() for f in self.flows],
                "stopped": stopped, "totals": self.totals()}


@contextmanager
def _bulk() -> Iterator[None]:
    """Pause the cyclic garbage collector while a trace builds many acyclic objects (flows, documents).

    Those objects hold no reference cycles, so the collector has nothing to find in them; left on, it
    walks every live object again and again as they pile up (tens of thousands for a large trace).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# ------------------------------------------------------------------------------------- look-ups


def _known_tables(store: ChainStore) -> set[str]:
    return {r[0] for r in store.con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE NOT temporary AND schema_name = 'main'").fetchall()}


def _with_ids(store: ChainStore, ids: Iterable[int], sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """Run ``sql`` with ``{ids}`` naming a one-column (id) relation of the given ids (a list parameter)."""
    wanted = sorted({int(i) for i in ids if i is not None and int(i) >= 0})
    if not wanted:
        return []
    return store.con.execute("WITH _ft_ids AS (SELECT unnest(?::BIGINT[]) AS id) "
                             + sql.replace("{ids}", "_ft_ids"), [wanted, *params]).fetchall()


def _with_txids(store: ChainStore, txids: Iterable[str], sql: str,
                params: list[Any]) -> list[tuple[Any, ...]]:
    """Run ``sql`` with ``{txids}`` naming a one-column (txid) relation of the given txids."""
    wanted = sorted(set(txids))
    if not wanted:
        return []
    return store.con.execute("WITH _ft_txids AS (SELECT unnest(?::VARCHAR[]) AS txid) "
                             + sql.replace("{txids}", "_ft_txids"), [wanted, *params]).fetchall()


def address_texts(store: ChainStore, chain: str, ids: Iterable[int]) -> dict[int, str]:
    """Address strings of interned ids."""
    rows = _with_ids(store, ids, "SELECT a.id, a.address FROM addresses a JOIN {ids} i ON a.id = i.id "
                                 "WHERE a.chain = ?", [chain])
    return {int(i): a for i, a in rows}


def _direct_tags(store: ChainStore, chain: str, ids: Sequence[int]) -> dict[int, Attribution]:
    """Attribution from direct tags only (used while the tag store is not installed)."""
    if "tags" not in _known_tables(store):
        return {}
    rows = _with_ids(store, ids, """
        SELECT a.id, t.label, t.category, t.abuse, t.jurisdiction, coalesce(t.confidence_level, 0), t.source
        FROM tags t JOIN addresses a ON a.chain = t.chain AND a.address = t.address
        JOIN {ids} i ON i.id = a.id WHERE t.chain = ?
        ORDER BY a.id, coalesce(t.confidence_level, 0) DESC, t.label, t.category""", [chain])
    out: dict[int, Attribution] = {}
    for aid, label, category, abuse, jurisdiction, confidence, source in rows:
        out.setdefault(int(aid), Attribution(label, category, abuse, jurisdiction, int(confidence), source,
                                             False))
    return out


def attribute_ids(store: ChainStore, chain: str, ids: Sequence[int]) -> dict[int, Attribution]:
    """Attribution through the port; direct tags while the tag store is not installed."""
    if not ids:
        return {}
    try:
        return attribute(store, chain, ids)
    except ModuleNotFoundError as exc:
        if exc.name != "fundtrail.intel.tagstore":
            raise
    except duckdb.CatalogException as exc:  # a store opened before the tag tables were registered
        log.warning("attribution through the tag store failed (%s); using direct tags", exc)
    return _direct_tags(store, chain, ids)


def coinjoin_txids(store: ChainStore, chain: str, txids: Sequence[str]) -> set[str]:
    """Which of ``txids`` are CoinJoin transactions (``tx_patterns``)."""
    if not txids or not has_patterns(catalog(store, ("tx_patterns",))):
        return set()
    marks = ", ".join(f"'{p}'" for p in COINJOIN_PATTERNS)
    rows = _with_txids(store, txids, "SELECT DISTINCT p.txid FROM tx_patterns p JOIN {txids} t "
                                     "ON t.txid = p.txid WHERE p.chain = ? "
                                     f"AND lower(p.pattern) IN ({marks})", [chain])
    return {r[0] for r in rows}


# ---------------------------------------------------------------------------------------- seeds


@dataclass(frozen=True, slots=True)
class Seed:
    """A parsed seed: an address, a transaction, or one output / transfer (``txid:n``)."""

    kind: str  # "address" | "tx" | "output"
    text: str
    txid: str | None = None
    n: int | None = None


def normalise_txid(chain: str, txid: str) -> str:
    """Txids as the store keeps them: lower-case hex, ``0x``-prefixed on account chains."""
    txid = txid.strip().lower()
    if not get_chain(chain).is_utxo and not txid.startswith("0x") and _TXID.match(txid):
        txid = "0x" + txid
    return txid


def _tx_exists(store: ChainStore, chain: str, txid: str) -> bool:
    return bool(store.con.execute("SELECT 1 FROM txs WHERE chain = ? AND txid = ? LIMIT 1",
                                  [chain, txid]).fetchall())


def parse_seed(store: ChainStore, chain: str, text: str,
               tx_exists: Callable[[str], bool] | None = None) -> Seed:
    """Parse a seed: ``txid:n``, an address valid for the chain, or a txid held by the store.

    Raises InvalidAddressError for text that is neither, NotFoundError for a txid the store lacks.
    ``tx_exists`` answers whether the store holds a txid (default: a query).
    """
    def exists(txid: str) -> bool:
        return tx_exists(txid) if tx_exists is not None else _tx_exists(store, chain, txid)

    raw = text.strip()
    head, sep, tail = raw.rpartition(":")
    if sep and tail.isdigit() and head:
        txid = normalise_txid(chain, head)
        if not exists(txid):
            raise NotFoundError(f"{chain} transaction", txid)
        return Seed("output", f"{txid}:{int(tail)}", txid, int(tail))
    if is_valid_address(chain, raw):
        return Seed("address", canonical_address(chain, raw))
    txid = normalise_txid(chain, raw)
    if _TXID.match(raw):
        if not exists(txid):
            raise NotFoundError(f"{chain} transaction", txid)
        return Seed("tx", txid, txid)
    if exists(raw):  # a txid in another form (test chains, other networks)
        return Seed("tx", raw, raw)
    canonical_address(chain, raw)  # raises InvalidAddressError with the reason
    raise InvalidAddressError(raw, chain)  # pragma: no cover - canonical_address raised already


def _check_seed_shape(store: ChainStore, chain: str, text: str) -> None:
    """Raise InvalidAddressError for a seed that is neither an address, a txid nor ``txid:n``."""
    raw = text.strip()
    head, sep, tail = raw.rpartition(":")
    if (sep and tail.isdigit() and head) or is_valid_address(chain, raw) or _TXID.match(raw):
        return
    if not _tx_exists(store, chain, raw):
        canonical_address(chain, raw)  # raises with the reason
        raise InvalidAddressError(raw, chain)  # pragma: no cover


def _address_id(store: ChainStore, chain: str, address: str) -> int:
    aid = store.address_id(chain, address)
    if aid is None:
        raise NotFoundError(f"{chain} address", address)
    return int(aid)


# ------------------------------------------------------------------------------- UTXO: shared


OK, SERVICE, HUB, CHANGE, UNSPENT, COINJOIN, WINDOW, COINBASE, UNKNOWN, MAX_HOPS, MIN_VALUE = range(11)
_CODE_REASON = {SERVICE: "service", HUB: "hub", CHANGE: "change", UNSPENT: "unspent", COINJOIN: "coinjoin",
                WINDOW: "time_window", COINBASE: "coinbase", UNKNOWN: "unknown", MAX_HOPS: "max_hops",
                MIN_VALUE: "min_value"}
_BIG_HOP = 1 << 40


@dataclass(eq=False)
class AttributionIndex:
    """The attribution port's answers for every address of a chain that can have one, and clusters.

    The port attributes an address through its own tags or the tags of its cluster, so only addresses
    that are tagged or share a cluster with a tagged address can have an attribution; the index asks
    the port about exactly those, once, and is rebuilt when tags, clusters or actors change.
    """

    fingerprint: tuple[Any, ...]
    known: dict[int, Attribution]
    services: np.ndarray
    cluster_members: np.ndarray
    cluster_values: np.ndarray

    def service_mask(self, addrs: np.ndarray) -> np.ndarray:
        """Which addresses are attributed services."""
        if len(self.services) == 0:
            return np.zeros(len(addrs), dtype=bool)
        pos = np.minimum(np.searchsorted(self.services, addrs), len(self.services) - 1)
        return self.services[pos] == addrs

    def get(self, address_id: int) -> Attribution | None:
        """The attribution of one address (None when it has none)."""
        return self.known.get(int(address_id))

    def clusters(self, ids: Iterable[int]) -> dict[int, str]:
        """Cluster ids (as text) of addresses that are in a cluster."""
        wanted = np.array(sorted({int(i) for i in ids if int(i) >= 0}), dtype=np.int64)
        if len(wanted) == 0 or len(self.cluster_members) == 0:
            return {}
        pos = np.searchsorted(self.cluster_members, wanted)
        pos = np.minimum(pos, len(self.cluster_members) - 1)
        hit = self.cluster_members[pos] == wanted
        return {int(a): str(int(c)) for a, c in zip(wanted[hit], self.cluster_values[pos[hit]], strict=True)}


_ATT_CACHE: weakref.WeakKeyDictionary[ChainStore, dict[str, AttributionIndex]] = weakref.WeakKeyDictionary()
_ATT_LOCK = threading.Lock()


def _has_clusters(cat: dict[str, set[str]]) -> bool:
    return {"chain", "address_id", "cluster_id"} <= cat.get("clusters", set())


def attribution_index(store: ChainStore, chain: str, snap: Snapshot | None = None) -> AttributionIndex:
    """The cached attribution index of ``chain``, rebuilt when tags, clusters or actors changed."""
    snap = snapshot(store, chain) if snap is None else snap
    cat = snap.catalog
    fingerprint = snap.attribution
    with _ATT_LOCK:
        index = _ATT_CACHE.get(store, {}).get(chain)
        if index is not None and index.fingerprint == fingerprint:
            return index
    candidates: list[int] = []
    if "address" in cat.get("tags", set()):
        tagged = ("SELECT DISTINCT a.id FROM tags t JOIN addresses a ON a.chain = t.chain "
                  "AND a.address = t.address WHERE t.chain = $c")
        sql = f"WITH tagged AS ({tagged}) SELECT id FROM tagged"
        if _has_clusters(cat):
            sql += (" UNION SELECT m.address_id FROM clusters c JOIN tagged g ON c.address_id = g.id "
                    "JOIN clusters m ON m.chain = c.chain AND m.cluster_id = c.cluster_id "
                    "WHERE c.chain = $c")
        candidates = sorted(int(r[0]) for r in store.con.execute(sql, {"c": chain}).fetchall())
    known = attribute_ids(store, chain, candidates) if candidates else {}
    services = np.array(sorted(a for a, att in known.items() if att.is_service), dtype=np.int64)
    members = values = np.zeros(0, dtype=np.int64)
    if _has_clusters(cat):
        rows = store.con.execute("SELECT address_id, cluster_id FROM clusters WHERE chain = ? ORDER BY 1",
                                 [chain]).fetchnumpy()
        members = np.asarray(rows["address_id"], dtype=np.int64)
        values = np.asarray(rows["cluster_id"], dtype=np.int64)
    index = AttributionIndex(fingerprint, known, services, members, values)
    with _ATT_LOCK:
        _ATT_CACHE.setdefault(store, {})[chain] = index
    return index


def _group_sum(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Sum of consecutive groups of ``values`` (exact)."""
    out = np.zeros(len(counts), dtype=values.dtype if values.dtype == object else np.int64)
    nonempty = counts > 0
    if nonempty.any():
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        out[nonempty] = np.add.reduceat(values, starts[nonempty])
    return out


def _group_min(values: np.ndarray, counts: np.ndarray, empty: int) -> np.ndarray:
    out = np.full(len(counts), empty, dtype=np.int64)
    nonempty = counts > 0
    if nonempty.any():
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        out[nonempty] = np.minimum.reduceat(values, starts[nonempty])
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


class _UtxoTrace:
    """One trace on a UTXO chain (forward or backward)."""

    def __init__(self, store: ChainStore, chain: str, params: TraceParams) -> None:
        self.store = store
        self.chain = chain
        self.p = params
        snap = snapshot(store, chain)
        self.g = utxo_graph(store, chain, snap)
        self.att = attribution_index(store, chain, snap)
        self.dtype = object if self.g.out_value.dtype == object else np.int64
        self.fee_taint = 0
        self.overlap = 0
        self.seeded = 0
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
                aid = found if found is not None else _address_id(self.store, self.chain, seed.text)
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

    def _change_mask(self, rows: np.ndarray) -> np.ndarray:
        """Outputs paying back to an address that funded the same transaction (address reuse)."""
        g = self.g
        if len(rows) == 0:
            return np.zeros(0, dtype=bool)
        txs = np.unique(g.out_tx[rows])
        in_rows = g.inputs_of(txs)
        width = np.int64(max(len(g.addr_degree), 1) + 1)
        in_keys = g.in_tx[in_rows] * width + g.in_addr[in_rows]
        in_keys = in_keys[g.in_addr[in_rows] >= 0]
        out_keys = g.out_tx[rows] * width + g.out_addr[rows]
        return (g.out_addr[rows] >= 0) & np.isin(out_keys, in_keys)

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
            checks.insert(2, (~seeds & self._change_mask(rows), CHANGE))
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
        """Phase 1: expand the frontier of outputs hop by hop; returns the touched outputs and the
        transactions the traced funds can reach (sorted).

        Outputs and transactions already seen are marked in two masks over the graph, so a hop costs
        in proportion to its frontier, not to all the trace has touched so far.
        """
        g, p = self.g, self.p
        backward = p.direction is Direction.BACKWARD
        all_rows = [seed_rows]
        all_codes = []
        all_exempt = [exempt]
        seen_out = np.zeros(len(g.out_tx), dtype=bool)
        seen_out[seed_rows] = True
        seen_tx = np.zeros(g.tx_count, dtype=bool)
        reached_parts: list[np.ndarray] = []
        is_seed = np.ones(len(seed_rows), dtype=bool)
        frontier, frontier_exempt = seed_rows, exempt
        for depth in range(1, p.max_hops + 2):
            codes = (self.backward_codes(frontier, frontier_exempt) if backward
                     else self.forward_codes(frontier, frontier_exempt, is_seed))
            all_codes.append(codes)
            if depth > p.max_hops:
                break
            go = frontier[codes == OK]
            nxt = g.out_tx[go] if backward else g.out_spender[go]
            nxt = nxt[nxt >= 0]
            new = np.unique(nxt[~seen_tx[nxt]])
            if len(new) == 0:
                break
            seen_tx[new] = True
            reached_parts.append(new)
            if backward:
                prev = g.in_prev[g.inputs_of(new)]
                frontier = np.unique(prev[prev >= 0])
            else:
                frontier = g.outputs_of(new)
            frontier = frontier[~seen_out[frontier]]
            if len(frontier) == 0:
                break
            seen_out[frontier] = True
            frontier_exempt = np.zeros(len(frontier), dtype=bool)
            is_seed = np.zeros(len(frontier), dtype=bool)
            all_rows.append(frontier)
            all_exempt.append(frontier_exempt)
        reached = np.sort(np.concatenate(reached_parts)) if reached_parts else np.zeros(0, dtype=np.int64)
        rows = np.concatenate(all_rows)
        codes = np.concatenate(all_codes)
        ex = np.concatenate(all_exempt)
        order = np.argsort(rows, kind="stable")
        n = len(rows)
        local = _Local(rows=rows[order], code=codes[order], exempt=ex[order],
                       taint=np.zeros(n, dtype=self.dtype), hop=np.full(n, _BIG_HOP, dtype=np.int64),
                       is_seed=np.zeros(n, dtype=bool), arrived=np.zeros(n, dtype=self.dtype))
        pos, _ = local.find(seed_rows)
        local.taint[pos] = g.out_value[seed_rows]
        local.hop[pos] = 0
        local.is_seed[pos] = True
        self.seeded = int(local.taint[pos].sum()) if len(pos) else 0
        self.seed_pos = pos
        return local, reached

    def propagating(self, local: _Local, pos: np.ndarray, found: np.ndarray) -> np.ndarray:
        """Which touched outputs pass their traced value on (structure, hop limit, min_value)."""
        taint = local.taint[pos]
        ok = found & (local.code[pos] == OK) & (local.hop[pos] < self.p.max_hops) & (taint > 0)
        if self.p.min_value > 0:
            ok &= taint >= self.p.min_value
        return ok

    # ---- phase 2, forward

    def _record(self, txs: np.ndarray, hop: np.ndarray, live: np.ndarray, link_tx: np.ndarray,
                link_row: np.ndarray, link_amount: np.ndarray) -> None:
        """Remember the transactions that carried value and the rows that brought it (for flows)."""
        self.live_chunks.append((txs[live], hop[live]))
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
            tainted_in = _group_sum(amounts, in_counts)
            hop = _group_min(np.where(prop, local.hop[pos], _BIG_HOP), in_counts, _BIG_HOP) + 1
            live = tainted_in > 0
            if not live.any():
                continue
            out_counts = g.tx_out_ptr[txs + 1] - g.tx_out_ptr[txs]
            out_rows = g.outputs_of(txs)
            values = g.out_value[out_rows]
            if self.p.policy is TaintPolicy.HAIRCUT:
                shares = haircut_shares_grouped(out_counts, tainted_in, g.tx_in_total[txs], values)
                self.fee_taint += int((tainted_in - _group_sum(shares, out_counts)).sum())
            else:
                shares = np.where(np.repeat(live, out_counts), values, 0)
                fees = np.maximum(g.tx_in_total[txs] - _group_sum(values, out_counts), 0)
                self.fee_taint += int(np.where(live, fees, 0).sum())
            opos, _ = local.find(out_rows)
            self._write_outputs(local, opos, shares, np.repeat(hop, out_counts))
            owner = np.repeat(txs, in_counts)
            self._record(txs, hop, live, owner[prop], in_rows[prop], amounts[prop])

    def _write_outputs(self, local: _Local, opos: np.ndarray, shares: np.ndarray, hops: np.ndarray) -> None:
        """Set the taint of touched outputs; outputs that are seeds keep theirs (the rest is overlap)."""
        is_seed = local.is_seed[opos]
        if is_seed.any():
            self.overlap += int(np.where(is_seed, shares, 0).sum())
            local.arrived[opos[is_seed]] = shares[is_seed]
        write = ~is_seed
        local.taint[opos[write]] = shares[write]
        local.hop[opos[write]] = hops[write]

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
            hop = int(local.hop[pos[prop]].min()) + 1
            out_rows = g.outputs_of(one)
            result = propagate_tx(TaintPolicy.FIFO, coins, [int(v) for v in g.out_value[out_rows]])
            self.fee_taint += result.rest
            opos, _ = local.find(out_rows)
            self._write_outputs(local, opos, np.array(result.parts, dtype=self.dtype),
                                np.full(len(opos), hop, dtype=np.int64))
            for o, lots in zip(opos.tolist(), result.lots, strict=True):
                if not local.is_seed[o]:
                    local.lots[o] = lots
            self._record(one, np.array([hop]), np.array([True]), np.full(int(prop.sum()), t),
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
            interest = _group_sum(amounts, out_counts)
            hop = _group_min(np.where(prop, local.hop[pos], _BIG_HOP), out_counts, _BIG_HOP) + 1
            live = interest > 0
            if not live.any():
                continue
            in_counts = g.tx_in_ptr[txs + 1] - g.tx_in_ptr[txs]
            in_rows = g.inputs_of(txs)
            values = g.in_value[in_rows]
            if self.p.policy is TaintPolicy.HAIRCUT:
                whole = _group_sum(values, in_counts)
                shares = haircut_shares_grouped(in_counts, np.minimum(interest, whole), whole, values)
                rest = interest - _group_sum(shares, in_counts)
                for i in np.flatnonzero(rest > 0).tolist():
                    self.unattributed.append((int(txs[i]), int(rest[i]), int(hop[i])))
            else:
                shares = np.where(np.repeat(live, in_counts), values, 0)
            self._write_inputs(local, in_rows, shares, np.repeat(hop, in_counts))
            owner = np.repeat(txs, out_counts)
            self._record(txs, hop, live, owner[prop], out_rows[prop], amounts[prop])

    def _write_inputs(self, local: _Local, in_rows: np.ndarray, shares: np.ndarray, hops: np.ndarray) -> None:
        """Backward: the interest each input supplies goes to the output it spent."""
        give = shares > 0
        self.share_chunks.append((in_rows[give], shares[give], hops[give]))
        ppos, pfound = local.find(self.g.in_prev[in_rows])
        write = pfound & give
        is_seed = np.zeros(len(in_rows), dtype=bool)
        is_seed[write] = local.is_seed[ppos[write]]
        self.overlap += int(np.where(is_seed, shares, 0).sum())
        write &= ~is_seed
        local.taint[ppos[write]] = shares[write]
        local.hop[ppos[write]] = hops[write]

    def _backward_fifo_tx(self, local: _Local, t: int) -> None:
        g = self.g
        one = np.array([t])
        out_rows = g.outputs_of(one)
        pos, found = local.find(out_rows)
        prop = self.propagating(local, pos, found)
        if not prop.any():
            return
        coins, amounts = self._fifo_coins(local, g.out_value[out_rows], pos, prop)
        hop = int(local.hop[pos[prop]].min()) + 1
        in_rows = g.inputs_of(one)
        values = [int(v) for v in g.in_value[in_rows]]
        fee = max(sum(values) - sum(c.value for c in coins), 0)
        result = propagate_back(TaintPolicy.FIFO, coins, values, fee)
        if result.rest:
            self.unattributed.append((t, result.rest, hop))
        self._write_inputs(local, in_rows, np.array(result.parts, dtype=self.dtype),
                           np.full(len(in_rows), hop, dtype=np.int64))
        ppos, pfound = local.find(g.in_prev[in_rows])
        for i, lots in enumerate(result.lots):
            if pfound[i] and not local.is_seed[ppos[i]]:
                local.lots[int(ppos[i])] = lots
        self._record(one, np.array([hop]), np.array([True]), np.full(int(prop.sum()), t), out_rows[prop],
                     np.array(amounts, dtype=self.dtype)[prop])

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
        with _bulk():
            endpoints = self._endpoints(merged)
        flows: Callable[[], list[Flow]] | list[Flow] = (self._backward_flows if backward
                                                         else self._forward_flows)(local)
        if g.addr_text is None:  # addresses come from the store: build now, while it is open
            flows = flows()
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
        for (address, txid, name), (a, amount, hop) in merged.items():
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
        endpoints.sort(key=Endpoint.sort_key)
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
            taken = g.addr_text.take(pa.array(np.where(ok, ids, 0))).to_pylist()
            return [t if k else None for t, k in zip(taken, ok.tolist(), strict=True)]
        texts = self._texts(ids.tolist())
        return [texts.get(int(i)) for i in ids.tolist()]

    def _texts(self, ids: Iterable[int]) -> dict[int, str]:
        wanted = [int(i) for i in ids if int(i) >= 0]
        texts = self.g.address_texts(wanted)
        return texts if texts is not None else address_texts(self.store, self.chain, wanted)

    def _primary(self, link_tx: np.ndarray, link_row: np.ndarray, link_amount: np.ndarray,
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

    def _forward_flows(self, local: _Local) -> Callable[[], list[Flow]]:
        """Flows of a forward trace: every output that received taint, built on demand."""
        g, p = self.g, self.p
        live_tx, live_hop = self._chunks(self.live_chunks, 2)
        link_tx, link_row, link_amount = self._chunks(self.link_chunks, 3)
        order = np.argsort(live_tx, kind="stable")
        live_tx, live_hop = live_tx[order], live_hop[order]
        counts = g.tx_out_ptr[live_tx + 1] - g.tx_out_ptr[live_tx]
        out_rows = g.outputs_of(live_tx)
        pos, _ = local.find(out_rows)
        amount = np.where(local.is_seed[pos], local.arrived[pos], local.taint[pos])
        keep = amount > 0
        out_rows, amount = out_rows[keep], amount[keep]
        flow_tx = g.out_tx[out_rows]
        flow_hop = np.repeat(live_hop, counts)[keep]
        rule = {TaintPolicy.HAIRCUT: "haircut: outputs share the tainted input value in proportion",
                TaintPolicy.POISON: "poison: every output of a transaction with a tainted input",
                TaintPolicy.FIFO: "fifo: inputs in order fill outputs in order"}[p.policy]

        def build() -> list[Flow]:
            change = self._change_mask(out_rows).tolist()
            ptx, prow = self._primary(link_tx, link_row, link_amount, g.in_n)
            evidence = self._spent_evidence(link_tx, link_row, link_amount, rule)
            from_ids = g.in_addr[prow[np.searchsorted(ptx, flow_tx)]] if len(ptx) else flow_tx * 0 - 1
            from_text = self._text_column(from_ids)
            to_text = self._text_column(g.out_addr[out_rows])
            codes = g.out_change[out_rows].tolist()
            columns = zip(flow_tx.tolist(), g.txids(flow_tx), from_text, to_text,
                          g.out_value[out_rows].tolist(), amount.tolist(), flow_hop.tolist(),
                          g.out_n[out_rows].tolist(), change, codes, strict=True)
            flows = []
            for t, txid, src, dst, value, a, h, n, is_change, code in columns:
                ev = evidence[t]
                if is_change:
                    ev = ev + ("change heuristic: output pays an address that funded the transaction",)
                if code:
                    ev = ev + (f"change heuristic: {g.change_names[code - 1]}",)
                flows.append(Flow(txid, src, dst, NATIVE_ASSET, value, a, h, ev, output=n))
            return flows

        return build

    def _spent_evidence(self, link_tx: np.ndarray, link_row: np.ndarray, link_amount: np.ndarray,
                        rule: str) -> dict[int, tuple[str, ...]]:
        """Forward: per transaction, the tainted outputs its inputs spent (in input order), then the rule."""
        g = self.g
        if len(link_tx) == 0:
            return {}
        order = np.lexsort((g.in_n[link_row], link_tx))
        tx, row = link_tx[order], link_row[order]
        prev = g.in_prev[row]
        amounts = link_amount[order].tolist()
        columns = zip(g.txids(g.out_tx[prev]), g.out_n[prev].tolist(), amounts, strict=True)
        texts = [f"spent output {ptxid}:{pn} ({a} tainted)" for ptxid, pn, a in columns]
        starts = np.flatnonzero(np.concatenate(([True], tx[1:] != tx[:-1]))).tolist()
        ends = [*starts[1:], len(texts)]
        return {t: (*texts[a:b], rule) for t, a, b in zip(tx[starts].tolist(), starts, ends, strict=True)}

    def _backward_flows(self, local: _Local) -> Callable[[], list[Flow]]:
        """Flows of a backward trace: every input that supplied value of interest, built on demand."""
        g, p = self.g, self.p
        link_tx, link_row, link_amount = self._chunks(self.link_chunks, 3)
        in_rows, shares, hops = self._chunks(self.share_chunks, 3)
        rule = {TaintPolicy.HAIRCUT: "haircut: inputs supply the value of interest in proportion",
                TaintPolicy.POISON: "poison: every input of a transaction with an output of interest",
                TaintPolicy.FIFO: "fifo: inputs in order fill outputs in order"}[p.policy]

        def build() -> list[Flow]:
            primary = dict(zip(*(a.tolist() for a in self._primary(link_tx, link_row, link_amount, g.out_n)),
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
            columns = zip(txs.tolist(), txids, in_rows.tolist(), prev.tolist(), prev_txids, shares.tolist(),
                          hops.tolist(), strict=True)
            for t, txid, row, pr, ptxid, a, h in columns:
                evidence = [f"spent output {ptxid}:{int(g.out_n[pr])}"] if pr >= 0 else []
                outs = ", ".join(f"{txid_of[t]}:{n}" for n in sorted(funds.get(t, [])))
                evidence += [f"funds outputs {outs}", rule]
                to_row = primary.get(t)
                flows.append(Flow(txid, texts.get(int(g.in_addr[row])),
                                  texts.get(int(g.out_addr[to_row])) if to_row is not None else None,
                                  NATIVE_ASSET, int(g.in_value[row]), int(a), int(h), tuple(evidence),
                                  input=int(g.in_n[row])))
            return flows

        return build

    def _unknown_inputs(self) -> list[tuple[int, int, str, int, int, str | None]]:
        """Backward: interest that inputs outside the store supplied, as endpoint items."""
        g = self.g
        out: list[tuple[int, int, str, int, int, str | None]] = [
            (-1, t, "unknown", amount, hop, None) for t, amount, hop in self.unattributed]
        in_rows, shares, hops = self._chunks(self.share_chunks, 3)
        missing = g.in_prev[in_rows] < 0
        for r, amount, hop in zip(in_rows[missing].tolist(), shares[missing].tolist(), hops[missing].tolist(),
                                  strict=True):
            txid = g.txids(np.array([g.in_tx[r]]))[0]
            found = self.store.con.execute(
                "SELECT prev_txid, prev_n FROM inputs WHERE chain = ? AND txid = ? AND n = ? LIMIT 1",
                [self.chain, txid, int(g.in_n[r])]).fetchall()
            prev = f"{found[0][0]}:{found[0][1]}" if found else None
            out.append((int(g.in_addr[r]), -1, "unknown", int(amount), int(hop), prev))
        return out


# ------------------------------------------------------------------------------------ accounts


_KIND_RANK = {"fee": 0, "native": 1, "internal": 2, "token": 3}
ZERO_ADDRESS = "0x" + "0" * 40
"""Tokens are minted from the zero address: where a backward trace finds their origin."""
_LAST_POS = 2**31 - 1

_STATUS_OK = "(t.kind = 'fee' OR x.status IS DISTINCT FROM false)"


@dataclass(frozen=True, slots=True)
class _Transfer:
    """One transfer row with its place in time order (``src``/``dst`` -1 where there is none)."""

    row: int
    txid: str | None
    height: int
    time: int
    pos: int
    kind: str
    index: int
    asset: str
    src: int
    dst: int
    value: int

    @property
    def key(self) -> tuple[int, int, int, int, int, int, int, int]:
        """Time order: block, position in block, kind (fee first), index, then ids for ties."""
        return (self.height, self.pos, _KIND_RANK.get(self.kind, 4), self.index, self.src, self.dst,
                self.value, self.row)


_TRANSFER_COLUMNS = """t.rowid, t.txid, t.height, t.time, coalesce(x.tx_index, 2147483647), t.kind,
    t.transfer_index, t.asset, coalesce(t.from_id, -1), coalesce(t.to_id, -1), t.value"""


def _transfers(store: ChainStore, chain: str, where: str, params: list[Any], join: str = "",
               prefix: str = "", prefix_params: Sequence[Any] = ()) -> list[_Transfer]:
    rows = store.con.execute(
        f"""{prefix} SELECT {_TRANSFER_COLUMNS} FROM transfers t {join}
            LEFT JOIN txs x ON x.chain = t.chain AND x.txid = t.txid AND x.height = t.height
            WHERE t.chain = ? AND t.value IS NOT NULL AND {_STATUS_OK} AND {where}""",
        [*prefix_params, chain, *params]).fetchall()
    return [_Transfer(int(r[0]), r[1], int(r[2]), int(r[3]), int(r[4]), r[5], int(r[6]), r[7], int(r[8]),
                      int(r[9]), int(r[10])) for r in rows]


class _AccountTrace:
    """One trace on an account chain (forward or backward), all assets at once."""

    def __init__(self, store: ChainStore, chain: str, params: TraceParams) -> None:
        self.store = store
        self.chain = chain
        self.p = params
        self.att = attribution_index(store, chain)
        self.events: dict[int, _Transfer] = {}
        self.degree: dict[int, int] = {}
        self.terminal: dict[int, str] = {}
        self.start: dict[tuple[str, int], int] = {}
        self.bound: dict[tuple[str, int], int] = {}
        self.prebalance: dict[tuple[str, int], int] = {}
        self.flows: list[tuple[_Transfer, int, int]] = []
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
            for tr in _transfers(self.store, self.chain, "true", [], join, prefix, lists):
                self.events[tr.row] = tr
        if not prebalance:
            return
        net: dict[tuple[str, int], int] = defaultdict(int)
        for side, sign in (("to_id", 1), ("from_id", -1)):
            rows = self.store.con.execute(
                f"""{prefix} SELECT f.asset, f.id, sum(t.value)
                    FROM f JOIN transfers t ON t.{side} = f.id AND t.asset = f.asset AND t.height < f.lo
                    LEFT JOIN txs x ON x.chain = t.chain AND x.txid = t.txid AND x.height = t.height
                    WHERE t.chain = ? AND t.value IS NOT NULL AND {_STATUS_OK}
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
        rows = _with_ids(self.store, new, """
            SELECT id, sum(c) FROM (
              SELECT t.from_id AS id, count(*) AS c FROM transfers t JOIN {ids} i ON t.from_id = i.id
              WHERE t.chain = ? GROUP BY 1
              UNION ALL
              SELECT t.to_id AS id, count(*) AS c FROM transfers t JOIN {ids} i ON t.to_id = i.id
              WHERE t.chain = ? GROUP BY 1) GROUP BY id""", [self.chain, self.chain])
        found = {int(a): int(c) for a, c in rows}
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

    def _in_window(self, tr: _Transfer) -> bool:
        return ((self.p.since is None or tr.time >= self.p.since)
                and (self.p.until is None or tr.time <= self.p.until))

    def _end(self, aid: int, txid: str | None, asset: str, reason: str, amount: int, hop: int) -> None:
        if amount <= 0:
            return
        entry = self.ends.setdefault((aid, txid, asset, reason), [0, _BIG_HOP])
        entry[0] += amount
        entry[1] = min(entry[1], hop)

    def _seed_transfers(self, seeds: Sequence[Seed]) -> tuple[list[_Transfer], set[int]]:
        """Transfers of the seed transactions and the ids of seed addresses."""
        asset_filter = "true" if self.p.asset is None else "t.asset = ?"
        asset_args = [] if self.p.asset is None else [self.p.asset]
        rows: list[_Transfer] = []
        addresses: set[int] = set()
        for seed in seeds:
            if seed.kind == "address":
                addresses.add(_address_id(self.store, self.chain, seed.text))
                continue
            where = f"t.txid = ? AND t.kind <> 'fee' AND {asset_filter}"
            args: list[Any] = [seed.txid, *asset_args]
            if seed.kind == "output":
                where += " AND t.transfer_index = ?"
                args.append(seed.n)
            found = _transfers(self.store, self.chain, where, args)
            if not found and seed.kind == "output":
                raise NotFoundError(f"{self.chain} transfer", seed.text)
            rows.extend(found)
        return rows, addresses

    def _received_assets(self, addresses: set[int]) -> set[str]:
        if self.p.asset is not None:
            return {self.p.asset}
        rows = _with_ids(self.store, addresses, "SELECT DISTINCT t.asset FROM transfers t JOIN {ids} i "
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
        for layer in range(p.max_hops + 1):
            todo = {k: lo for k, lo in frontier.items() if k not in self.start or lo < self.start[k]}
            self._classify((k[1] for k in todo), seed_addrs)
            todo = {k: lo for k, lo in todo.items() if k[1] not in self.terminal}
            if not todo:
                break
            self._load({k: (lo, 2**62) for k, lo in todo.items()}, prebalance=True)
            self.start.update(todo)
            if layer == p.max_hops:
                break
            nxt: dict[tuple[str, int], int] = {}
            for e in self.events.values():
                k = (e.asset, e.src)
                if k in todo and e.height >= todo[k] and e.dst >= 0:
                    d = (e.asset, e.dst)
                    if e.height < nxt.get(d, 2**62) and (d not in self.start or e.height < self.start[d]):
                        nxt[d] = e.height
            frontier = nxt
        self._replay_forward(seed_row_ids, seed_keys)

    def _replay_forward(self, seed_rows: set[int], seed_keys: set[tuple[str, int]]) -> None:
        p = self.p
        pools: dict[tuple[str, int], BalancePool] = {}
        hop: dict[tuple[str, int], int] = {}
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
                elif e.dst in self.terminal:
                    self._end(e.dst, None, e.asset, self.terminal[e.dst], e.value, 0)
                continue
            if tainted == 0:
                if d_on:
                    pools[dkey].receive(e.value, None)
                continue
            h = hop.get(skey, 0) + 1
            reason = None
            if e.dst < 0:  # gas fees (and value sent to no one) leave the trace as fees
                self.fees[e.asset] += tainted
                continue
            if h > p.max_hops:
                self._end(e.src, None, e.asset, "max_hops", tainted, h - 1)
                lots = (Lot(e.value, None),)
            else:
                self.flows.append((e, tainted, h))
                if self._is_coinjoin(e.txid):
                    reason = "coinjoin"
                    self._end(-1, e.txid, e.asset, reason, tainted, h)
                elif e.dst in self.terminal:
                    reason = self.terminal[e.dst]
                elif p.min_value and tainted < p.min_value:
                    reason = "min_value"
                elif not d_on:
                    reason = "max_hops"
                if reason is not None:
                    if reason != "coinjoin":
                        self._end(e.dst, None, e.asset, reason, tainted, h)
                    lots = (Lot(e.value, None),)
            if d_on:
                for lot in lots:
                    pools[dkey].receive(lot.amount, lot.source)
                if lots_amount(lots):
                    hop[dkey] = min(hop.get(dkey, _BIG_HOP), h)
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
                seed_rows.extend(tr for tr in _transfers(self.store, self.chain, f"t.to_id = ?{asset_filter}",
                                                         [a, *args]) if self._in_window(tr))
        interest: dict[int, Any] = {}
        hop: dict[int, int] = {}
        for tr in seed_rows:
            self.events[tr.row] = tr
            interest[tr.row] = [(0, tr.value)] if p.policy is TaintPolicy.FIFO else tr.value
            hop[tr.row] = 1
            self.seeded[tr.asset] += tr.value
        self._classify((tr.src for tr in seed_rows), set())
        frontier: dict[tuple[str, int], int] = {}
        for tr in seed_rows:
            if tr.src >= 0:
                frontier[(tr.asset, tr.src)] = max(frontier.get((tr.asset, tr.src), -1), tr.height)
        for layer in range(1, p.max_hops + 1):
            if layer == p.max_hops:
                break
            todo = {k: hi for k, hi in frontier.items()
                    if k[1] not in self.terminal and hi > self.bound.get(k, -1)}
            if not todo:
                break
            self._load({k: (0, hi) for k, hi in todo.items()}, prebalance=False)
            self.bound.update(todo)
            nxt: dict[tuple[str, int], int] = {}
            for e in self.events.values():
                k = (e.asset, e.dst)
                if k in todo and e.height <= todo[k] and e.src >= 0:
                    s = (e.asset, e.src)
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

    def _attribute_backward(self, interest: dict[int, Any], hop: dict[int, int]) -> None:
        import heapq

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
            h = hop[row]
            value = interest[row]
            amount = sum(b - a for a, b in value) if p.policy is TaintPolicy.FIFO else int(value)
            if amount <= 0:
                continue
            self.flows.append((e, amount, h))
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
            elif h >= p.max_hops or (e.asset, e.src) not in self.bound:
                reason = "max_hops"
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
                hop[source] = min(hop.get(source, _BIG_HOP), h + 1)
                heapq.heappush(heap, (tuple(-x for x in self.events[source].key), source))

    # ---- result

    def result(self, seeds: Sequence[Seed]) -> TraceResult:
        """Endpoints and flows as strings, sorted."""
        p = self.p
        ids = {aid for aid, *_ in self.ends}
        ids |= {e.src for e, *_ in self.flows} | {e.dst for e, *_ in self.flows}
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
                      amount, h, (f"{e.kind} transfer #{e.index} in block {e.height}", rule),
                      index=e.index, kind=e.kind)
                 for e, amount, h in self.flows]
        return TraceResult(self.chain, p, tuple(s.text for s in seeds), tuple(endpoints), dict(self.seeded),
                           dict(self.fees), {k: v for k, v in self.overlap.items() if v}, _flows=flows)


def trace_account(store: ChainStore, chain: str, params: TraceParams, seeds: Sequence[Seed]) -> TraceResult:
    """Trace on an account chain (transfers per asset: native, internal, token)."""
    trace = _AccountTrace(store, chain, params)
    if params.direction is Direction.FORWARD:
        trace.forward(seeds)
    else:
        trace.backward(seeds)
    return trace.result(seeds)


# ------------------------------------------------------------------------------------ the service


def make_params(*, direction: str | Direction = "forward", policy: str | TaintPolicy = "haircut",
                max_hops: int = 6, min_value: int = 0, since: int | None = None, until: int | None = None,
                asset: str | None = None, stop_at_services: bool = True, hub_degree: int = 500,
                follow_change: bool = True) -> TraceParams:
    """Validate and normalise trace options; raises InputError naming the bad one."""
    try:
        direction = Direction(direction)
    except ValueError:
        raise InputError(f"unknown direction {direction!r}; use forward or backward") from None
    try:
        policy = TaintPolicy(policy)
    except ValueError:
        raise InputError(f"unknown taint policy {policy!r}; use poison, haircut or fifo") from None
    if max_hops < 0:
        raise InputError(f"max_hops must be >= 0, got {max_hops}")
    if min_value < 0:
        raise InputError(f"min_value must be >= 0, got {min_value}")
    if hub_degree < 1:
        raise InputError(f"hub_degree must be >= 1, got {hub_degree}")
    if since is not None and until is not None and since > until:
        raise InputError(f"since ({since}) is after until ({until})")
    if asset is not None:
        asset = asset.strip().lower()
    return TraceParams(direction, policy, int(max_hops), int(min_value), since, until, asset,
                       bool(stop_at_services), int(hub_degree), bool(follow_change))


def trace_funds(store: ChainStore, chain: str, seeds: list[str], *, direction: str = "forward",
                policy: str = "haircut", max_hops: int = 6, min_value: int = 0, since: int | None = None,
                until: int | None = None, asset: str | None = None, stop_at_services: bool = True,
                hub_degree: int = 500, follow_change: bool = True) -> TraceResult:
    """Trace funds from ``seeds`` (addresses, txids or ``txid:n``) with a named taint policy.

    Forward: where the funds the seeds received (or the seed outputs) went. Backward: where the
    funds the seeds received came from. Values are exact integers of base units. See the module
    docstring for the stop rules.
    """
    params_ = get_chain(chain)
    chain = params_.name
    if not seeds:
        raise InputError("a trace needs at least one seed (address, txid or txid:n)")
    params = make_params(direction=direction, policy=policy, max_hops=max_hops, min_value=min_value,
                         since=since, until=until, asset=asset, stop_at_services=stop_at_services,
                         hub_degree=hub_degree, follow_change=follow_change)
    if params_.is_utxo:
        if params.asset not in (None, NATIVE_ASSET):
            raise InputError(f"{chain} has only the native asset, not {params.asset!r}")
        for s in seeds:  # reject what is neither an address nor a txid before building the graph
            _check_seed_shape(store, chain, s)
        trace = _UtxoTrace(store, chain, params)
        parsed = [parse_seed(store, chain, s, lambda txid: trace.g.find_tx(txid) >= 0) for s in seeds]
        result = trace.run(parsed)
    else:
        parsed = [parse_seed(store, chain, s) for s in seeds]
        result = trace_account(store, chain, params, parsed)
    log.info("trace %s %s %s from %d seeds: %d endpoints", chain, params.direction.value,
             params.policy.value, len(parsed), len(result.endpoints))
    return result


__all__ = ["Endpoint", "Flow", "Seed", "TraceParams", "TraceResult", "expand_ranges", "parse_seed",
           "trace_funds"]
