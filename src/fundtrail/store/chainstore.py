"""The chain store: one DuckDB file holding the normalised model of many chains.

Invariants:

* A block is written whole or not at all: each batch is one DuckDB transaction, so a process killed
  mid-ingest leaves the store as it was before that batch.
* Re-writing a block that is already stored with the same hash changes nothing (idempotent ingest).
  A block whose height is stored with another hash is a conflict: the caller rolls the stored chain
  back (:meth:`ChainStore.rollback_to`) before writing it (reorg handling lives in the ingest service).
* Addresses are interned to dense integer ids per chain, never renumbered.
* Block writes are serialised across processes: each batch, rollback, import and resolution chunk holds
  the store's writer lock (an exclusive ``flock`` on ``<file>.writer.lock``) from the check of which
  blocks are stored to its commit, so two ingests of one chain never take the same address ids or
  write a block twice; readers never wait for it.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, cast

import duckdb
import numpy as np
import pyarrow as pa

from fundtrail.chains.tables import UtxoTables, amount_array, tables_of
from fundtrail.domain.records import AccountBatch, BlockRecord, LogColumns, PayloadColumns, UtxoBatch
from fundtrail.errors import ChainConflictError, InputError, StoreBusyError
from fundtrail.store import schema, service
from fundtrail.store.interning import hashes_of, load_index

if TYPE_CHECKING:
    from fundtrail.store.interning import AddressIndex

log = logging.getLogger(__name__)

INT64_MAX = 2**63 - 1
DECIMAL38_MAX = 10**38 - 1

RESOLVE_WINDOW = 144
"""Blocks below a batch whose outputs resolve its inputs as they are written (older: end of the run)."""

RESOLVE_CHUNK = 1_000_000
"""Unresolved inputs per transaction of the end-of-run resolution (bounds its hash join)."""

INGEST_CHECKPOINT = "256MB"
"""WAL size that triggers a checkpoint while ingesting (bounds the WAL and the memory it pins)."""

INGEST_MEMORY = "640MB"
"""DuckDB's memory limit while ingesting; larger joins spill to its temporary directory, and blocks of the
store it evicts are read back from the file. Sized with the other parts of an ingest, to stay under 2 GB
whatever the input size: the writing process's interpreter and libraries (~250 MB), the address index
(:data:`fundtrail.store.interning.MAX_INDEXED`, 480 MB at most), the reading processes (~220 MB each,
their caches bounded by :data:`fundtrail.chains.bitcoin.etl_arrow.CACHE_BYTES`) and the items queued
between them (:data:`fundtrail.chains.ahead.AHEAD_ITEMS`)."""


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _exclusive(method: Callable[Concatenate[ChainStore, _P], _R]
               ) -> Callable[Concatenate[ChainStore, _P], _R]:
    """Run a block-writing method of the store under its writer lock (:meth:`ChainStore.writer_lock`)."""
    @functools.wraps(method)
    def locked(self: ChainStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self.writer_lock():
            return method(self, *args, **kwargs)
    return locked


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one batch write did."""

    blocks_written: int = 0
    blocks_skipped: int = 0
    txs_written: int = 0

    def __add__(self, other: WriteResult) -> WriteResult:
        return WriteResult(self.blocks_written + other.blocks_written,
                           self.blocks_skipped + other.blocks_skipped,
                           self.txs_written + other.txs_written)


def _prepare(con: duckdb.DuckDBPyConnection) -> None:
    """Settings and schema of a store opened for writing."""
    # A bounded write-ahead log: checkpoints every 256 MB keep memory and recovery time bounded.
    con.execute("SET checkpoint_threshold = '256MB'")
    # one catalog read instead of a statement per table: most opens find every table there already
    existing = {str(r[0]) for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND NOT temporary").fetchall()}
    for stmt in schema.ddl(existing):
        con.execute(stmt)
    versioned = "meta" in existing and con.execute(
        "SELECT count(*) FROM meta WHERE key = 'schema_version'").fetchall()[0][0]
    if not versioned:
        con.execute("INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING",
                    [str(schema.SCHEMA_VERSION)])


_amount_array = amount_array


class ChainStore:
    """The chain store on a DuckDB file (or ``:memory:``)."""

    _shared = False
    _lock_depth = 0

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        """Open ``path`` for this process alone (``:memory:``, scratch files); homes use :meth:`open_home`."""
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.read_only = read_only
        try:
            self.con = duckdb.connect(self.path, read_only=read_only)
        except duckdb.IOException as error:
            held = service.holder(error)
            if held is None:
                raise
            raise StoreBusyError(self.path, held) from None
        if not read_only:
            _prepare(self.con)

    @classmethod
    def open_home(cls, home: Path, *, read_only: bool = False) -> ChainStore:
        """Open (creating if needed) the chain store of a FundTrail home, shared with other processes.

        ``read_only`` states that the caller only reads; the file itself is opened for writing so that
        this process can serve writers too (see :mod:`fundtrail.store.service`).
        """
        return cls.open_shared(Path(home) / "chain.duckdb", read_only=read_only)

    @classmethod
    def open_shared(cls, path: str | Path, *, read_only: bool = False) -> ChainStore:
        """Open the store file at ``path`` shared with other processes: host it, or reach its host."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        con, _hosted = service.acquire(path, _prepare, lambda holder: StoreBusyError(str(path), holder))
        store = cls.__new__(cls)
        store.path = str(path)
        store.read_only = read_only
        # On a remote host the connection is a duck-typed RemoteConnection with the methods stores use.
        store.con = cast(duckdb.DuckDBPyConnection, con)
        store._shared = True
        return store

    def close(self) -> None:
        """Close the connection; the last user of a file checkpoints its WAL into the database file."""
        if self._shared:
            self._shared = False
            self.con.close()
            service.release(self.path)
            return
        if not self.read_only and self.path != ":memory:":
            try:
                self.con.execute("CHECKPOINT")
            except duckdb.Error as error:  # another transaction open: DuckDB checkpoints on the next open
                log.warning("checkpoint on close skipped: %s", error)
        self.con.close()

    def __enter__(self) -> ChainStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Hold the store's writer lock: one block writer at a time across every process using the file.

        Taken before the check of which blocks are stored, so that the transaction begun under it sees
        every block and address another writer committed; re-entrant within one store object. A
        ``:memory:`` store has no other process and takes no lock.
        """
        if self.path == ":memory:" or self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        fd = os.open(f"{self.path}.writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_depth = 1
            try:
                yield
            finally:
                self._lock_depth = 0
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ queries

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a read query and return all rows."""
        return self.con.execute(sql, params or []).fetchall()

    def stored_blocks(self, chain: str, heights: Iterable[int]) -> dict[int, str]:
        """Hashes of the stored blocks of ``chain`` at the given heights."""
        hs = sorted(set(heights))
        if not hs:
            return {}
        rows = self.con.execute(
            "SELECT height, hash FROM blocks WHERE chain = ? AND height BETWEEN ? AND ?",
            [chain, hs[0], hs[-1]],
        ).fetchall()
        wanted = set(hs)
        return {h: bh for h, bh in rows if h in wanted}

    def block_hash(self, chain: str, height: int) -> str | None:
        """The stored hash of the block at ``height``, if any."""
        row = self.con.execute("SELECT hash FROM blocks WHERE chain = ? AND height = ?",
                               [chain, height]).fetchone()
        return row[0] if row else None

    def height_of(self, chain: str, block_hash: str) -> int | None:
        """The height of a stored block by hash, if stored."""
        row = self.con.execute("SELECT height FROM blocks WHERE chain = ? AND hash = ?",
                               [chain, block_hash]).fetchone()
        return row[0] if row else None

    def tip(self, chain: str) -> int | None:
        """The highest stored block height of ``chain``."""
        row = self.con.execute("SELECT max(height) FROM blocks WHERE chain = ?", [chain]).fetchone()
        return row[0] if row else None

    def chains(self) -> list[str]:
        """Chains with at least one stored block."""
        return [r[0] for r in self.con.execute("SELECT DISTINCT chain FROM blocks ORDER BY chain").fetchall()]

    def summary(self) -> list[dict[str, Any]]:
        """Per chain: blocks, height range, transactions, outputs, inputs, transfers, addresses."""
        out = []
        for chain in self.chains():
            row = self.con.execute(
                """SELECT (SELECT count(*) FROM blocks WHERE chain = $c),
                          (SELECT min(height) FROM blocks WHERE chain = $c),
                          (SELECT max(height) FROM blocks WHERE chain = $c),
                          (SELECT count(*) FROM txs WHERE chain = $c),
                          (SELECT count(*) FROM outputs WHERE chain = $c),
                          (SELECT count(*) FROM inputs WHERE chain = $c),
                          (SELECT count(*) FROM transfers WHERE chain = $c),
                          (SELECT count(*) FROM addresses WHERE chain = $c)""",
                {"c": chain},
            ).fetchone()
            assert row is not None
            keys = ("blocks", "min_height", "max_height", "txs", "outputs", "inputs", "transfers",
                    "addresses")
            out.append({"chain": chain, **dict(zip(keys, row, strict=True))})
        return out

    def address_id(self, chain: str, address: str) -> int | None:
        """The interned id of an address, if the store has seen it."""
        row = self.con.execute("SELECT id FROM addresses WHERE chain = ? AND address = ?",
                               [chain, address]).fetchone()
        return row[0] if row else None

    # ------------------------------------------------------------------ writes

    def _blocks_to_write(self, chain: str, blocks: list[BlockRecord]) -> tuple[set[int], int]:
        """Heights of the batch's blocks that are not stored yet; raises on a conflicting block."""
        stored = self.stored_blocks(chain, (b.height for b in blocks))
        todo: set[int] = set()
        skipped = 0
        seen: dict[int, str] = {}
        for b in blocks:
            if b.height in seen and seen[b.height] != b.hash:
                raise InputError(f"{chain}: two different blocks at height {b.height} in one batch "
                                 f"({seen[b.height]} and {b.hash})")
            seen[b.height] = b.hash
            have = stored.get(b.height)
            if have is None:
                todo.add(b.height)
            elif have == b.hash:
                skipped += 1
            else:
                raise ChainConflictError(chain, b.height, have, b.hash)
        return todo, skipped

    def _intern(self, chain: str, staged: str, column: str) -> None:
        """Give every address of ``staged.column`` not yet interned the next free id."""
        self.con.execute(
            f"""
            INSERT INTO addresses
            SELECT $chain, base.m + row_number() OVER (ORDER BY s.a), s.a
            FROM (SELECT DISTINCT {column} AS a FROM {staged} WHERE {column} IS NOT NULL) s
            CROSS JOIN (SELECT coalesce(max(id), -1) AS m FROM addresses WHERE chain = $chain) base
            WHERE NOT EXISTS (SELECT 1 FROM addresses x WHERE x.chain = $chain AND x.address = s.a)
            """,
            {"chain": chain},
        )

    def _address_indexes(self) -> dict[str, AddressIndex | None]:
        found: dict[str, AddressIndex | None] | None = self.__dict__.get("_addr_indexes")
        if found is None:
            found = self.__dict__["_addr_indexes"] = {}
        return found

    def forget_address_index(self) -> None:
        """Drop the in-memory address indexes (rebuilt from the table on the next write)."""
        self.__dict__.pop("_addr_indexes", None)

    def _intern_lists(self, chain: str, columns: list[list[str | None]]
                      ) -> tuple[list[pa.Array], tuple[Any, ...] | None]:
        """:meth:`_intern_arrays` of columns given as Python lists."""
        return self._intern_arrays(chain, [pa.array(col, pa.string()) for col in columns])

    def _intern_arrays(self, chain: str, columns: list[pa.Array]
                       ) -> tuple[list[pa.Array], tuple[Any, ...] | None]:
        """Intern the addresses of ``columns`` (inside the caller's transaction); their ids as Arrow arrays.

        New addresses get the next free ids, column by column, each column's new ones in sorted order
        (as the SQL interning does). Returns the ids and what to add to the in-memory index once the
        transaction commits (:meth:`_interned`). Works on whole columns (hash, search, sort), with no
        Python step per address.
        """
        import pyarrow.compute as pc  # loaded when writing: readers never need it

        present = [col.drop_null() for col in columns]
        if not any(len(col) for col in present):
            return [pa.nulls(len(col), pa.int64()) for col in columns], None
        uniq = pc.unique(pa.concat_arrays(present))
        pending: tuple[Any, ...] | None = None
        indexes = self._address_indexes()
        top = int(self.con.execute("SELECT coalesce(max(id), -1) FROM addresses WHERE chain = ?",
                                   [chain]).fetchall()[0][0])
        if chain not in indexes:
            indexes[chain] = load_index(self.con, chain)
        index = indexes[chain]
        if index is not None and index.next_id != top + 1:  # another writer interned addresses
            index = indexes[chain] = load_index(self.con, chain)
        if index is not None:
            h1, h2 = hashes_of(self.con, uniq)
            found = index.lookup(h1, h2)
            if found is not None:
                new_h1 = h1[found < 0]
                if len(np.unique(new_h1)) != len(new_h1):
                    found = None
            if found is None:
                log.warning("%s: address hash collision; interning through SQL from now on", chain)
                index = indexes[chain] = None
            else:
                ids = found
                next_id = top + 1
                new_at: list[np.ndarray[Any, Any]] = []
                for col in present:
                    col_uniq = pc.unique(col)
                    at = np.asarray(pc.index_in(col_uniq, value_set=uniq), dtype=np.int64)
                    fresh = ids[at] < 0
                    if not fresh.any():
                        continue
                    at = at[fresh]
                    at = at[np.asarray(pc.sort_indices(col_uniq.filter(pa.array(fresh))), dtype=np.int64)]
                    ids[at] = np.arange(next_id, next_id + len(at), dtype=np.int64)
                    next_id += len(at)
                    new_at.append(at)
                if new_at:
                    at = np.concatenate(new_at)
                    self._insert_addresses(chain, uniq.take(pa.array(at)), top + 1)
                    pending = (index, h1[at], h2[at], np.arange(top + 1, next_id, dtype=np.int64))
                id_array = pa.array(ids, pa.int64())
                return [id_array.take(pc.index_in(col, value_set=uniq)) for col in columns], pending
        by_address = self._intern_sql(chain, [col.to_pylist() for col in columns])
        return [pa.array([by_address.get(a) for a in col.to_pylist()], pa.int64()) for col in columns], None

    def _insert_addresses(self, chain: str, addresses: pa.Array, first_id: int) -> None:
        tbl = pa.table({"id": pa.array(np.arange(first_id, first_id + len(addresses), dtype=np.int64)),
                        "address": addresses})
        self.con.register("_stage_addr", tbl)
        try:
            self.con.execute("INSERT INTO addresses SELECT $chain, id, address FROM _stage_addr",
                             {"chain": chain})
        finally:
            self.con.unregister("_stage_addr")

    def _intern_sql(self, chain: str, columns: list[list[str | None]]) -> dict[str | None, int]:
        """Interning through the anti-join over the chain's addresses (no index: too many, or a collision)."""
        for k, col in enumerate(columns):
            self.con.register(f"_stage_col{k}", pa.table({"address": pa.array(col, pa.string())}))
        try:
            for k in range(len(columns)):
                self._intern(chain, f"_stage_col{k}", "address")
            uniq = list({a for col in columns for a in col if a is not None})
            self.con.register("_stage_uniq", pa.table({"a": pa.array(uniq, pa.string())}))
            rows = self.con.execute("SELECT x.address, x.id FROM _stage_uniq u JOIN addresses x "
                                    "ON x.chain = ? AND x.address = u.a", [chain]).fetchall()
            self.con.unregister("_stage_uniq")
        finally:
            for k in range(len(columns)):
                self.con.unregister(f"_stage_col{k}")
        return dict(rows)

    def _interned(self, chain: str, pending: tuple[Any, ...] | None) -> None:
        """After a commit: add the batch's new addresses to the chain's in-memory index."""
        if pending is None:
            return
        index, h1, h2, ids = pending
        current = self._address_indexes().get(chain)
        if current is not None and current is index:
            current.add(h1, h2, ids)
            if current.full:
                self._address_indexes()[chain] = None

    def _insert_blocks(self, blocks: list[BlockRecord]) -> None:
        tbl = pa.table({
            "chain": [b.chain for b in blocks], "height": [b.height for b in blocks],
            "hash": [b.hash for b in blocks], "prev_hash": [b.prev_hash for b in blocks],
            "time": [b.time for b in blocks], "tx_count": [b.tx_count for b in blocks],
        })
        self.con.register("_stage_blocks", tbl)
        try:
            self.con.execute("INSERT INTO blocks SELECT chain, height, hash, prev_hash, time, tx_count "
                             "FROM _stage_blocks")
        finally:
            self.con.unregister("_stage_blocks")

    @staticmethod
    def _select(columns: dict[str, list[Any]], keep: list[bool] | None) -> dict[str, list[Any]]:
        if keep is None:
            return columns
        return {k: [v for v, ok in zip(col, keep, strict=True) if ok] for k, col in columns.items()}

    def _insert_extras(self, chain: str, todo: set[int], logs: LogColumns | None,
                       payloads: PayloadColumns) -> None:
        """Insert the batch's logs and payloads of the blocks being written (inside its transaction)."""
        if logs is not None and len(logs):
            keep = [h in todo for h in logs.height]
            cols = self._select({"txid": logs.txid, "height": logs.height, "log_index": logs.log_index,
                                 "address": logs.address, "topics": logs.topics, "data": logs.data}, keep)
            t_logs = pa.table({
                "txid": pa.array(cols["txid"], pa.string()), "height": pa.array(cols["height"], pa.int64()),
                "log_index": pa.array(cols["log_index"], pa.int32()),
                "address": pa.array(cols["address"], pa.string()),
                "topics": pa.array(cols["topics"], pa.list_(pa.string())),
                "data": pa.array(cols["data"], pa.string()),
            })
            self.con.register("_stage_logs", t_logs)
            try:
                self.con.execute("INSERT INTO logs SELECT $chain, txid, height, log_index, address, topics, "
                                 "data FROM _stage_logs", {"chain": chain})
            finally:
                self.con.unregister("_stage_logs")
        if len(payloads):
            keep = [h in todo for h in payloads.height]
            cols = self._select({"txid": payloads.txid, "height": payloads.height, "n": payloads.n,
                                 "kind": payloads.kind, "data": payloads.data}, keep)
            t_pl = pa.table({
                "txid": pa.array(cols["txid"], pa.string()), "height": pa.array(cols["height"], pa.int64()),
                "n": pa.array(cols["n"], pa.int32()), "kind": pa.array(cols["kind"], pa.string()),
                "data": pa.array(cols["data"], pa.string()),
            })
            self.con.register("_stage_payloads", t_pl)
            try:
                self.con.execute("INSERT INTO payloads SELECT $chain, txid, height, n, kind, data "
                                 "FROM _stage_payloads", {"chain": chain})
            finally:
                self.con.unregister("_stage_payloads")

    @_exclusive
    def write_utxo_batch(self, batch: UtxoBatch | UtxoTables) -> WriteResult:
        """Write the batch's blocks that are not stored yet, in one transaction."""
        import pyarrow.compute as pc

        tables = batch if isinstance(batch, UtxoTables) else tables_of(batch)
        chain = tables.chain
        todo, skipped = self._blocks_to_write(chain, tables.blocks)
        if not todo:
            return WriteResult(blocks_skipped=skipped)
        t_txs, outs, ins = tables.txs, tables.outputs, tables.inputs
        if todo != {b.height for b in tables.blocks}:
            wanted = pa.array(sorted(todo), pa.int64())
            t_txs, outs, ins = (t.filter(pc.is_in(t.column("height"), value_set=wanted))
                                for t in (t_txs, outs, ins))
        blocks = [b for b in tables.blocks if b.height in todo]
        lo, hi = min(todo), max(todo)
        con = self.con
        staged: list[str] = []
        con.execute("BEGIN TRANSACTION")
        try:
            (out_ids, in_ids), pending = self._intern_arrays(
                chain, [_chunks_joined(outs.column("address")), _chunks_joined(ins.column("address"))])
            t_outs = outs.append_column("address_id", out_ids)
            t_ins = ins.append_column("address_id", in_ids)
            for name, table in (("_stage_txs", t_txs), ("_stage_outs", t_outs), ("_stage_ins", t_ins)):
                con.register(name, table)
                staged.append(name)
            self._insert_blocks(blocks)
            con.execute(
                f"""INSERT INTO txs SELECT $chain, txid, height, time, tx_index, fee::{schema.AMOUNT},
                       coinbase, size, vsize, version, locktime, segwit, NULL FROM _stage_txs""",
                {"chain": chain})
            con.execute(
                f"""INSERT INTO outputs SELECT $chain, txid, n, height, address, address_id,
                       value::{schema.AMOUNT}, script_type FROM _stage_outs""",
                {"chain": chain})
            # Inputs spending outputs of this batch or of the last RESOLVE_WINDOW blocks are resolved as
            # they are written (a scan of only those heights); older ones at the end of the run.
            unresolved = ins.column("value").null_count > 0
            if not unresolved:  # every input carries its spent output (an enriched export)
                con.execute(
                    f"""INSERT INTO inputs SELECT $chain, txid, n, height, prev_txid, prev_n, sequence,
                           address, address_id, value::{schema.AMOUNT} FROM _stage_ins""", {"chain": chain})
            else:
                con.execute(
                    f"""INSERT INTO inputs SELECT $chain, i.txid, i.n, i.height, i.prev_txid, i.prev_n,
                           i.sequence, CASE WHEN o.value IS NULL THEN i.address ELSE o.address END,
                           CASE WHEN o.value IS NULL THEN i.address_id ELSE o.address_id END,
                           coalesce(i.value::{schema.AMOUNT}, o.value)
                        FROM _stage_ins i LEFT JOIN (
                            SELECT txid, n, address, address_id, value FROM outputs
                            WHERE chain = $chain AND height BETWEEN $wlo AND $hi) o
                          ON i.value IS NULL AND o.txid = i.prev_txid AND o.n = i.prev_n""",
                    {"chain": chain, "wlo": lo - RESOLVE_WINDOW, "hi": hi})
            fee_missing = pc.and_(pc.is_null(t_txs.column("fee")), pc.invert(t_txs.column("coinbase")))
            if unresolved or pc.any(fee_missing).as_py():
                self._fill_fees(chain, lo, hi)
            self._insert_extras(chain, todo, None, tables.payloads)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            for name in staged:
                con.unregister(name)
        self._interned(chain, pending)
        return WriteResult(blocks_written=len(blocks), blocks_skipped=skipped, txs_written=t_txs.num_rows)

    def _resolve_inputs(self, chain: str, lo: int, hi: int) -> None:
        """Fill input address/value from the spent outputs, then fees from inputs and outputs."""
        self.con.execute(
            """UPDATE inputs SET address = o.address, address_id = o.address_id, value = o.value
               FROM outputs o
               WHERE inputs.chain = $chain AND inputs.height BETWEEN $lo AND $hi AND inputs.value IS NULL
                 AND o.chain = $chain AND o.txid = inputs.prev_txid AND o.n = inputs.prev_n""",
            {"chain": chain, "lo": lo, "hi": hi})
        self._fill_fees(chain, lo, hi)

    def _fill_fees(self, chain: str, lo: int, hi: int) -> None:
        """Fees of the transactions in ``lo..hi`` whose inputs are all known and whose fee is not."""
        self.con.execute(
            """UPDATE txs SET fee = f.fee FROM (
                   SELECT i.txid, i.height, sum(i.value) - any_value(o.total) AS fee
                   FROM inputs i
                   JOIN (SELECT txid, height, sum(value) AS total FROM outputs
                         WHERE chain = $chain AND height BETWEEN $lo AND $hi GROUP BY txid, height) o
                     ON o.txid = i.txid AND o.height = i.height
                   WHERE i.chain = $chain AND i.height BETWEEN $lo AND $hi
                   GROUP BY i.txid, i.height
                   HAVING count(i.value) = count(*)
               ) f
               WHERE txs.chain = $chain AND txs.txid = f.txid AND txs.height = f.height AND txs.fee IS NULL
                 AND NOT txs.coinbase""",
            {"chain": chain, "lo": lo, "hi": hi})

    def resolve_inputs(self, chain: str) -> int:
        """Resolve every input still missing its spent output (after out-of-order ingest, or spending
        outputs older than the write-time window); returns how many were resolved.

        Runs in height ranges of at most :data:`RESOLVE_CHUNK` unresolved inputs, one transaction each
        (resolution only fills what is missing, so a run killed half-way is completed by the next).
        """
        per_height = self.con.execute("SELECT height, count(*) FROM inputs WHERE chain = ? AND value IS NULL "
                                      "GROUP BY height ORDER BY height", [chain]).fetchall()
        if not per_height:
            return 0
        ranges: list[tuple[int, int]] = []
        start, count = per_height[0][0], 0
        prev = start
        for height, n in per_height:
            if count and count + n > RESOLVE_CHUNK:
                ranges.append((start, prev))
                start, count = height, 0
            count += n
            prev = height
        ranges.append((start, prev))
        for lo, hi in ranges:
            with self.writer_lock():
                self.con.execute("BEGIN TRANSACTION")
                try:
                    self._resolve_inputs(chain, lo, hi)
                    self.con.execute("COMMIT")
                except BaseException:
                    self.con.execute("ROLLBACK")
                    raise
        left = self.con.execute("SELECT count(*) FROM inputs WHERE chain = ? AND value IS NULL",
                                [chain]).fetchone()
        return int(sum(n for _h, n in per_height)) - int(left[0] if left else 0)

    def has_unresolved_inputs(self, chain: str) -> bool:
        """Whether some input of ``chain`` still misses its spent output's value."""
        rows = self.con.execute("SELECT 1 FROM inputs WHERE chain = ? AND value IS NULL LIMIT 1",
                                [chain]).fetchall()
        return bool(rows)

    def prepare_ingest(self) -> None:
        """Settings for a long ingest: checkpoints every :data:`INGEST_CHECKPOINT` of WAL (instead of the
        open-time setting) and DuckDB memory within :data:`INGEST_MEMORY`, so memory stays bounded."""
        if self.read_only:
            return
        self.con.execute(f"SET checkpoint_threshold = '{INGEST_CHECKPOINT}'")
        self.con.execute(f"SET memory_limit = '{INGEST_MEMORY}'")

    @_exclusive
    def write_account_batch(self, batch: AccountBatch) -> WriteResult:
        """Write the batch's blocks that are not stored yet, in one transaction."""
        chain = batch.chain
        todo, skipped = self._blocks_to_write(chain, batch.blocks)
        if not todo:
            return WriteResult(blocks_skipped=skipped)
        all_heights = {b.height for b in batch.blocks}
        tx_keep = None if todo == all_heights else [h in todo for h in batch.tx_height]
        tr_keep = None if todo == all_heights else [h in todo for h in batch.tr_height]
        txs = self._select({
            "txid": batch.tx_txid, "height": batch.tx_height, "time": batch.tx_time,
            "tx_index": batch.tx_index, "fee": batch.tx_fee, "status": batch.tx_status}, tx_keep)
        trs = self._select({
            "txid": batch.tr_txid, "height": batch.tr_height, "time": batch.tr_time,
            "transfer_index": batch.tr_index, "kind": batch.tr_kind, "asset": batch.tr_asset,
            "from_address": batch.tr_from, "to_address": batch.tr_to, "value": batch.tr_value}, tr_keep)
        values: list[int | None] = []
        texts: list[str | None] = []
        for v in trs["value"]:
            if 0 <= v <= DECIMAL38_MAX:
                values.append(v)
                texts.append(None)
            else:  # beyond DECIMAL(38,0) (spam tokens): kept exactly as text, excluded from sums
                values.append(None)
                texts.append(str(v))
        t_txs = pa.table({
            "txid": pa.array(txs["txid"], pa.string()), "height": pa.array(txs["height"], pa.int64()),
            "time": pa.array(txs["time"], pa.int64()), "tx_index": pa.array(txs["tx_index"], pa.int32()),
            "fee": _amount_array(txs["fee"]), "status": pa.array(txs["status"], pa.bool_()),
        })
        blocks = [b for b in batch.blocks if b.height in todo]
        con = self.con
        staged: list[str] = []
        con.execute("BEGIN TRANSACTION")
        try:
            (from_ids, to_ids), pending = self._intern_lists(chain, [trs["from_address"], trs["to_address"]])
            t_trs = pa.table({
                "txid": pa.array(trs["txid"], pa.string()), "height": pa.array(trs["height"], pa.int64()),
                "time": pa.array(trs["time"], pa.int64()),
                "transfer_index": pa.array(trs["transfer_index"], pa.int32()),
                "kind": pa.array(trs["kind"], pa.string()), "asset": pa.array(trs["asset"], pa.string()),
                "from_address": pa.array(trs["from_address"], pa.string()),
                "to_address": pa.array(trs["to_address"], pa.string()),
                "from_id": from_ids, "to_id": to_ids,
                "value": _amount_array(values), "value_text": pa.array(texts, pa.string()),
            })
            for name, table in (("_stage_atxs", t_txs), ("_stage_trs", t_trs)):
                con.register(name, table)
                staged.append(name)
            self._insert_blocks(blocks)
            con.execute(
                f"""INSERT INTO txs SELECT $chain, txid, height, time, tx_index, fee::{schema.AMOUNT}, false,
                       NULL, NULL, NULL, NULL, NULL, status FROM _stage_atxs""", {"chain": chain})
            con.execute(
                f"""INSERT INTO transfers SELECT $chain, txid, height, time, transfer_index, kind, asset,
                       from_address, to_address, from_id, to_id, value::{schema.AMOUNT}, value_text
                    FROM _stage_trs""",
                {"chain": chain})
            self._insert_extras(chain, todo, batch.logs, batch.payloads)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            for name in staged:
                con.unregister(name)
        self._interned(chain, pending)
        return WriteResult(blocks_written=len(blocks), blocks_skipped=skipped, txs_written=t_txs.num_rows)

    def write_batch(self, batch: UtxoBatch | UtxoTables | AccountBatch) -> WriteResult:
        """Write a batch of either kind."""
        if isinstance(batch, UtxoBatch | UtxoTables):
            return self.write_utxo_batch(batch)
        return self.write_account_batch(batch)

    @_exclusive
    def rollback_to(self, chain: str, height: int) -> int:
        """Delete every block of ``chain`` above ``height`` with all its rows (reorg); returns blocks removed.

        Inputs of surviving blocks that spent outputs of removed blocks lose their resolution.
        """
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            row = con.execute("SELECT count(*) FROM blocks WHERE chain = ? AND height > ?",
                              [chain, height]).fetchone()
            removed = int(row[0]) if row else 0
            for table in schema.BLOCK_TABLES:
                con.execute(f"DELETE FROM {table} WHERE chain = ? AND height > ?", [chain, height])
            con.execute("""UPDATE inputs SET address = NULL, address_id = NULL, value = NULL
                           WHERE chain = ? AND value IS NOT NULL AND NOT EXISTS (
                             SELECT 1 FROM outputs o WHERE o.chain = inputs.chain
                               AND o.txid = inputs.prev_txid AND o.n = inputs.prev_n)""", [chain])
            con.execute("INSERT OR REPLACE INTO meta VALUES (?, 'true')", [f"stale:{chain}"])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        log.info("rolled back %s to height %d (%d blocks removed)", chain, height, removed)
        return removed

    # ------------------------------------------------------------------ parquet

    def export_parquet(self, directory: Path) -> dict[str, int]:
        """Write every table to ``directory/<table>.parquet``; returns rows per table."""
        directory.mkdir(parents=True, exist_ok=True)
        counts = {}
        for table in (*schema.EXPORT_TABLES, *schema.OPTIONAL_EXPORT_TABLES, *schema.EXTRA_TABLES):
            target = directory / f"{table}.parquet"
            self.con.execute(f"COPY (SELECT * FROM {table}) TO '{_sql_path(target)}' (FORMAT parquet)")
            row = self.con.execute(f"SELECT count(*) FROM {table}").fetchone()
            counts[table] = int(row[0]) if row else 0
        return counts

    @_exclusive
    def import_parquet(self, directory: Path) -> dict[str, int]:
        """Load a Parquet export into this store, in one transaction.

        Blocks already stored (same chain, height and hash) are skipped with their rows; address ids are
        re-interned from the address strings, so exports of different stores merge correctly.
        """
        missing = [t for t in schema.EXPORT_TABLES if not (directory / f"{t}.parquet").exists()]
        if missing:
            raise InputError(f"{directory}: not a FundTrail Parquet export (missing {', '.join(missing)})")
        con = self.con
        counts: dict[str, int] = {}
        con.execute("BEGIN TRANSACTION")
        try:
            for t in schema.EXPORT_TABLES:
                con.execute(f"CREATE OR REPLACE TEMP TABLE _imp_{t} AS SELECT * FROM "
                            f"read_parquet('{_sql_path(directory / f'{t}.parquet')}')")
                expected = [c.split()[0] for c in schema.TABLES[t].split(", ")]
                got = [r[0] for r in con.execute(f"DESCRIBE _imp_{t}").fetchall()]
                if got != expected:
                    raise InputError(f"{directory / f'{t}.parquet'}: columns {got} do not match {expected}")
            conflict = con.execute(
                """SELECT i.chain, i.height, b.hash, i.hash FROM _imp_blocks i JOIN blocks b
                   ON b.chain = i.chain AND b.height = i.height AND b.hash <> i.hash LIMIT 1""").fetchone()
            if conflict:
                raise ChainConflictError(conflict[0], conflict[1], conflict[2], conflict[3])
            con.execute("""CREATE OR REPLACE TEMP TABLE _imp_new AS
                           SELECT i.chain, i.height FROM _imp_blocks i
                           WHERE NOT EXISTS (SELECT 1 FROM blocks b WHERE b.chain = i.chain
                                             AND b.height = i.height)""")
            for chain in [r[0] for r in con.execute("SELECT DISTINCT chain FROM _imp_addresses").fetchall()]:
                con.execute("CREATE OR REPLACE TEMP TABLE _imp_addr_c AS SELECT address FROM _imp_addresses "
                            "WHERE chain = ?", [chain])
                self._intern(chain, "_imp_addr_c", "address")
                self.forget_address_index()
            counts["blocks"] = self._import_rows(
                "blocks", "i.chain, i.height, i.hash, i.prev_hash, i.time, i.tx_count")
            counts["txs"] = self._import_rows(
                "txs", "i.chain, i.txid, i.height, i.time, i.tx_index, i.fee, i.coinbase, i.size, i.vsize, "
                       "i.version, i.locktime, i.segwit, i.status")
            counts["outputs"] = self._import_rows(
                "outputs", "i.chain, i.txid, i.n, i.height, i.address, a.id, i.value, i.script_type",
                "LEFT JOIN addresses a ON a.chain = i.chain AND a.address = i.address")
            counts["inputs"] = self._import_rows(
                "inputs", "i.chain, i.txid, i.n, i.height, i.prev_txid, i.prev_n, i.sequence, "
                          "i.address, a.id, i.value",
                "LEFT JOIN addresses a ON a.chain = i.chain AND a.address = i.address")
            counts["transfers"] = self._import_rows(
                "transfers", "i.chain, i.txid, i.height, i.time, i.transfer_index, i.kind, i.asset, "
                             "i.from_address, i.to_address, f.id, r.id, i.value, i.value_text",
                "LEFT JOIN addresses f ON f.chain = i.chain AND f.address = i.from_address "
                "LEFT JOIN addresses r ON r.chain = i.chain AND r.address = i.to_address")
            for t in schema.OPTIONAL_EXPORT_TABLES:
                if (directory / f"{t}.parquet").exists():
                    con.execute(f"CREATE OR REPLACE TEMP TABLE _imp_{t} AS SELECT * FROM "
                                f"read_parquet('{_sql_path(directory / f'{t}.parquet')}')")
                    columns = ", ".join(f"i.{c.split()[0]}" for c in schema.TABLES[t].split(", "))
                    counts[t] = self._import_rows(t, columns)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return counts

    def _import_rows(self, table: str, select: str, joins: str = "") -> int:
        before = self.con.execute(f"SELECT count(*) FROM {table}").fetchone()
        self.con.execute(
            f"""INSERT INTO {table} SELECT {select} FROM _imp_{table} i {joins}
                WHERE EXISTS (SELECT 1 FROM _imp_new n WHERE n.chain = i.chain AND n.height = i.height)""")
        after = self.con.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(after[0] if after else 0) - int(before[0] if before else 0)


def _chunks_joined(column: pa.ChunkedArray) -> pa.Array:
    """A table column as one array."""
    if column.num_chunks == 1:
        return column.chunk(0)
    return pa.concat_arrays(column.chunks) if column.num_chunks else pa.array([], column.type)


def file_generation(path: str | Path) -> tuple[tuple[int, int, int] | None, ...]:
    """A value that changes whenever a write to the store file at ``path`` commits, from any process.

    DuckDB appends every committed write transaction to the file's write-ahead log (``<file>.wal``)
    before the transaction's rows become visible, and a checkpoint moves the log into the file and
    removes it: the inode, size and modification time of both files change with every commit, whichever
    process or layer wrote (ingest, rollback, tag and sanctions imports, clustering ...). Reads, temporary
    tables and rolled-back transactions leave them alone. Two ``stat`` calls, no query: cheap enough to
    ask often. A value read before a snapshot is opened is never newer than that snapshot.
    """
    out: list[tuple[int, int, int] | None] = []
    for name in (str(path), f"{path}.wal"):
        try:
            st = os.stat(name)
        except FileNotFoundError:
            out.append(None)
        else:
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")
