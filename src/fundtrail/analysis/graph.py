"""The transaction graph of a UTXO chain as integer arrays (CSR), cached per store.

Transactions are numbered ``0..T-1`` in chain order (height, position in block, txid), which is a
topological order: a transaction only spends outputs of transactions numbered before it. Outputs and
inputs are rows sorted by (transaction, n), so a transaction's outputs are rows
``tx_out_ptr[t]:tx_out_ptr[t+1]`` and its inputs ``tx_in_ptr[t]:tx_in_ptr[t+1]``. Each input points to
the output row it spends (``in_prev``) and each output to the transaction and input row spending it
(``out_spender``, ``out_spender_in``); ``-1`` where there is none or the store does not hold it.

Building the graph reads the whole chain once (a few seconds for a million transactions); the graph is
kept per store and chain and rebuilt when the chain changes (blocks added or rolled back, inputs
resolved, transaction patterns updated).
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fundtrail.errors import NotFoundError
from fundtrail.store.chainstore import ChainStore

log = logging.getLogger(__name__)

COINJOIN_PATTERNS = ("coinjoin", "wasabi", "wabisabi", "whirlpool", "joinmarket")
"""Transaction patterns (``tx_patterns.pattern``) a trace cannot see through."""

_LOCK = threading.Lock()
_CACHE: weakref.WeakKeyDictionary[ChainStore, dict[str, UtxoGraph]] = weakref.WeakKeyDictionary()


CHANGE_CONFIDENCE = 0.8
"""Combined confidence (``change_outputs``) from which an output is taken as its sender's change, as
clustering with change and the accuracy scores take it."""

PEEL_PATTERN = "peel-chain"
"""The ``tx_patterns`` pattern of a peel-chain step (:mod:`fundtrail.analysis.peel`)."""

OPTIONAL_TABLES = ("tx_patterns", "change_outputs", "clusters", "tags", "actors")
"""Tables of other layers that tracing reads when they exist."""


def table_columns(store: ChainStore, table: str) -> set[str]:
    """Columns of a table of the store's main database (empty when the table does not exist)."""
    return catalog(store, (table,)).get(table, set())


def catalog(store: ChainStore, tables: tuple[str, ...] = OPTIONAL_TABLES) -> dict[str, set[str]]:
    """Columns per table, for the tables of ``tables`` that exist (one catalog query)."""
    marks = ", ".join("?" for _ in tables)
    rows = store.con.execute(
        f"SELECT table_name, column_name FROM duckdb_columns() WHERE database_name <> 'temp' "
        f"AND schema_name = 'main' AND table_name IN ({marks})", list(tables)).fetchall()
    out: dict[str, set[str]] = {}
    for table, column in rows:
        out.setdefault(table, set()).add(column)
    return out


def has_patterns(cat: dict[str, set[str]]) -> bool:
    """Whether the CoinJoin pattern table is there."""
    return {"chain", "txid", "pattern"} <= cat.get("tx_patterns", set())


def has_change(cat: dict[str, set[str]]) -> bool:
    """Whether the change-output table is there."""
    return {"chain", "txid", "n", "heuristic"} <= cat.get("change_outputs", set())


@dataclass(frozen=True)
class Snapshot:
    """What the caches depend on, read in one query: the catalog, the chain graph, the attribution inputs."""

    catalog: dict[str, set[str]]
    graph: tuple[Any, ...]
    attribution: tuple[Any, ...]


_CATALOGS: weakref.WeakKeyDictionary[ChainStore, tuple[int, dict[str, set[str]]]] = (
    weakref.WeakKeyDictionary())


def _snapshot_sql(cat: dict[str, set[str]]) -> tuple[str, int]:
    """The snapshot query for a catalog, and how many of its columns describe the chain graph."""
    graph = ["(SELECT count(*) FROM duckdb_tables() WHERE NOT temporary)",
             "(SELECT count(*) || ':' || coalesce(max(height), -1) || ':' || coalesce(sum(tx_count), 0) "
             "|| ':' || coalesce(arg_max(hash, height), '') FROM blocks WHERE chain = $c)",
             "(SELECT count(*) FROM inputs WHERE chain = $c AND value IS NULL)"]
    if has_patterns(cat):
        graph.append("(SELECT count(*) || ':' || coalesce(sum(hash(txid, pattern)), 0) FROM tx_patterns "
                     "WHERE chain = $c)")
    if has_change(cat):
        graph.append("(SELECT count(*) || ':' || coalesce(sum(hash(txid, n, heuristic)), 0) "
                     "FROM change_outputs WHERE chain = $c)")
    attribution = []
    tag_cols = [c for c in ("address", "label", "category", "abuse", "actor", "jurisdiction",
                            "confidence_level", "source", "is_cluster_definer", "lastmod")
                if c in cat.get("tags", set())]
    if tag_cols:
        attribution.append(f"(SELECT count(*) || ':' || coalesce(sum(hash({', '.join(tag_cols)})), 0) "
                           "FROM tags WHERE chain = $c)")
        # a tag names an address by its text: an address ingested after the tag gets its id only then
        attribution.append("(SELECT count(*) FROM addresses WHERE chain = $c)")
    if {"chain", "address_id", "cluster_id"} <= cat.get("clusters", set()):
        attribution.append("(SELECT count(*) || ':' || coalesce(sum(hash(address_id, cluster_id)), 0) "
                           "FROM clusters WHERE chain = $c)")
    if {"id", "label"} <= cat.get("actors", set()):
        attribution.append("(SELECT count(*) || ':' || coalesce(sum(hash(id, label)), 0) FROM actors)")
    return "SELECT " + ", ".join(graph + attribution), len(graph)


_FROZEN: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, dict[str, Snapshot] | None] = (
    weakref.WeakKeyDictionary())
"""Per connection: the snapshots of a read-only database by chain (None for a writable connection)."""


def _frozen(store: ChainStore) -> dict[str, Snapshot] | None:
    """The snapshots kept for the store's connection when it is read-only (its database cannot change).

    A read-only DuckDB connection holds the file locked against writers in every process, so what it
    sees stays as it was when it opened: its snapshots are read once. The access mode is asked once per
    connection; writable connections (and in-memory databases) get None and are read on every call.
    """
    con = store.con
    try:
        return _FROZEN[con]
    except KeyError:
        pass
    mode = con.execute("SELECT current_setting('access_mode')").fetchall()[0][0]
    kept: dict[str, Snapshot] | None = {} if str(mode).lower() == "read_only" else None
    with _LOCK:
        return _FROZEN.setdefault(con, kept)


def snapshot(store: ChainStore, chain: str) -> Snapshot:
    """The state that the graph and attribution caches of ``chain`` depend on.

    Read in one query, or once per connection when the connection is read-only (:func:`_frozen`).
    """
    kept = _frozen(store)
    if kept is None:
        return _read_snapshot(store, chain)
    if chain not in kept:
        kept[chain] = _read_snapshot(store, chain)
    return kept[chain]


def _read_snapshot(store: ChainStore, chain: str) -> Snapshot:
    """Read the snapshot of ``chain`` in one query.

    The catalog of optional tables is kept per store and read again when the number of tables changes.
    """
    known = _CATALOGS.get(store)
    if known is not None:
        count, cat = known
        sql, split = _snapshot_sql(cat)
        try:
            row = store.con.execute(sql, {"c": chain}).fetchall()[0]
        except duckdb.Error:  # a table the cached catalog names is gone or changed
            row = None
        if row is not None and row[0] == count:
            return Snapshot(cat, tuple(row[1:split]), tuple(row[split:]))
    cat = catalog(store)
    sql, split = _snapshot_sql(cat)
    row = store.con.execute(sql, {"c": chain}).fetchall()[0]
    _CATALOGS[store] = (int(row[0]), cat)
    return Snapshot(cat, tuple(row[1:split]), tuple(row[split:]))


@dataclass(eq=False)
class UtxoGraph:
    """One UTXO chain as arrays; see the module docstring for the layout."""

    chain: str
    fingerprint: tuple[Any, ...]
    txid: pa.Array
    tx_height: np.ndarray
    tx_time: np.ndarray
    tx_coinbase: np.ndarray
    tx_coinjoin: np.ndarray
    tx_out_ptr: np.ndarray
    tx_in_ptr: np.ndarray
    tx_in_total: np.ndarray
    out_tx: np.ndarray
    out_n: np.ndarray
    out_value: np.ndarray
    out_addr: np.ndarray
    out_spender: np.ndarray
    out_spender_in: np.ndarray
    in_tx: np.ndarray
    in_n: np.ndarray
    in_prev: np.ndarray
    in_value: np.ndarray
    in_addr: np.ndarray
    in_resolved: np.ndarray
    addr_degree: np.ndarray
    addr_out_ptr: np.ndarray
    addr_out_rows: np.ndarray
    addr_text: pa.Array | None
    out_change: np.ndarray
    change_names: list[str] = field(default_factory=list)
    out_is_change: np.ndarray | None = None
    """Per output: taken as its sender's change (combined confidence >= :data:`CHANGE_CONFIDENCE`)."""
    out_peel: np.ndarray | None = None
    """Per output: the continuing output of a peel-chain step that the chain's next step spends."""
    build_seconds: float = 0.0
    addr_order: np.ndarray | None = field(default=None, repr=False)

    @property
    def tx_count(self) -> int:
        """Number of transactions."""
        return len(self.tx_height)

    def degree(self, address_ids: np.ndarray) -> np.ndarray:
        """Number of transactions each address takes part in (0 for ids the graph does not know)."""
        ids = np.asarray(address_ids, dtype=np.int64)
        known = (ids >= 0) & (ids < len(self.addr_degree))
        out = np.zeros(len(ids), dtype=np.int64)
        out[known] = self.addr_degree[ids[known]]
        return out

    def outputs_to(self, address_id: int) -> np.ndarray:
        """Output rows paying ``address_id``, in chain order."""
        if address_id < 0 or address_id + 1 >= len(self.addr_out_ptr):
            return np.zeros(0, dtype=np.int64)
        return self.addr_out_rows[self.addr_out_ptr[address_id]:self.addr_out_ptr[address_id + 1]]

    def address_texts(self, ids: Any) -> dict[int, str] | None:
        """Address strings by id (None when the graph does not hold them)."""
        if self.addr_text is None:
            return None
        arr = np.unique(np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64))
        arr = arr[(arr >= 0) & (arr < len(self.addr_text))]
        if len(arr) == 0:
            return {}
        return dict(zip(arr.tolist(), self.addr_text.take(pa.array(arr)).to_pylist(), strict=True))

    def change_heuristic(self, row: int) -> str | None:
        """The change heuristic that marked an output (``change_outputs``), if any."""
        code = int(self.out_change[row])
        return self.change_names[code - 1] if code else None

    def find_tx(self, txid: str) -> int:
        """The number of a transaction by txid, or -1."""
        return int(pc.index(self.txid, pa.scalar(txid, pa.string())).as_py())

    def tx_index(self, txid: str) -> int:
        """The number of a transaction by txid; raises NotFoundError."""
        found = self.find_tx(txid)
        if found < 0:
            raise NotFoundError(f"{self.chain} transaction", txid)
        return found

    def find_address(self, address: str) -> int | None:
        """The interned id of an address the graph knows (None when unknown or not held).

        A binary search over the addresses in sorted order (the order is computed on first use).
        """
        if self.addr_text is None:
            return None
        order = self._address_order()
        texts = _SortedTexts(self.addr_text, order)
        i = bisect.bisect_left(texts, address)
        return int(order[i]) if i < len(order) and texts[i] == address else None

    def _address_order(self) -> np.ndarray:
        """Address ids sorted by address text (stable: the lowest id first among equals), nulls left out."""
        if self.addr_order is None:
            assert self.addr_text is not None
            order = pc.sort_indices(self.addr_text).to_numpy()  # nulls sort last
            self.addr_order = order[:len(order) - self.addr_text.null_count]
        return self.addr_order

    def txids(self, txs: np.ndarray) -> list[str]:
        """Txids of transaction numbers."""
        if len(txs) == 0:
            return []
        texts: list[str] = self.txid.take(pa.array(np.asarray(txs, dtype=np.int64))).to_pylist()
        return texts

    def outputs_of(self, txs: np.ndarray) -> np.ndarray:
        """Output rows of the given transactions, transaction by transaction, in order."""
        return expand_ranges(self.tx_out_ptr[txs], self.tx_out_ptr[np.asarray(txs) + 1])

    def inputs_of(self, txs: np.ndarray) -> np.ndarray:
        """Input rows of the given transactions, transaction by transaction, in order."""
        return expand_ranges(self.tx_in_ptr[txs], self.tx_in_ptr[np.asarray(txs) + 1])

    def in_window(self, txs: np.ndarray, since: int | None, until: int | None) -> np.ndarray:
        """Which transactions fall inside the time window."""
        ok = np.ones(len(txs), dtype=bool)
        if len(txs) == 0:
            return ok
        t = self.tx_time[txs]
        if since is not None:
            ok &= t >= since
        if until is not None:
            ok &= t <= until
        return ok


class _SortedTexts:
    """Address texts in sorted order, as a sequence for :mod:`bisect`."""

    def __init__(self, texts: pa.StringArray, order: np.ndarray) -> None:
        self.texts = texts
        self.order = order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> str:
        text: str = self.texts[int(self.order[i])].as_py()
        return text


def expand_ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenate ``range(s, e)`` for each pair, vectorised."""
    starts = np.asarray(starts, dtype=np.int64)
    counts = np.asarray(ends, dtype=np.int64) - starts
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
    expanded: np.ndarray = np.arange(total, dtype=np.int64) + offsets
    return expanded


def _amounts(table: pa.Table, column: str) -> np.ndarray:
    """An amount column as int64 when every value fits, else as Python ints."""
    col = table.column(column)
    if pa.types.is_integer(col.type):
        as_int64: np.ndarray = col.to_numpy().astype(np.int64)
        return as_int64
    return np.array([0 if v is None else int(v) for v in col.to_pylist()], dtype=object)


def _fetch_amounts(store: ChainStore, sql: str, params: dict[str, Any]) -> pa.Table:
    """Run ``sql`` with amounts cast to BIGINT, or kept as decimals when they do not fit."""
    try:
        return store.con.sql(sql.replace("{AMOUNT}", "BIGINT"), params=params).to_arrow_table()
    except duckdb.ConversionException:
        return store.con.sql(sql.replace("{AMOUNT}", "DECIMAL(38,0)"), params=params).to_arrow_table()


def build_utxo_graph(store: ChainStore, chain: str, snap: Snapshot | None = None) -> UtxoGraph:
    """Read a UTXO chain from the store into arrays."""
    started = time.perf_counter()
    snap = snapshot(store, chain) if snap is None else snap
    cat = snap.catalog
    fingerprint = snap.graph
    con = store.con
    num = f"_ft_txnum_{id(store):x}_{threading.get_ident():x}"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {num} AS
                    SELECT txid, height, time, coinbase,
                           (row_number() OVER (ORDER BY height, tx_index, txid) - 1)::BIGINT AS tx
                    FROM txs WHERE chain = $c""", {"c": chain})
    try:
        txs = con.sql(f"SELECT txid, height, time, coinbase FROM {num} ORDER BY tx").to_arrow_table()
        outs = _fetch_amounts(store, f"""
            SELECT t.tx, o.n, o.value::{{AMOUNT}} AS value, coalesce(o.address_id, -1) AS addr
            FROM outputs o JOIN {num} t ON t.txid = o.txid AND t.height = o.height
            WHERE o.chain = $c ORDER BY t.tx, o.n""", {"c": chain})
        ins = _fetch_amounts(store, f"""
            SELECT t.tx, i.n, coalesce(p.tx, -1) AS prev_tx, i.prev_n,
                   coalesce(i.value, 0)::{{AMOUNT}} AS value, coalesce(i.address_id, -1) AS addr,
                   i.value IS NOT NULL AS resolved
            FROM inputs i JOIN {num} t ON t.txid = i.txid AND t.height = i.height
            LEFT JOIN (SELECT txid, max(tx) AS tx FROM {num} GROUP BY txid) p ON p.txid = i.prev_txid
            WHERE i.chain = $c ORDER BY t.tx, i.n""", {"c": chain})
        coinjoin_txids: list[str] = []
        if has_patterns(cat):
            marks = ", ".join(f"'{p}'" for p in COINJOIN_PATTERNS)
            coinjoin_txids = [r[0] for r in con.execute(
                f"SELECT DISTINCT txid FROM tx_patterns WHERE chain = ? AND lower(pattern) IN ({marks})",
                [chain]).fetchall()]
        change_rows: list[tuple[Any, ...]] = []
        if has_change(cat):
            on_height = "AND t.height = c.height" if "height" in cat["change_outputs"] else ""
            change_rows = con.execute(
                f"""SELECT t.tx, c.n, min(c.heuristic),
                           coalesce(max(c.confidence) FILTER (WHERE c.heuristic = 'combined'), 0)
                    FROM change_outputs c
                    JOIN {num} t ON t.txid = c.txid {on_height} WHERE c.chain = $c GROUP BY 1, 2""",
                {"c": chain}).fetchall()
        peel_rows: list[tuple[Any, ...]] = []
        if has_patterns(cat) and {"params", "height"} <= cat["tx_patterns"]:
            peel_rows = con.execute(
                f"""SELECT t.tx, (p.params->>'continuing_n')::BIGINT FROM tx_patterns p
                    JOIN {num} t ON t.txid = p.txid AND t.height = p.height
                    WHERE p.chain = $c AND p.pattern = $p
                      AND (p.params->>'position')::BIGINT < (p.params->>'length')::BIGINT - 1""",
                {"c": chain, "p": PEEL_PATTERN}).fetchall()
        max_addr_row = con.execute("SELECT coalesce(max(id), -1), count(*) FROM addresses WHERE chain = ?",
                                   [chain]).fetchall()[0]
        addr_text = None
        if max_addr_row and max_addr_row[1] == max_addr_row[0] + 1:  # ids are dense: index by id
            addr_text = con.sql("SELECT address FROM addresses WHERE chain = $c ORDER BY id",
                                params={"c": chain}).to_arrow_table().column(0).combine_chunks()
    finally:
        con.execute(f"DROP TABLE IF EXISTS {num}")
    n_tx = txs.num_rows
    txid = txs.column("txid").combine_chunks()
    out_tx = outs.column("tx").to_numpy().astype(np.int64)
    out_n = outs.column("n").to_numpy().astype(np.int64)
    out_value = _amounts(outs, "value")
    out_addr = outs.column("addr").to_numpy().astype(np.int64)
    in_tx = ins.column("tx").to_numpy().astype(np.int64)
    in_n = ins.column("n").to_numpy().astype(np.int64)
    prev_tx = ins.column("prev_tx").to_numpy().astype(np.int64)
    prev_n = ins.column("prev_n").to_numpy().astype(np.int64)
    in_value = _amounts(ins, "value")
    in_addr = ins.column("addr").to_numpy().astype(np.int64)
    in_resolved = ins.column("resolved").to_numpy(zero_copy_only=False).astype(bool)

    tx_out_ptr = np.zeros(n_tx + 1, dtype=np.int64)
    np.cumsum(np.bincount(out_tx, minlength=n_tx), out=tx_out_ptr[1:])
    tx_in_ptr = np.zeros(n_tx + 1, dtype=np.int64)
    np.cumsum(np.bincount(in_tx, minlength=n_tx), out=tx_in_ptr[1:])

    # The output row each input spends: outputs are sorted by (tx, n), so search the combined key.
    width = int(max(out_n.max(initial=0), prev_n.max(initial=0))) + 1
    out_key = out_tx * width + out_n
    in_key = np.where(prev_tx >= 0, prev_tx * width + prev_n, -1)
    pos = np.searchsorted(out_key, in_key)
    pos_ok = (in_key >= 0) & (pos < len(out_key))
    in_prev = np.full(len(in_key), -1, dtype=np.int64)
    in_prev[pos_ok] = np.where(out_key[pos[pos_ok]] == in_key[pos_ok], pos[pos_ok], -1)
    out_spender = np.full(len(out_tx), -1, dtype=np.int64)
    out_spender_in = np.full(len(out_tx), -1, dtype=np.int64)
    spent = in_prev >= 0
    out_spender[in_prev[spent]] = in_tx[spent]
    out_spender_in[in_prev[spent]] = np.flatnonzero(spent)

    tx_in_total = np.zeros(n_tx, dtype=in_value.dtype)
    nonempty = tx_in_ptr[1:] > tx_in_ptr[:-1]
    if len(in_value):
        tx_in_total[nonempty] = np.add.reduceat(in_value, tx_in_ptr[:-1][nonempty])

    # Degree: distinct transactions per address, over outputs received and inputs spent.
    n_addr = int(max_addr_row[0] if max_addr_row else -1) + 1
    pairs = np.concatenate([out_tx[out_addr >= 0] * (n_addr + 1) + out_addr[out_addr >= 0],
                            in_tx[in_addr >= 0] * (n_addr + 1) + in_addr[in_addr >= 0]])
    pairs = np.unique(pairs)
    addr_degree = np.bincount(pairs % (n_addr + 1), minlength=n_addr).astype(np.int64)[:max(n_addr, 0)]

    order = np.argsort(out_addr, kind="stable")
    addr_out_rows = order[out_addr[order] >= 0]
    addr_out_ptr = np.zeros(max(n_addr, 0) + 1, dtype=np.int64)
    np.cumsum(np.bincount(out_addr[out_addr >= 0], minlength=n_addr)[:n_addr], out=addr_out_ptr[1:])

    out_change = np.zeros(len(out_tx), dtype=np.int16)
    out_is_change = np.zeros(len(out_tx), dtype=bool)
    change_names = sorted({str(r[2]) for r in change_rows})
    if change_rows:
        code = {name: i + 1 for i, name in enumerate(change_names)}
        keys = np.array([r[0] * width + r[1] for r in change_rows], dtype=np.int64)
        hit = np.searchsorted(out_key, keys)
        ok = (hit < len(out_key)) & (out_key[np.minimum(hit, len(out_key) - 1)] == keys)
        out_change[hit[ok]] = np.array([code[str(r[2])] for r in change_rows], dtype=np.int16)[ok]
        taken = np.array([float(r[3]) >= CHANGE_CONFIDENCE for r in change_rows], dtype=bool)
        out_is_change[hit[ok & taken]] = True
    out_peel = np.zeros(len(out_tx), dtype=bool)
    if peel_rows:
        keys = np.array([r[0] * width + r[1] for r in peel_rows if r[1] is not None], dtype=np.int64)
        hit = np.searchsorted(out_key, keys)
        ok = (hit < len(out_key)) & (out_key[np.minimum(hit, len(out_key) - 1)] == keys)
        out_peel[hit[ok]] = True

    tx_coinjoin = np.zeros(n_tx, dtype=bool)
    if coinjoin_txids and n_tx:
        tx_coinjoin = pc.is_in(txid, value_set=pa.array(coinjoin_txids, pa.string())).to_numpy(
            zero_copy_only=False)

    graph = UtxoGraph(
        chain=chain, fingerprint=fingerprint, txid=txid,
        tx_height=txs.column("height").to_numpy().astype(np.int64),
        tx_time=txs.column("time").to_numpy().astype(np.int64),
        tx_coinbase=txs.column("coinbase").to_numpy(zero_copy_only=False).astype(bool),
        tx_coinjoin=tx_coinjoin, tx_out_ptr=tx_out_ptr, tx_in_ptr=tx_in_ptr, tx_in_total=tx_in_total,
        out_tx=out_tx, out_n=out_n, out_value=out_value, out_addr=out_addr, out_spender=out_spender,
        out_spender_in=out_spender_in, in_tx=in_tx, in_n=in_n, in_prev=in_prev, in_value=in_value,
        in_addr=in_addr, in_resolved=in_resolved, addr_degree=addr_degree, addr_out_ptr=addr_out_ptr,
        addr_out_rows=addr_out_rows, addr_text=addr_text, out_change=out_change, change_names=change_names,
        out_is_change=out_is_change, out_peel=out_peel)
    graph.build_seconds = time.perf_counter() - started
    log.info("built %s transaction graph: %d txs, %d outputs, %d inputs in %.2fs", chain, n_tx,
             len(out_tx), len(in_tx), graph.build_seconds)
    return graph


def utxo_graph(store: ChainStore, chain: str, snap: Snapshot | None = None) -> UtxoGraph:
    """The cached graph of ``chain`` in ``store``, rebuilt when the chain changed since it was built."""
    snap = snapshot(store, chain) if snap is None else snap
    with _LOCK:
        per_store = _CACHE.setdefault(store, {})
        graph = per_store.get(chain)
        if graph is not None and graph.fingerprint == snap.graph:
            return graph
    graph = build_utxo_graph(store, chain, snap)
    with _LOCK:
        _CACHE.setdefault(store, {})[chain] = graph
    return graph
