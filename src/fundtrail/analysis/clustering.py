"""Address clustering: the multi-input (co-spend) heuristic, optionally joined by change outputs.

All inputs of a transaction are assumed to be controlled by one entity (they were signed together), so
their addresses fall into one cluster; CoinJoins (``tx_patterns.pattern = 'coinjoin'``) break that
assumption and are left out. With ``with_change`` a change output (combined confidence at least
``change_threshold`` in ``change_outputs``) joins the cluster of its transaction's inputs.

Results, replaced per chain in one transaction:

* ``clusters``: one row per address of the chain; ``cluster_id`` is the smallest address id of the
  cluster; ``reason`` is ``co-spend`` (the address was spent together with another), ``change`` (it is
  linked to its cluster only through change outputs: the change address, or a lone input paying it) or
  ``singleton``.
* ``cluster_merges``: each union where both sides already had ``large_cluster`` addresses or more, with
  the transaction that caused it. Such merges are how one false link fuses two services into a
  super-cluster; ``block_super_merges`` refuses them instead (the rows are then the refused merges).

Account chains (Ethereum and the other EVM chains) have no co-spend: a transaction has one sender, so
every address is its own cluster. (Exchange deposit addresses swept into a hot wallet could link
addresses there; that heuristic is not implemented.)

The engine is a union-find over integer address ids on numpy arrays. Transactions (groups of addresses)
are processed in chronological chunks: within a chunk, the clusters its transactions touch are joined by
``scipy.sparse.csgraph.connected_components``, and only a chunk component that could contain a merge of two
large clusters (its total size minus its largest cluster reaches ``large_cluster``) is replayed
transaction by transaction, to find the merge and the transaction exactly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from fundtrail.analysis.change import ensure_change
from fundtrail.analysis.coinjoin import ensure_patterns, has_table
from fundtrail.domain.addresses import canonical_address
from fundtrail.domain.chains import get_chain
from fundtrail.errors import InvalidAddressError, NotFoundError
from fundtrail.store import schema
from fundtrail.store.chainstore import ChainStore

log = logging.getLogger(__name__)

CLUSTERS_COLUMNS = ("chain VARCHAR NOT NULL, address_id BIGINT NOT NULL, cluster_id BIGINT NOT NULL, "
                    "reason VARCHAR NOT NULL")
CLUSTER_MERGES_COLUMNS = ("chain VARCHAR NOT NULL, txid VARCHAR NOT NULL, left_size BIGINT NOT NULL, "
                          "right_size BIGINT NOT NULL, merged_size BIGINT NOT NULL")
schema.register_table("clusters", CLUSTERS_COLUMNS)
schema.register_table("cluster_merges", CLUSTER_MERGES_COLUMNS)

REASONS = ("co-spend", "change", "singleton")
"""The values of ``clusters.reason``."""

ProgressFn = Callable[[int, int], None]
"""``on_progress(done, total)``: transactions (address groups) processed so far, of all."""


def ensure_tables(store: ChainStore) -> None:
    """Create ``clusters`` and ``cluster_merges`` if the store was opened before this module was imported."""
    store.con.execute(f"CREATE TABLE IF NOT EXISTS clusters ({CLUSTERS_COLUMNS})")
    store.con.execute(f"CREATE TABLE IF NOT EXISTS cluster_merges ({CLUSTER_MERGES_COLUMNS})")


# ---------------------------------------------------------------------------------------------- engine


@dataclass(frozen=True)
class GroupMerge:
    """A union inside group (transaction) ``group`` of two clusters that both had ``large`` members."""

    group: int
    left_size: int
    right_size: int
    merged_size: int
    blocked: bool


@dataclass(frozen=True)
class UnionResult:
    """The partition that :func:`union_groups` computed."""

    labels: np.ndarray
    """A cluster label per node: equal labels, same cluster (see :func:`smallest_member_labels`)."""
    merges: list[GroupMerge]
    blocked_groups: np.ndarray


def _find(parent: np.ndarray, x: np.ndarray) -> np.ndarray:
    r: np.ndarray = parent[x]
    while True:
        pr = parent[r]
        if np.array_equal(pr, r):
            return r
        r = pr


def _chunks(edge_g: np.ndarray, target: int) -> list[tuple[int, int]]:
    """Consecutive edge ranges of about ``target`` edges each, never splitting a group."""
    total = len(edge_g)
    if total == 0:
        return []
    cuts = np.searchsorted(edge_g, edge_g[np.arange(target, total, target)], side="left")
    bounds = np.unique(np.concatenate([[0], cuts, [total]]))
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def union_groups(n_nodes: int, group_ptr: np.ndarray, members: np.ndarray, *, large: int = 1_000,
                 block_super_merges: bool = False, chunk_edges: int = 250_000,
                 on_progress: ProgressFn | None = None) -> UnionResult:
    """Union the nodes of each group, groups in order; report (or refuse) merges of two large clusters.

    ``group_ptr`` (length groups + 1) and ``members`` are a CSR list of groups: group ``g`` holds
    ``members[group_ptr[g]:group_ptr[g + 1]]``. Within a group that unites several clusters, they are
    merged largest first, and a merge is recorded when both the accumulated side and the next cluster have
    at least ``large`` nodes.

    One ``connected_components`` pass gives the final partition; only components of at least
    ``2 * large`` nodes (the only ones that can hold such a merge) are replayed in chronological chunks.
    """
    group_ptr = np.asarray(group_ptr, dtype=np.int64)
    members = np.asarray(members, dtype=np.int64)
    n_groups = len(group_ptr) - 1
    counts = np.diff(group_ptr)
    if n_groups <= 0 or len(members) == 0:
        return UnionResult(np.arange(n_nodes, dtype=np.int64), [], np.zeros(0, np.int64))
    group_of = np.repeat(np.arange(n_groups, dtype=np.int64), counts)
    not_first = np.ones(len(members), dtype=bool)
    not_first[group_ptr[:-1][counts > 0]] = False
    anchors = members[np.minimum(group_ptr[:-1], len(members) - 1)]
    edge_v = members[not_first]
    edge_g = group_of[not_first]
    edge_u = anchors[edge_g]
    graph = coo_matrix((np.ones(len(edge_u), dtype=np.int8), (edge_u, edge_v)), shape=(n_nodes, n_nodes))
    n_comp, comp = connected_components(graph.tocsr(), directed=False)
    comp = comp.astype(np.int64)
    big = np.bincount(comp, minlength=n_comp) >= 2 * large
    merges: list[GroupMerge] = []
    blocked: list[int] = []
    if not big.any():
        if on_progress is not None:
            on_progress(n_groups, n_groups)
        return UnionResult(comp, merges, np.zeros(0, np.int64))
    inside = big[comp[edge_u]]
    edge_u, edge_v, edge_g = edge_u[inside], edge_v[inside], edge_g[inside]
    parent = np.arange(n_nodes, dtype=np.int64)
    size = np.ones(n_nodes, dtype=np.int64)
    for e0, e1 in _chunks(edge_g, chunk_edges):
        u, v, eg = edge_u[e0:e1], edge_v[e0:e1], edge_g[e0:e1]
        ru, rv = _find(parent, u), _find(parent, v)
        parent[u], parent[v] = ru, rv  # path compression for the nodes seen
        keep = ru != rv
        if keep.any():
            _union_chunk(parent, size, ru[keep], rv[keep], eg[keep], large, block_super_merges, merges,
                         blocked)
        if on_progress is not None:
            on_progress(int(eg[-1]) + 1, n_groups)
    if on_progress is not None:
        on_progress(n_groups, n_groups)
    roots = parent
    while True:
        nxt = roots[roots]
        if np.array_equal(nxt, roots):
            break
        roots = nxt
    labels = np.where(big[comp], n_comp + roots, comp)  # replayed components keep the replay's partition
    return UnionResult(labels, merges, np.asarray(blocked, dtype=np.int64))


def _union_chunk(parent: np.ndarray, size: np.ndarray, ru: np.ndarray, rv: np.ndarray, eg: np.ndarray,
                 large: int, block: bool, merges: list[GroupMerge], blocked: list[int]) -> None:
    """Join the clusters (roots ``ru``/``rv``) that one chunk's edges connect."""
    ne = len(ru)
    roots, inv = np.unique(np.concatenate([ru, rv]), return_inverse=True)
    k = len(roots)
    graph = coo_matrix((np.ones(ne, dtype=np.int8), (inv[:ne], inv[ne:])), shape=(k, k)).tocsr()
    n_comp, comp = connected_components(graph, directed=False)
    sizes = size[roots]
    total = np.bincount(comp, weights=sizes, minlength=n_comp).astype(np.int64)  # exact below 2**53
    order = np.lexsort((roots, sizes, comp))  # by component, then size, then root id: the last is kept
    last = np.searchsorted(comp[order], np.arange(n_comp), side="right") - 1
    keeper = order[last]
    risky = (total - sizes[keeper]) >= large
    calm = ~risky[comp]
    parent[roots[calm]] = roots[keeper[comp[calm]]]
    calm_comps = np.flatnonzero(~risky)
    size[roots[keeper[calm_comps]]] = total[calm_comps]
    if risky.any():
        replay = risky[comp[inv[:ne]]]
        _replay(parent, size, ru[replay], rv[replay], eg[replay], large, block, merges, blocked)


def _replay(parent: np.ndarray, size: np.ndarray, ru: np.ndarray, rv: np.ndarray, eg: np.ndarray,
            large: int, block: bool, merges: list[GroupMerge], blocked: list[int]) -> None:
    """Union edges group by group, in order, recording merges of two large clusters exactly."""
    local: dict[int, int] = {}
    lsize: dict[int, int] = {}

    def find(x: int) -> int:
        root = x
        while local.get(root, root) != root:
            root = local[root]
        while local.get(x, x) != root:  # path compression
            local[x], x = root, local[x]
        return root

    for r in np.unique(np.concatenate([ru, rv])).tolist():
        local[r] = r
        lsize[r] = int(size[r])
    bounds = np.flatnonzero(np.diff(eg)) + 1
    starts = np.concatenate([[0], bounds]).tolist()
    ends = np.concatenate([bounds, [len(eg)]]).tolist()
    ru_l, rv_l, eg_l = ru.tolist(), rv.tolist(), eg.tolist()
    for s, e in zip(starts, ends, strict=True):
        involved = {find(x) for x in ru_l[s:e]} | {find(x) for x in rv_l[s:e]}
        if len(involved) < 2:
            continue
        ranked = sorted(involved, key=lambda r: (-lsize[r], r))
        acc = lsize[ranked[0]]
        found: list[tuple[int, int]] = []
        for r in ranked[1:]:
            if acc >= large and lsize[r] >= large:
                found.append((acc, lsize[r]))
            acc += lsize[r]
        refuse = block and bool(found)
        merges.extend(GroupMerge(eg_l[s], a, b, a + b, refuse) for a, b in found)
        if refuse:
            blocked.append(eg_l[s])
            continue
        keeper = ranked[0]
        for r in ranked[1:]:
            local[r] = keeper
        lsize[keeper] = acc
    for r in list(local):
        root = find(r)
        parent[r] = root
        size[root] = lsize[root]


def smallest_member_labels(labels: np.ndarray) -> np.ndarray:
    """Relabel a partition so that each cluster is named by its smallest node id.

    ``labels`` may be any integers (replayed components of :func:`union_groups` are numbered past the
    node count), not only node ids.
    """
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    return first.astype(np.int64)[inverse.reshape(-1)]


# ---------------------------------------------------------------------------------------------- service


@dataclass(frozen=True, slots=True)
class SuperMerge:
    """A merge of two large clusters, with the transaction that caused it."""

    txid: str
    left_size: int
    right_size: int
    merged_size: int
    blocked: bool = False


@dataclass(frozen=True, slots=True)
class ClusteringReport:
    """What :func:`cluster_addresses` did on a chain."""

    chain: str
    addresses: int
    clusters: int
    multi_clusters: int
    """Clusters of two addresses or more."""
    largest_cluster_id: int | None
    largest_cluster_size: int
    linking_txs: int
    """Transactions whose addresses were united."""
    change_links: int
    coinjoins_excluded: int
    super_merges: list[SuperMerge] = field(default_factory=list)
    with_change: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document."""
        return {"chain": self.chain, "addresses": self.addresses, "clusters": self.clusters,
                "multi_address_clusters": self.multi_clusters,
                "largest_cluster": {"cluster_id": self.largest_cluster_id, "size": self.largest_cluster_size},
                "linking_txs": self.linking_txs, "change_links": self.change_links,
                "coinjoins_excluded": self.coinjoins_excluded, "with_change": self.with_change,
                "super_merges": [{"txid": m.txid, "left_size": m.left_size, "right_size": m.right_size,
                                  "merged_size": m.merged_size, "blocked": m.blocked}
                                 for m in self.super_merges],
                "seconds": round(self.seconds, 3)}


_MEMBERS_SQL = """
CREATE OR REPLACE TEMP TABLE _cl_members AS
WITH raw AS (SELECT txid, height, address_id, 0 AS kind FROM inputs
             WHERE chain = $c AND address_id IS NOT NULL {change}),
     m AS MATERIALIZED (SELECT txid, height, address_id, min(kind) AS kind FROM raw
                        GROUP BY txid, height, address_id),
     linking AS (SELECT txid, height FROM m GROUP BY txid, height
                 HAVING count(*) >= 2 AND bool_or(kind = 0)),
     mixes AS (SELECT txid, height FROM tx_patterns WHERE chain = $c AND pattern = 'coinjoin'),
     kept AS (SELECT * FROM linking ANTI JOIN mixes USING (txid, height))
SELECT m.* FROM m SEMI JOIN kept USING (txid, height)
"""

_CHANGE_SQL = """UNION ALL SELECT txid, height, address_id, 1 FROM change_outputs
             WHERE chain = $c AND heuristic = 'combined' AND confidence >= $t AND address_id IS NOT NULL"""


def _load_groups(store: ChainStore, chain: str, with_change: bool, threshold: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR groups (ptr, members, kinds) of the linking transactions, in chronological order.

    Leaves ``_cl_groups(g, txid, height)`` for naming the transactions.
    """
    con = store.con
    args: dict[str, Any] = {"c": chain}
    if with_change:
        args["t"] = threshold
    con.execute(_MEMBERS_SQL.format(change=_CHANGE_SQL if with_change else ""), args)
    con.execute("""CREATE OR REPLACE TEMP TABLE _cl_groups AS
                   SELECT (row_number() OVER (ORDER BY g.height, t.tx_index, g.txid) - 1)::BIGINT AS g,
                          g.txid, g.height
                   FROM (SELECT DISTINCT txid, height FROM _cl_members) g
                   LEFT JOIN txs t ON t.chain = $c AND t.txid = g.txid AND t.height = g.height""",
                {"c": chain})
    cols = con.execute("""SELECT g.g, m.address_id, m.kind::TINYINT AS kind FROM _cl_members m
                          JOIN _cl_groups g USING (txid, height)
                          ORDER BY g.g, m.kind, m.address_id""").fetchnumpy()
    con.execute("DROP TABLE IF EXISTS _cl_members")
    g = np.asarray(cols["g"], dtype=np.int64)
    members = np.asarray(cols["address_id"], dtype=np.int64)
    kinds = np.asarray(cols["kind"], dtype=np.int8)
    n_groups = int(g[-1]) + 1 if len(g) else 0
    ptr = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(np.bincount(g, minlength=n_groups), out=ptr[1:])
    return ptr, members, kinds


def cluster_addresses(store: ChainStore, chain: str, *, with_change: bool = False,
                      change_threshold: float = 0.8, large_cluster: int = 1_000,
                      block_super_merges: bool = False, on_progress: ProgressFn | None = None
                      ) -> ClusteringReport:
    """Cluster the addresses of ``chain``; replaces its ``clusters`` and ``cluster_merges`` rows.

    Pattern detection (and, with ``with_change``, change detection) runs first unless it is current.
    """
    started = time.perf_counter()
    ensure_tables(store)
    con = store.con
    (count, top), = con.execute("SELECT count(*), coalesce(max(id) + 1, 0) FROM addresses WHERE chain = ?",
                                [chain]).fetchall()
    n_addresses, n_nodes = int(count), int(top)
    utxo = get_chain(chain).is_utxo
    merges: list[SuperMerge] = []
    coinjoins = linking = change_links = 0
    if utxo:
        ensure_patterns(store, chain)
        if with_change:
            ensure_change(store, chain)
        coinjoins = int(con.execute("SELECT count(DISTINCT txid) FROM tx_patterns WHERE chain = ? "
                                    "AND pattern = 'coinjoin'", [chain]).fetchall()[0][0])
        ptr, members, kinds = _load_groups(store, chain, with_change, change_threshold)
        result = union_groups(n_nodes, ptr, members, large=large_cluster,
                              block_super_merges=block_super_merges, on_progress=on_progress)
        labels = result.labels
        applied = np.ones(len(ptr) - 1, dtype=bool)
        applied[result.blocked_groups] = False
        group_of = np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))
        inputs_per_group = np.bincount(group_of, weights=(kinds == 0), minlength=len(ptr) - 1)
        cospend = np.zeros(n_nodes, dtype=bool)
        cospend[members[(kinds == 0) & applied[group_of] & (inputs_per_group[group_of] >= 2)]] = True
        linking = int(applied.sum())
        change_links = int(np.count_nonzero((kinds == 1) & applied[group_of]))
        if result.merges:
            merges = _merge_txids(store, result.merges)
    else:
        labels = np.arange(n_nodes, dtype=np.int64)
        cospend = np.zeros(n_nodes, dtype=bool)
        ptr = np.zeros(1, dtype=np.int64)
    cluster_id = smallest_member_labels(labels)
    sizes = np.bincount(cluster_id, minlength=n_nodes)
    member_size = sizes[cluster_id]
    reason = np.where(member_size == 1, 2, np.where(cospend, 0, 1)).astype(np.int8)
    ids = np.arange(n_nodes, dtype=np.int64)
    if n_addresses != n_nodes:  # ids with gaps: keep only interned ones
        present = np.zeros(n_nodes, dtype=bool)
        interned = con.execute("SELECT id FROM addresses WHERE chain = ?", [chain]).fetchnumpy()["id"]
        present[np.asarray(interned, dtype=np.int64)] = True
        ids, cluster_id, reason = ids[present], cluster_id[present], reason[present]
    table = pa.table({"address_id": ids, "cluster_id": cluster_id,
                      "reason": pa.DictionaryArray.from_arrays(pa.array(reason), pa.array(REASONS))})
    _write(store, chain, table, merges)
    con.execute("DROP TABLE IF EXISTS _cl_groups")
    n_clusters = int(np.count_nonzero(cluster_id == ids))
    largest = int(np.argmax(sizes)) if n_nodes else None
    report = ClusteringReport(
        chain=chain, addresses=len(ids), clusters=n_clusters,
        multi_clusters=int(np.count_nonzero(sizes >= 2)), largest_cluster_id=largest,
        largest_cluster_size=int(sizes[largest]) if largest is not None else 0, linking_txs=linking,
        change_links=change_links, coinjoins_excluded=coinjoins, super_merges=merges, with_change=with_change,
        seconds=time.perf_counter() - started)
    log.info("clustered %s: %d addresses in %d clusters (largest %d) in %.2fs", chain, report.addresses,
             report.clusters, report.largest_cluster_size, report.seconds)
    return report


def _merge_txids(store: ChainStore, merges: list[GroupMerge]) -> list[SuperMerge]:
    groups = sorted({m.group for m in merges})
    names = dict(store.con.execute("SELECT g, txid FROM _cl_groups WHERE list_contains($g, g)",
                                   {"g": groups}).fetchall())
    return [SuperMerge(names[m.group], m.left_size, m.right_size, m.merged_size, m.blocked) for m in merges]


def _write(store: ChainStore, chain: str, table: pa.Table, merges: list[SuperMerge]) -> None:
    con = store.con
    con.register("_cl_rows", table)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM clusters WHERE chain = ?", [chain])
        con.execute("DELETE FROM cluster_merges WHERE chain = ?", [chain])
        con.execute("INSERT INTO clusters SELECT $c, address_id, cluster_id, reason::VARCHAR FROM _cl_rows",
                    {"c": chain})
        if merges:
            con.executemany("INSERT INTO cluster_merges VALUES (?, ?, ?, ?, ?)",
                            [(chain, m.txid, m.left_size, m.right_size, m.merged_size) for m in merges])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("_cl_rows")


def store_clusters(store: ChainStore, chain: str, parquet: Path) -> None:
    """Replace ``chain``'s clusters with the (address_id, cluster_id, reason) rows of a Parquet folder.

    For clusters computed elsewhere (the Spark engine); its ``cluster_merges`` rows are removed, as that
    engine does not replay merges in chronological order.
    """
    ensure_tables(store)
    con = store.con
    source = str(Path(parquet).resolve() / "*.parquet").replace("'", "''")
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM clusters WHERE chain = ?", [chain])
        con.execute("DELETE FROM cluster_merges WHERE chain = ?", [chain])
        con.execute("INSERT INTO clusters SELECT $c, address_id, cluster_id, reason "
                    f"FROM read_parquet('{source}')", {"c": chain})
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


# ---------------------------------------------------------------------------------------------- look-ups


def cluster_of(store: ChainStore, chain: str, address_ids: list[int]) -> dict[int, int]:
    """The cluster id of each given address id that has been clustered."""
    if not address_ids or not has_table(store, "clusters"):
        return {}
    return dict(store.con.execute(
        "SELECT address_id, cluster_id FROM clusters WHERE chain = $c AND list_contains($ids, address_id)",
        {"c": chain, "ids": sorted(set(address_ids))}).fetchall())


def describe_cluster(store: ChainStore, chain: str, address: str, *, limit: int = 50,
                     offset: int = 0) -> dict[str, Any]:
    """The cluster of ``address``: its id (and that address), size, reasons and a page of members."""
    try:
        address = canonical_address(chain, address)
    except InvalidAddressError:
        if store.address_id(chain, address) is None:  # stored as is (test chains, nonstandard scripts)
            raise
    address_id = store.address_id(chain, address)
    if address_id is None:
        raise NotFoundError(f"{chain} address", address)
    rows = []
    if has_table(store, "clusters"):
        rows = store.con.execute("SELECT cluster_id, reason FROM clusters WHERE chain = ? AND address_id = ?",
                                 [chain, address_id]).fetchall()
    if not rows:
        raise NotFoundError(f"cluster of {chain} address (run `fundtrail cluster --chain {chain}`)", address)
    cluster_id, reason = rows[0]
    con = store.con
    counts = dict(con.execute("SELECT reason, count(*) FROM clusters WHERE chain = ? AND cluster_id = ? "
                              "GROUP BY reason", [chain, cluster_id]).fetchall())
    members = con.execute(
        """SELECT a.address, c.address_id, c.reason FROM clusters c
           JOIN addresses a ON a.chain = c.chain AND a.id = c.address_id
           WHERE c.chain = ? AND c.cluster_id = ? ORDER BY c.address_id LIMIT ? OFFSET ?""",
        [chain, cluster_id, int(limit), int(offset)]).fetchall()
    name = [r[0] for r in con.execute("SELECT address FROM addresses WHERE chain = ? AND id = ?",
                                      [chain, cluster_id]).fetchall()]
    return {"chain": chain, "address": address, "address_id": address_id, "reason": reason,
            "cluster_id": cluster_id, "cluster_address": name[0] if name else None,
            "size": sum(counts.values()), "reasons": {r: counts.get(r, 0) for r in REASONS},
            "limit": limit, "offset": offset,
            "members": [{"address": a, "address_id": i, "reason": r} for a, i, r in members]}
