"""The transaction graph of a UTXO chain as integer arrays (CSR), cached per store.

Transactions are numbered ``0..T-1`` in chain order (height, position in block, txid), which is a
topological order: a transaction only spends outputs of transactions numbered before it. Outputs and
inputs are rows sorted by (transaction, n), so a transaction's outputs are rows
``tx_out_ptr[t]:tx_out_ptr[t+1]`` and its inputs ``tx_in_ptr[t]:tx_in_ptr[t+1]``. Each input points to
the output row it spends (``in_prev``) and each output to the transaction and input row spending it
(``out_spender``, ``out_spender_in``); ``-1`` where there is none or the store does not hold it.

Building the graph reads the whole chain once (a few seconds for a million transactions). A home's store
keeps it in files beside it (:mod:`fundtrail.analysis.graphstore`), extended with the rows of new blocks
(:func:`extend_utxo_graph`) and rebuilt when covered blocks changed; in a process the graph is cached per
store and chain and brought up to date when the store's snapshot changed (blocks added or rolled back,
inputs resolved, transaction patterns or change outputs updated).
"""

from __future__ import annotations

import bisect
import logging
import os
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, cast

import duckdb
import numpy as np
import pyarrow as pa

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

OPTIONAL_TABLES = ("tx_patterns", "change_outputs", "clusters", "tags", "actors", "conversions", "sanctions")
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


STRUCTURE = slice(0, 2)
"""The entries of ``Snapshot.graph`` that describe the chain's rows (blocks, unresolved inputs)."""
MARKS = slice(2, 4)
"""The entries of ``Snapshot.graph`` that describe the marks (CoinJoin and peel patterns, change)."""


@dataclass(frozen=True)
class Snapshot:
    """What the caches depend on, read in one query: the catalog, the chain graph, the attribution inputs."""

    catalog: dict[str, set[str]]
    graph: tuple[Any, ...]
    attribution: tuple[Any, ...]
    lists: tuple[Any, ...] = ()
    """The conversions and sanctions lists (what a trace crosses and is screened against)."""


_CATALOGS: weakref.WeakKeyDictionary[ChainStore, tuple[int, dict[str, set[str]]]] = (
    weakref.WeakKeyDictionary())


def _snapshot_sql(cat: dict[str, set[str]]) -> tuple[str, int, int]:
    """The snapshot query for a catalog, and where its graph and attribution columns end."""
    graph = ["(SELECT count(*) FROM duckdb_tables() WHERE NOT temporary)",
             "(SELECT count(*) || ':' || coalesce(max(height), -1) || ':' || coalesce(sum(tx_count), 0) "
             "|| ':' || coalesce(arg_max(hash, height), '') || ':' || coalesce(sum(hash(height, hash)), 0) "
             "FROM blocks WHERE chain = $c)",
             "(SELECT count(*) FROM inputs WHERE chain = $c AND value IS NULL)"]
    # the marks: always two entries (NULL without the table), so that MARKS slices them
    graph.append("(SELECT count(*) || ':' || coalesce(sum(hash(txid, pattern)), 0) FROM tx_patterns "
                 "WHERE chain = $c)" if has_patterns(cat) else "NULL")
    graph.append("(SELECT count(*) || ':' || coalesce(sum(hash(txid, n, heuristic)), 0) "
                 "FROM change_outputs WHERE chain = $c)" if has_change(cat) else "NULL")
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
    lists = [f"(SELECT count(*) || ':' || coalesce(sum(hash({name})), 0) FROM {name})"
             for name in ("conversions", "sanctions") if cat.get(name)]
    return "SELECT " + ", ".join(graph + attribution + lists), len(graph), len(graph) + len(attribution)


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
        sql, split, end = _snapshot_sql(cat)
        try:
            row = store.con.execute(sql, {"c": chain}).fetchall()[0]
        except duckdb.Error:  # a table the cached catalog names is gone or changed
            row = None
        if row is not None and row[0] == count:
            return Snapshot(cat, tuple(row[1:split]), tuple(row[split:end]), tuple(row[end:]))
    cat = catalog(store)
    sql, split, end = _snapshot_sql(cat)
    row = store.con.execute(sql, {"c": chain}).fetchall()[0]
    _CATALOGS[store] = (int(row[0]), cat)
    return Snapshot(cat, tuple(row[1:split]), tuple(row[split:end]), tuple(row[end:]))


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
    """Address ids sorted by address text (computed on first use when not kept with the graph)."""
    tx_key: np.ndarray | None = field(default=None, repr=False)
    """Per transaction: its chain-order key (:func:`tx_keys`: height, then position in the block)."""

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
        texts = take_texts(self.addr_text, arr)  # None for an id without an address, as before
        return dict(zip(arr.tolist(), cast(list[str], texts), strict=True))

    def change_heuristic(self, row: int) -> str | None:
        """The change heuristic that marked an output (``change_outputs``), if any."""
        code = int(self.out_change[row])
        return self.change_names[code - 1] if code else None

    def find_tx(self, txid: str) -> int:
        """The number of a transaction by txid, or -1."""
        import pyarrow.compute as pc  # loaded when used: most commands never need it

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
            import pyarrow.compute as pc

            order = pc.sort_indices(self.addr_text).to_numpy()  # nulls sort last
            self.addr_order = order[:len(order) - self.addr_text.null_count]
        return self.addr_order

    def txids(self, txs: np.ndarray) -> list[str]:
        """Txids of transaction numbers."""
        if len(txs) == 0:
            return []
        return take_texts(self.txid, np.asarray(txs, dtype=np.int64))  # type: ignore[return-value]

    def outputs_of(self, txs: np.ndarray) -> np.ndarray:
        """Output rows of the given transactions, transaction by transaction, in order."""
        return expand_ranges(self.tx_out_ptr[txs], self.tx_out_ptr[np.asarray(txs) + 1])

    def inputs_of(self, txs: np.ndarray) -> np.ndarray:
        """Input rows of the given transactions, transaction by transaction, in order."""
        return expand_ranges(self.tx_in_ptr[txs], self.tx_in_ptr[np.asarray(txs) + 1])

    def in_window(self, txs: np.ndarray, since: int | None, until: int | None) -> np.ndarray:
        """Which transactions fall inside the time window."""
        ok = np.ones(len(txs), dtype=bool)
        if len(txs) == 0 or (since is None and until is None):
            return ok
        t = self.tx_time[txs]
        if since is not None:
            ok &= t >= since
        if until is not None:
            ok &= t <= until
        return ok


def take_texts(text: pa.Array, ids: np.ndarray) -> list[str | None]:
    """The strings of a string array at positions ``ids`` (in range), as ``text.take(ids).to_pylist()``.

    Arrow's ``take`` needs its compute module (~45 ms to import); a process that has not imported it
    (a CLI trace) reads a few thousand strings straight from the array's offsets and bytes instead.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) == 0:
        return []
    if (text.null_count or len(ids) > _DIRECT_TEXTS or "pyarrow.compute" in sys.modules
            or not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type))):
        import pyarrow.compute  # noqa: F401  (Array.take needs it)

        taken: list[str | None] = text.take(pa.array(ids)).to_pylist()
        return taken
    if int(ids.min()) < 0 or int(ids.max()) >= len(text):
        raise IndexError("string position out of range")
    buffers = text.buffers()
    wide = pa.types.is_large_string(text.type)
    offsets = np.frombuffer(buffers[1], dtype=np.int64 if wide else np.int32)[
        text.offset:text.offset + len(text) + 1]
    if buffers[2] is None:
        return [""] * len(ids)
    data = memoryview(buffers[2])
    return [str(data[a:b], "utf-8") for a, b in zip(offsets[ids].tolist(), offsets[ids + 1].tolist(),
                                                     strict=True)]


_DIRECT_TEXTS = 4096
"""The most strings :func:`take_texts` reads itself in a process without Arrow's compute module."""


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


NO_HEIGHT = -(1 << 62)
"""The height below every block: a graph extended from it is built from nothing."""

_KEY_SQL = "height * 4294967296 + tx_index"
""":func:`tx_keys` in SQL."""


def tx_keys(height: np.ndarray, index: np.ndarray) -> np.ndarray:
    """The chain-order key of transactions (height, then position in the block) as one integer."""
    keys: np.ndarray = (np.asarray(height, dtype=np.int64) * np.int64(1 << 32)
                        + np.asarray(index, dtype=np.int64))
    return keys


def _numbers(all_keys: np.ndarray, txid: pa.Array, keys: np.ndarray, txids: list[str] | None) -> np.ndarray:
    """Transaction numbers of chain-order keys (-1 where none); ``txids`` settle keys that several
    transactions share (a block listing two transactions at one position)."""
    lo = np.searchsorted(all_keys, keys, "left")
    hi = np.searchsorted(all_keys, keys, "right")
    out = np.where(hi > lo, lo, -1).astype(np.int64)
    for i in np.flatnonzero(hi - lo > 1).tolist():
        out[i] = -1
        if txids is not None:
            for j in range(int(lo[i]), int(hi[i])):
                if txid[j].as_py() == txids[i]:
                    out[i] = j
                    break
    return out


def _concat(base: np.ndarray | None, new: np.ndarray) -> np.ndarray:
    if base is None or len(base) == 0:
        return np.asarray(new)
    if len(new) == 0:
        return np.asarray(base)
    return np.concatenate([base, new])


def _concat_text(base: pa.Array | None, new: pa.Array) -> pa.Array:
    if base is None:
        return new
    return pa.concat_arrays([base, new.cast(base.type)])


@dataclass(frozen=True)
class Coverage:
    """The part of the store a graph holds: every block up to ``height``, described so that a change
    below it (a reorg, a block ingested out of order) is seen."""

    height: int
    hash: str | None
    blocks: int
    block_sum: str
    unresolved: int

    def to_dict(self) -> dict[str, Any]:
        """As a JSON object."""
        return {"height": self.height, "hash": self.hash, "blocks": self.blocks, "block_sum": self.block_sum,
                "unresolved": self.unresolved}


def coverage(store: ChainStore, chain: str, height: int | None = None) -> Coverage:
    """The store's blocks of ``chain`` up to ``height`` (default: all) as a :class:`Coverage`."""
    if height is None:
        top = store.con.execute("SELECT coalesce(max(height), ?) FROM blocks WHERE chain = ?",
                                [NO_HEIGHT, chain]).fetchall()
        height = int(top[0][0])
    row: tuple[Any, ...] = store.con.execute(
        """SELECT count(*), coalesce(sum(hash(height, hash)), 0)::VARCHAR,
                  (SELECT hash FROM blocks WHERE chain = $c AND height = $h LIMIT 1),
                  (SELECT count(*) FROM inputs WHERE chain = $c AND height <= $h AND value IS NULL)
           FROM blocks WHERE chain = $c AND height <= $h""", {"c": chain, "h": height}).fetchall()[0]
    return Coverage(height, row[2], int(row[0]), str(row[1]), int(row[3]))


def links_into(store: ChainStore, chain: str, height: int) -> bool:
    """Whether an input at or below ``height`` spends a transaction above it (then appending the blocks
    above would leave that input unlinked: the graph is built again instead)."""
    row = store.con.execute(
        """SELECT count(*) FROM inputs WHERE chain = $c AND height <= $h
           AND prev_txid IN (SELECT txid FROM txs WHERE chain = $c AND height > $h)""",
        {"c": chain, "h": height}).fetchall()
    return bool(row[0][0])


def build_utxo_graph(store: ChainStore, chain: str, snap: Snapshot | None = None) -> UtxoGraph:
    """Read a UTXO chain from the store into arrays."""
    return extend_utxo_graph(store, chain, snapshot(store, chain) if snap is None else snap)


def extend_utxo_graph(store: ChainStore, chain: str, snap: Snapshot, base: UtxoGraph | None = None,
                      above: int = NO_HEIGHT, upto: int | None = None) -> UtxoGraph:
    """The graph of ``base`` (which holds the blocks up to ``above``) with the blocks above it added
    (up to ``upto`` when given), and every mark read again.

    Without ``base`` it is the whole chain. The caller checks that nothing at or below ``above``
    changed (:func:`coverage`, :func:`links_into`); the result equals a build from nothing.
    """
    started = time.perf_counter()
    con = store.con
    t0 = base.tx_count if base is not None else 0
    r0 = len(base.out_tx) if base is not None else 0
    i0 = len(base.in_tx) if base is not None else 0
    top = (1 << 62) if upto is None else upto
    params = {"c": chain, "h": above, "u": top}
    num = f"_ft_txnum_{os.getpid():x}_{id(store):x}_{threading.get_ident():x}"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {num} AS
                    SELECT txid, height, time, coinbase, tx_index,
                           ({t0} + row_number() OVER (ORDER BY height, tx_index, txid) - 1)::BIGINT AS tx
                    FROM txs WHERE chain = $c AND height > $h AND height <= $u""", params)
    try:
        txs = con.sql(f"SELECT txid, height, time, coinbase, tx_index FROM {num} ORDER BY tx",
                      params={}).to_arrow_table()
        outs = _fetch_amounts(store, f"""
            SELECT t.tx, o.n, o.value::{{AMOUNT}} AS value, coalesce(o.address_id, -1) AS addr
            FROM outputs o JOIN {num} t ON t.txid = o.txid AND t.height = o.height
            WHERE o.chain = $c AND o.height > $h AND o.height <= $u ORDER BY t.tx, o.n""", params)
        new_key = tx_keys(txs.column("height").to_numpy(), txs.column("tx_index").to_numpy())
        all_key = _concat(base.tx_key if base is not None else None, new_key)
        ties = bool(len(all_key) > 1 and (all_key[1:] == all_key[:-1]).any())
        ins = _fetch_amounts(store, f"""
            SELECT t.tx, i.n, coalesce(p.k, {NO_HEIGHT}) AS prev_key, i.prev_n,
                   coalesce(i.value, 0)::{{AMOUNT}} AS value, coalesce(i.address_id, -1) AS addr,
                   i.value IS NOT NULL AS resolved{", i.prev_txid" if ties else ""}
            FROM inputs i JOIN {num} t ON t.txid = i.txid AND t.height = i.height
            LEFT JOIN (SELECT txid, max({_KEY_SQL}) AS k FROM txs
                       WHERE chain = $c AND height <= $u AND txid IN (
                           SELECT prev_txid FROM inputs WHERE chain = $c AND height > $h AND height <= $u)
                       GROUP BY txid) p ON p.txid = i.prev_txid
            WHERE i.chain = $c AND i.height > $h AND i.height <= $u ORDER BY t.tx, i.n""", params)
        addr_row = con.execute("SELECT coalesce(max(id), -1), count(*) FROM addresses WHERE chain = ?",
                               [chain]).fetchall()[0]
        n_addr = int(addr_row[0]) + 1
        old_n_addr = len(base.addr_degree) if base is not None else 0
        if n_addr < old_n_addr:  # addresses are never renumbered nor removed: read everything again
            return extend_utxo_graph(store, chain, snap, None, NO_HEIGHT, upto)
        addr_text = None
        if int(addr_row[1]) == n_addr:  # ids are dense: index by id
            kept = base.addr_text if base is not None else None
            new_text = con.sql("SELECT address FROM addresses WHERE chain = $c AND id >= $n ORDER BY id",
                               params={"c": chain, "n": old_n_addr if kept is not None else 0}
                               ).to_arrow_table().column(0).combine_chunks()
            addr_text = _concat_text(kept, new_text)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {num}")
    n_new = txs.num_rows
    n_tx = t0 + n_new
    txid = _concat_text(base.txid if base is not None else None, txs.column("txid").combine_chunks())
    out_tx_new = outs.column("tx").to_numpy().astype(np.int64)
    out_n_new = outs.column("n").to_numpy().astype(np.int64)
    out_addr_new = outs.column("addr").to_numpy().astype(np.int64)
    in_tx_new = ins.column("tx").to_numpy().astype(np.int64)
    prev_n = ins.column("prev_n").to_numpy(zero_copy_only=False)
    prev_n = np.where(np.isnan(prev_n), -1, prev_n).astype(np.int64) if prev_n.dtype.kind == "f" else (
        prev_n.astype(np.int64))
    prev_txids = ins.column("prev_txid").to_pylist() if ties else None
    prev_tx = _numbers(all_key, txid, ins.column("prev_key").to_numpy().astype(np.int64), prev_txids)
    in_addr_new = ins.column("addr").to_numpy().astype(np.int64)

    def old(name: str) -> np.ndarray | None:
        return getattr(base, name) if base is not None else None

    out_tx = _concat(old("out_tx"), out_tx_new)
    out_n = _concat(old("out_n"), out_n_new)
    out_value = _concat(old("out_value"), _amounts(outs, "value"))
    out_addr = _concat(old("out_addr"), out_addr_new)
    in_value_new = _amounts(ins, "value")
    in_tx = _concat(old("in_tx"), in_tx_new)
    in_n = _concat(old("in_n"), ins.column("n").to_numpy().astype(np.int64))
    in_value = _concat(old("in_value"), in_value_new)
    in_addr = _concat(old("in_addr"), in_addr_new)
    in_resolved = _concat(old("in_resolved"),
                          ins.column("resolved").to_numpy(zero_copy_only=False).astype(bool))

    def pointers(base_ptr: np.ndarray | None, rows_tx: np.ndarray) -> np.ndarray:
        ptr = np.zeros(n_tx + 1, dtype=np.int64)
        if base_ptr is not None:
            ptr[:t0 + 1] = base_ptr
        np.cumsum(np.bincount(rows_tx - t0, minlength=n_new), out=ptr[t0 + 1:])
        ptr[t0 + 1:] += ptr[t0]
        return ptr

    tx_out_ptr = pointers(old("tx_out_ptr"), out_tx_new)
    tx_in_ptr = pointers(old("tx_in_ptr"), in_tx_new)

    # The output row each input spends: outputs are sorted by (tx, n), so search the combined key.
    linkable = (prev_tx >= 0) & (prev_n >= 0)
    width = int(max(out_n.max(initial=0), prev_n[linkable].max(initial=0))) + 1
    out_key = out_tx * width + out_n
    in_key = np.where(linkable, prev_tx * width + prev_n, -1)
    pos = np.searchsorted(out_key, in_key)
    pos_ok = (in_key >= 0) & (pos < len(out_key))
    in_prev_new = np.full(len(in_key), -1, dtype=np.int64)
    in_prev_new[pos_ok] = np.where(out_key[pos[pos_ok]] == in_key[pos_ok], pos[pos_ok], -1)
    in_prev = _concat(old("in_prev"), in_prev_new)
    out_spender = _concat(old("out_spender"), np.full(len(out_tx_new), -1, dtype=np.int64)).copy()
    out_spender_in = _concat(old("out_spender_in"), np.full(len(out_tx_new), -1, dtype=np.int64)).copy()
    spent = in_prev_new >= 0
    out_spender[in_prev_new[spent]] = in_tx_new[spent]
    out_spender_in[in_prev_new[spent]] = i0 + np.flatnonzero(spent)

    total_new = np.zeros(n_new, dtype=in_value_new.dtype)
    local_ptr = tx_in_ptr[t0:] - i0
    nonempty = local_ptr[1:] > local_ptr[:-1]
    if len(in_value_new):
        total_new[nonempty] = np.add.reduceat(in_value_new, local_ptr[:-1][nonempty])
    tx_in_total = _concat(old("tx_in_total"), total_new)

    # Degree: distinct transactions per address, over outputs received and inputs spent (the new
    # transactions' pairs are new, so their counts add to the old degrees).
    pairs = np.unique(np.concatenate([
        out_tx_new[out_addr_new >= 0] * (n_addr + 1) + out_addr_new[out_addr_new >= 0],
        in_tx_new[in_addr_new >= 0] * (n_addr + 1) + in_addr_new[in_addr_new >= 0]]))
    addr_degree = np.bincount(pairs % (n_addr + 1), minlength=n_addr).astype(np.int64)[:n_addr]
    base_degree = old("addr_degree")
    if base_degree is not None:
        addr_degree[:old_n_addr] += base_degree

    # Outputs by address (CSR): each address's old rows, then its new rows (all later).
    new_counts = np.bincount(out_addr_new[out_addr_new >= 0], minlength=n_addr)[:n_addr]
    old_counts = np.zeros(n_addr, dtype=np.int64)
    base_ptr = old("addr_out_ptr")
    if base_ptr is not None:
        old_counts[:old_n_addr] = np.diff(base_ptr)
    addr_out_ptr = np.zeros(n_addr + 1, dtype=np.int64)
    np.cumsum(old_counts + new_counts, out=addr_out_ptr[1:])
    addr_out_rows = np.zeros(int(addr_out_ptr[-1]), dtype=np.int64)
    base_rows = old("addr_out_rows")
    if base_rows is not None and base_ptr is not None and len(base_rows):
        shift = addr_out_ptr[:old_n_addr] - base_ptr[:old_n_addr]
        addr_out_rows[np.arange(len(base_rows)) + np.repeat(shift, old_counts[:old_n_addr])] = base_rows
    order = np.argsort(out_addr_new, kind="stable")
    order = order[out_addr_new[order] >= 0]
    a_sorted = out_addr_new[order]
    rank = np.arange(len(a_sorted)) - np.searchsorted(a_sorted, a_sorted, "left")
    addr_out_rows[addr_out_ptr[a_sorted] + old_counts[a_sorted] + rank] = r0 + order

    addr_order = None
    base_order = old("addr_order")
    if addr_text is not None and base_order is not None and base is not None and base.addr_text is not None:
        addr_order = _merge_order(base.addr_text, base_order, addr_text, old_n_addr)

    graph = UtxoGraph(
        chain=chain, fingerprint=snap.graph, txid=txid,
        tx_height=_concat(old("tx_height"), txs.column("height").to_numpy().astype(np.int64)),
        tx_time=_concat(old("tx_time"), txs.column("time").to_numpy().astype(np.int64)),
        tx_coinbase=_concat(old("tx_coinbase"),
                            txs.column("coinbase").to_numpy(zero_copy_only=False).astype(bool)),
        tx_coinjoin=np.zeros(n_tx, dtype=bool), tx_out_ptr=tx_out_ptr, tx_in_ptr=tx_in_ptr,
        tx_in_total=tx_in_total, out_tx=out_tx, out_n=out_n, out_value=out_value, out_addr=out_addr,
        out_spender=out_spender, out_spender_in=out_spender_in, in_tx=in_tx, in_n=in_n, in_prev=in_prev,
        in_value=in_value, in_addr=in_addr, in_resolved=in_resolved, addr_degree=addr_degree,
        addr_out_ptr=addr_out_ptr, addr_out_rows=addr_out_rows, addr_text=addr_text,
        out_change=np.zeros(len(out_tx), dtype=np.int16), tx_key=all_key, addr_order=addr_order)
    read_marks(store, chain, snap.catalog, graph)
    graph.build_seconds = time.perf_counter() - started
    log.info("%s %s transaction graph: %d txs (%d new), %d outputs, %d inputs in %.2fs",
             "extended" if base is not None else "built", chain, n_tx, n_new, len(out_tx), len(in_tx),
             graph.build_seconds)
    return graph


_MERGE_LIMIT = 100_000
"""Up to this many new addresses are merged into the sorted order one by one; more sort it again."""


def _merge_order(old_text: pa.Array, old_order: np.ndarray, text: pa.Array, old_n: int) -> np.ndarray | None:
    """The sorted address order with the addresses from id ``old_n`` on merged in (None: sort anew)."""
    new_n = len(text) - old_n
    if new_n == 0:
        return old_order
    if new_n > _MERGE_LIMIT or old_text.null_count or text.null_count:
        return None
    fresh = text.slice(old_n)
    import pyarrow.compute as pc

    fresh_order = pc.sort_indices(fresh).to_numpy()
    fresh_texts = fresh.take(pa.array(fresh_order)).to_pylist()
    sorted_old = _SortedTexts(old_text, old_order)
    at = np.array([bisect.bisect_right(sorted_old, t) for t in fresh_texts], dtype=np.int64)
    merged: np.ndarray = np.insert(np.asarray(old_order, dtype=np.int64), at, fresh_order + old_n)
    return merged


def read_marks(store: ChainStore, chain: str, cat: dict[str, set[str]], graph: UtxoGraph) -> None:
    """Read the marks of every output and transaction of ``graph`` (CoinJoins, change, peel chains)."""
    con = store.con
    key, txid = graph.tx_key, graph.txid
    assert key is not None
    ties = bool(len(key) > 1 and (key[1:] == key[:-1]).any())
    width = int(graph.out_n.max(initial=0)) + 1
    out_key = graph.out_tx * width + graph.out_n

    def rows_of(tx_key: np.ndarray, txids: list[str], ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tx = _numbers(key, txid, tx_key, txids if ties else None)
        keys = np.where((tx >= 0) & (ns >= 0) & (ns < width), tx * width + ns, -1)
        hit = np.searchsorted(out_key, keys)
        ok = (keys >= 0) & (hit < len(out_key)) & (out_key[np.minimum(hit, max(len(out_key) - 1, 0))] == keys)
        return hit, ok

    coinjoin_txids: list[str] = []
    if has_patterns(cat):
        marks = ", ".join(f"'{p}'" for p in COINJOIN_PATTERNS)
        coinjoin_txids = [r[0] for r in con.execute(
            f"SELECT DISTINCT txid FROM tx_patterns WHERE chain = ? AND lower(pattern) IN ({marks})",
            [chain]).fetchall()]
    graph.tx_coinjoin = np.zeros(graph.tx_count, dtype=bool)
    if coinjoin_txids and graph.tx_count:
        import pyarrow.compute as pc

        graph.tx_coinjoin = pc.is_in(txid, value_set=pa.array(coinjoin_txids, pa.string())).to_numpy(
            zero_copy_only=False)
    n_out = len(graph.out_tx)
    graph.out_change = np.zeros(n_out, dtype=np.int16)
    graph.out_is_change = np.zeros(n_out, dtype=bool)
    graph.out_peel = np.zeros(n_out, dtype=bool)
    graph.change_names = []
    if has_change(cat) and n_out:
        on_height = "AND t.height = c.height" if "height" in cat["change_outputs"] else ""
        change_rows = con.execute(
            f"""SELECT t.{_KEY_SQL.replace("tx_index", "t.tx_index")}, t.txid, c.n, min(c.heuristic),
                       coalesce(max(c.confidence) FILTER (WHERE c.heuristic = 'combined'), 0)
                FROM change_outputs c JOIN txs t ON t.chain = $c AND t.txid = c.txid {on_height}
                WHERE c.chain = $c GROUP BY t.height, t.tx_index, t.txid, c.n""", {"c": chain}).fetchall()
        if change_rows:
            names = sorted({str(r[3]) for r in change_rows})
            code = {name: i + 1 for i, name in enumerate(names)}
            keys = np.array([r[0] for r in change_rows], dtype=np.int64)
            ns = np.array([r[2] for r in change_rows], dtype=np.int64)
            hit, ok = rows_of(keys, [r[1] for r in change_rows], ns)
            graph.out_change[hit[ok]] = np.array([code[str(r[3])] for r in change_rows], dtype=np.int16)[ok]
            taken = np.array([float(r[4]) >= CHANGE_CONFIDENCE for r in change_rows], dtype=bool)
            graph.out_is_change[hit[ok & taken]] = True
            graph.change_names = names
    if has_patterns(cat) and {"params", "height"} <= cat["tx_patterns"] and n_out:
        peel_rows = con.execute(
            f"""SELECT t.{_KEY_SQL.replace("tx_index", "t.tx_index")}, t.txid,
                       (p.params->>'continuing_n')::BIGINT FROM tx_patterns p
                JOIN txs t ON t.chain = $c AND t.txid = p.txid AND t.height = p.height
                WHERE p.chain = $c AND p.pattern = $p
                  AND (p.params->>'position')::BIGINT < (p.params->>'length')::BIGINT - 1""",
            {"c": chain, "p": PEEL_PATTERN}).fetchall()
        peel_rows = [r for r in peel_rows if r[2] is not None]
        if peel_rows:
            hit, ok = rows_of(np.array([r[0] for r in peel_rows], dtype=np.int64), [r[1] for r in peel_rows],
                              np.array([r[2] for r in peel_rows], dtype=np.int64))
            graph.out_peel[hit[ok]] = True


def utxo_graph(store: ChainStore, chain: str, snap: Snapshot | None = None) -> UtxoGraph:
    """The cached graph of ``chain`` in ``store``, brought up to date when the chain changed.

    A home's store keeps the graph in files beside it (:mod:`fundtrail.analysis.graphstore`: loaded
    memory-mapped, extended with new blocks); other stores build it in memory.
    """
    from fundtrail.analysis.graphstore import persisted_graph  # the files' module builds on this one

    snap = snapshot(store, chain) if snap is None else snap
    with _LOCK:
        per_store = _CACHE.setdefault(store, {})
        graph = per_store.get(chain)
        if graph is not None and graph.fingerprint == snap.graph:
            return graph
    found = persisted_graph(store, chain, snap)
    graph = found if found is not None else build_utxo_graph(store, chain, snap)
    with _LOCK:
        _CACHE.setdefault(store, {})[chain] = graph
    return graph
