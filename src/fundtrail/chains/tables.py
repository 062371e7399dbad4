"""Batches of a UTXO chain as Arrow tables, the form the store writes.

A reader that builds its columns without Python objects per row (the bitcoin-etl export read by Arrow's
JSON parser) yields :class:`UtxoTables`; :func:`tables_of` turns a :class:`UtxoBatch` of Python lists into
the same form. Arrow tables cross from a reading process to the writing one as buffers (pickled without
converting rows), and the store inserts them as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from fundtrail.domain.records import BlockRecord, PayloadColumns, UtxoBatch

TX_SCHEMA = pa.schema([("txid", pa.string()), ("height", pa.int64()), ("time", pa.int64()),
                       ("tx_index", pa.int32()), ("fee", pa.int64()), ("coinbase", pa.bool_()),
                       ("size", pa.int32()), ("vsize", pa.int32()), ("version", pa.int64()),
                       ("locktime", pa.int64()), ("segwit", pa.bool_())])
OUT_SCHEMA = pa.schema([("txid", pa.string()), ("n", pa.int32()), ("height", pa.int64()),
                        ("address", pa.string()), ("value", pa.int64()), ("script_type", pa.string())])
IN_SCHEMA = pa.schema([("txid", pa.string()), ("n", pa.int32()), ("height", pa.int64()),
                       ("prev_txid", pa.string()), ("prev_n", pa.int32()), ("sequence", pa.int64()),
                       ("address", pa.string()), ("value", pa.int64())])
"""Columns of :class:`UtxoTables`. Amounts beyond 64 bits (only from list batches) are strings instead."""


@dataclass(slots=True)
class UtxoTables:
    """Complete blocks of a UTXO chain: ``txs``, ``outputs`` and ``inputs`` as Arrow tables (see the
    schemas above; outputs and inputs carry their transaction's height), blocks and payloads as in
    :class:`UtxoBatch`."""

    chain: str
    blocks: list[BlockRecord]
    txs: pa.Table
    outputs: pa.Table
    inputs: pa.Table
    payloads: PayloadColumns = field(default_factory=lambda: PayloadColumns())

    @property
    def tx_count(self) -> int:
        """Number of transactions in the batch."""
        return int(self.txs.num_rows)

    def __len__(self) -> int:
        return int(self.txs.num_rows)


def amount_array(values: Sequence[int | None]) -> pa.Array:
    """Exact integers as an Arrow column DuckDB casts to DECIMAL(38,0) without loss."""
    try:
        return pa.array(values, type=pa.int64())
    except (OverflowError, pa.ArrowInvalid):  # beyond 64 bits: as text, cast exactly by DuckDB
        pass
    return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def tables_of(batch: UtxoBatch) -> UtxoTables:
    """The batch as Arrow tables (an output's or input's height is its transaction's, by txid)."""
    height_of_tx = dict(zip(batch.tx_txid, batch.tx_height, strict=True))
    txs = pa.table({
        "txid": pa.array(batch.tx_txid, pa.string()), "height": pa.array(batch.tx_height, pa.int64()),
        "time": pa.array(batch.tx_time, pa.int64()), "tx_index": pa.array(batch.tx_index, pa.int32()),
        "fee": amount_array(batch.tx_fee), "coinbase": pa.array(batch.tx_coinbase, pa.bool_()),
        "size": pa.array(batch.tx_size, pa.int32()), "vsize": pa.array(batch.tx_vsize, pa.int32()),
        "version": pa.array(batch.tx_version, pa.int64()),
        "locktime": pa.array(batch.tx_locktime, pa.int64()),
        "segwit": pa.array(batch.tx_segwit, pa.bool_()),
    })
    outputs = pa.table({
        "txid": pa.array(batch.out_txid, pa.string()), "n": pa.array(batch.out_n, pa.int32()),
        "height": pa.array([height_of_tx[t] for t in batch.out_txid], pa.int64()),
        "address": pa.array(batch.out_address, pa.string()), "value": amount_array(batch.out_value),
        "script_type": pa.array(batch.out_script_type, pa.string()),
    })
    inputs = pa.table({
        "txid": pa.array(batch.in_txid, pa.string()), "n": pa.array(batch.in_n, pa.int32()),
        "height": pa.array([height_of_tx[t] for t in batch.in_txid], pa.int64()),
        "prev_txid": pa.array(batch.in_prev_txid, pa.string()),
        "prev_n": pa.array(batch.in_prev_n, pa.int32()),
        "sequence": pa.array(batch.in_sequence, pa.int64()),
        "address": pa.array(batch.in_address, pa.string()), "value": amount_array(batch.in_value),
    })
    return UtxoTables(batch.chain, list(batch.blocks), txs, outputs, inputs, batch.payloads)


def empty_table(schema: pa.Schema) -> pa.Table:
    """A table of ``schema`` without rows."""
    arrays: list[Any] = [pa.array([], f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)
