"""The chain store: one DuckDB file holding the normalised model of many chains.

Invariants:

* A block is written whole or not at all: each batch is one DuckDB transaction, so a process killed
  mid-ingest leaves the store as it was before that batch.
* Re-writing a block that is already stored with the same hash changes nothing (idempotent ingest).
  A block whose height is stored with another hash is a conflict: the caller rolls the stored chain
  back (:meth:`ChainStore.rollback_to`) before writing it (reorg handling lives in the ingest service).
* Addresses are interned to dense integer ids per chain, never renumbered.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import duckdb
import pyarrow as pa

from fundtrail.domain.records import AccountBatch, BlockRecord, LogColumns, PayloadColumns, UtxoBatch
from fundtrail.errors import ChainConflictError, InputError, StoreBusyError
from fundtrail.store import schema, service

log = logging.getLogger(__name__)

INT64_MAX = 2**63 - 1
DECIMAL38_MAX = 10**38 - 1


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
    # Ingest writes many batches: checkpoint once at close instead of every few batches.
    con.execute("SET checkpoint_threshold = '4GB'")
    for stmt in schema.ddl():
        con.execute(stmt)
    con.execute("INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING",
                [str(schema.SCHEMA_VERSION)])


def _amount_array(values: list[int | None]) -> pa.Array:
    """Exact integers as an Arrow column DuckDB casts to DECIMAL(38,0) without loss."""
    if all(v is None or -INT64_MAX <= v <= INT64_MAX for v in values):
        return pa.array(values, type=pa.int64())
    return pa.array([None if v is None else str(v) for v in values], type=pa.string())


class ChainStore:
    """The chain store on a DuckDB file (or ``:memory:``)."""

    _shared = False

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        """Open ``path`` for this process alone (``:memory:``, scratch files); homes use :meth:`open_home`."""
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.read_only = read_only
        try:
            self.con = duckdb.connect(self.path, read_only=read_only)
        except duckdb.IOException as error:
            held = re.search(r"Conflicting lock is held in (.+?) \(PID (\d+)\)", str(error))
            if held is None:
                raise
            raise StoreBusyError(self.path, f"PID {held.group(2)}, {Path(held.group(1)).name}") from None
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

    def write_utxo_batch(self, batch: UtxoBatch) -> WriteResult:
        """Write the batch's blocks that are not stored yet, in one transaction."""
        chain = batch.chain
        todo, skipped = self._blocks_to_write(chain, batch.blocks)
        if not todo:
            return WriteResult(blocks_skipped=skipped)
        all_heights = {b.height for b in batch.blocks}
        height_of_tx = dict(zip(batch.tx_txid, batch.tx_height, strict=True))
        tx_keep = None if todo == all_heights else [h in todo for h in batch.tx_height]
        out_keep = None if tx_keep is None else [height_of_tx[t] in todo for t in batch.out_txid]
        in_keep = None if tx_keep is None else [height_of_tx[t] in todo for t in batch.in_txid]

        txs = self._select({
            "txid": batch.tx_txid, "height": batch.tx_height, "time": batch.tx_time,
            "tx_index": batch.tx_index, "fee": batch.tx_fee, "coinbase": batch.tx_coinbase,
            "size": batch.tx_size, "vsize": batch.tx_vsize, "version": batch.tx_version,
            "locktime": batch.tx_locktime, "segwit": batch.tx_segwit}, tx_keep)
        outs = self._select({
            "txid": batch.out_txid, "n": batch.out_n, "address": batch.out_address,
            "value": batch.out_value, "script_type": batch.out_script_type}, out_keep)
        ins = self._select({
            "txid": batch.in_txid, "n": batch.in_n, "prev_txid": batch.in_prev_txid,
            "prev_n": batch.in_prev_n, "sequence": batch.in_sequence, "address": batch.in_address,
            "value": batch.in_value}, in_keep)
        out_height = [height_of_tx[t] for t in outs["txid"]]
        in_height = [height_of_tx[t] for t in ins["txid"]]

        t_txs = pa.table({
            "txid": pa.array(txs["txid"], pa.string()), "height": pa.array(txs["height"], pa.int64()),
            "time": pa.array(txs["time"], pa.int64()), "tx_index": pa.array(txs["tx_index"], pa.int32()),
            "fee": _amount_array(txs["fee"]), "coinbase": pa.array(txs["coinbase"], pa.bool_()),
            "size": pa.array(txs["size"], pa.int32()), "vsize": pa.array(txs["vsize"], pa.int32()),
            "version": pa.array(txs["version"], pa.int64()),
            "locktime": pa.array(txs["locktime"], pa.int64()),
            "segwit": pa.array(txs["segwit"], pa.bool_()),
        })
        t_outs = pa.table({
            "txid": pa.array(outs["txid"], pa.string()), "n": pa.array(outs["n"], pa.int32()),
            "height": pa.array(out_height, pa.int64()), "address": pa.array(outs["address"], pa.string()),
            "value": _amount_array(outs["value"]), "script_type": pa.array(outs["script_type"], pa.string()),
        })
        t_ins = pa.table({
            "txid": pa.array(ins["txid"], pa.string()), "n": pa.array(ins["n"], pa.int32()),
            "height": pa.array(in_height, pa.int64()), "prev_txid": pa.array(ins["prev_txid"], pa.string()),
            "prev_n": pa.array(ins["prev_n"], pa.int32()), "sequence": pa.array(ins["sequence"], pa.int64()),
            "address": pa.array(ins["address"], pa.string()), "value": _amount_array(ins["value"]),
        })
        blocks = [b for b in batch.blocks if b.height in todo]
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            con.register("_stage_txs", t_txs)
            con.register("_stage_outs", t_outs)
            con.register("_stage_ins", t_ins)
            self._insert_blocks(blocks)
            self._intern(chain, "_stage_outs", "address")
            self._intern(chain, "_stage_ins", "address")
            con.execute(
                f"""INSERT INTO txs SELECT $chain, txid, height, time, tx_index, fee::{schema.AMOUNT},
                       coinbase, size, vsize, version, locktime, segwit, NULL FROM _stage_txs""",
                {"chain": chain})
            con.execute(
                f"""INSERT INTO outputs SELECT $chain, o.txid, o.n, o.height, o.address, a.id,
                       o.value::{schema.AMOUNT}, o.script_type
                    FROM _stage_outs o LEFT JOIN addresses a ON a.chain = $chain AND a.address = o.address""",
                {"chain": chain})
            con.execute(
                f"""INSERT INTO inputs SELECT $chain, i.txid, i.n, i.height, i.prev_txid, i.prev_n,
                       i.sequence, i.address, a.id, i.value::{schema.AMOUNT}
                    FROM _stage_ins i LEFT JOIN addresses a ON a.chain = $chain AND a.address = i.address""",
                {"chain": chain})
            self._resolve_inputs(chain, min(todo), max(todo))
            self._insert_extras(chain, todo, None, batch.payloads)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            for name in ("_stage_txs", "_stage_outs", "_stage_ins"):
                con.unregister(name)
        return WriteResult(blocks_written=len(blocks), blocks_skipped=skipped, txs_written=t_txs.num_rows)

    def _resolve_inputs(self, chain: str, lo: int, hi: int) -> None:
        """Fill input address/value from the spent outputs, then fees from inputs and outputs."""
        self.con.execute(
            """UPDATE inputs SET address = o.address, address_id = o.address_id, value = o.value
               FROM outputs o
               WHERE inputs.chain = $chain AND inputs.height BETWEEN $lo AND $hi AND inputs.value IS NULL
                 AND o.chain = $chain AND o.txid = inputs.prev_txid AND o.n = inputs.prev_n""",
            {"chain": chain, "lo": lo, "hi": hi})
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
        """Resolve every input still missing its spent output (after out-of-order ingest)."""
        row = self.con.execute("SELECT min(height), max(height), count(*) FROM inputs "
                               "WHERE chain = ? AND value IS NULL", [chain]).fetchone()
        if not row or not row[2]:
            return 0
        self.con.execute("BEGIN TRANSACTION")
        try:
            self._resolve_inputs(chain, row[0], row[1])
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        left = self.con.execute("SELECT count(*) FROM inputs WHERE chain = ? AND value IS NULL",
                                [chain]).fetchone()
        return int(row[2]) - int(left[0] if left else 0)

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
        t_trs = pa.table({
            "txid": pa.array(trs["txid"], pa.string()), "height": pa.array(trs["height"], pa.int64()),
            "time": pa.array(trs["time"], pa.int64()),
            "transfer_index": pa.array(trs["transfer_index"], pa.int32()),
            "kind": pa.array(trs["kind"], pa.string()), "asset": pa.array(trs["asset"], pa.string()),
            "from_address": pa.array(trs["from_address"], pa.string()),
            "to_address": pa.array(trs["to_address"], pa.string()),
            "value": _amount_array(values), "value_text": pa.array(texts, pa.string()),
        })
        blocks = [b for b in batch.blocks if b.height in todo]
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            con.register("_stage_atxs", t_txs)
            con.register("_stage_trs", t_trs)
            self._insert_blocks(blocks)
            self._intern(chain, "_stage_trs", "from_address")
            self._intern(chain, "_stage_trs", "to_address")
            con.execute(
                f"""INSERT INTO txs SELECT $chain, txid, height, time, tx_index, fee::{schema.AMOUNT}, false,
                       NULL, NULL, NULL, NULL, NULL, status FROM _stage_atxs""", {"chain": chain})
            con.execute(
                f"""INSERT INTO transfers SELECT $chain, t.txid, t.height, t.time, t.transfer_index, t.kind,
                       t.asset, t.from_address, t.to_address, f.id, r.id, t.value::{schema.AMOUNT},
                       t.value_text
                    FROM _stage_trs t
                    LEFT JOIN addresses f ON f.chain = $chain AND f.address = t.from_address
                    LEFT JOIN addresses r ON r.chain = $chain AND r.address = t.to_address""",
                {"chain": chain})
            self._insert_extras(chain, todo, batch.logs, batch.payloads)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.unregister("_stage_atxs")
            con.unregister("_stage_trs")
        return WriteResult(blocks_written=len(blocks), blocks_skipped=skipped, txs_written=t_txs.num_rows)

    def write_batch(self, batch: UtxoBatch | AccountBatch) -> WriteResult:
        """Write a batch of either kind."""
        if isinstance(batch, UtxoBatch):
            return self.write_utxo_batch(batch)
        return self.write_account_batch(batch)

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


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")
