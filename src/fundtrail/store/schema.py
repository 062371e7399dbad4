"""DDL of the chain store. Every table carries ``chain``; amounts are DECIMAL(38,0) base units."""

from __future__ import annotations

from collections.abc import Collection

SCHEMA_VERSION = 1

AMOUNT = "DECIMAL(38,0)"

TABLES: dict[str, str] = {
    "meta": "key VARCHAR PRIMARY KEY, value VARCHAR",
    # addresses interned to dense integer ids per chain, so that graph work runs on arrays
    "addresses": "chain VARCHAR NOT NULL, id BIGINT NOT NULL, address VARCHAR NOT NULL",
    "blocks": "chain VARCHAR NOT NULL, height BIGINT NOT NULL, hash VARCHAR NOT NULL, prev_hash VARCHAR, "
              "time BIGINT NOT NULL, tx_count INTEGER NOT NULL",
    "txs": f"chain VARCHAR NOT NULL, txid VARCHAR NOT NULL, height BIGINT NOT NULL, time BIGINT NOT NULL, "
           f"tx_index INTEGER NOT NULL, fee {AMOUNT}, coinbase BOOLEAN NOT NULL DEFAULT false, size INTEGER, "
           f"vsize INTEGER, version BIGINT, locktime BIGINT, segwit BOOLEAN, status BOOLEAN",
    "outputs": f"chain VARCHAR NOT NULL, txid VARCHAR NOT NULL, n INTEGER NOT NULL, height BIGINT NOT NULL, "
               f"address VARCHAR, address_id BIGINT, value {AMOUNT} NOT NULL, script_type VARCHAR NOT NULL",
    "inputs": f"chain VARCHAR NOT NULL, txid VARCHAR NOT NULL, n INTEGER NOT NULL, height BIGINT NOT NULL, "
              f"prev_txid VARCHAR NOT NULL, prev_n INTEGER NOT NULL, sequence BIGINT, address VARCHAR, "
              f"address_id BIGINT, value {AMOUNT}",
    "transfers": f"chain VARCHAR NOT NULL, txid VARCHAR, height BIGINT NOT NULL, time BIGINT NOT NULL, "
                 f"transfer_index INTEGER NOT NULL, kind VARCHAR NOT NULL, asset VARCHAR NOT NULL, "
                 f"from_address VARCHAR, to_address VARCHAR, from_id BIGINT, to_id BIGINT, "
                 f"value {AMOUNT}, value_text VARCHAR",
    # event logs that conversion decoding reads (swap, bridge and pool events), as the node gives them
    "logs": "chain VARCHAR NOT NULL, txid VARCHAR NOT NULL, height BIGINT NOT NULL, "
            "log_index INTEGER NOT NULL, address VARCHAR NOT NULL, topics VARCHAR[] NOT NULL, "
            "data VARCHAR NOT NULL",
    # what a transaction carries besides value: OP_RETURN bytes, call-data memos, gas prices (PayloadKind)
    "payloads": "chain VARCHAR NOT NULL, txid VARCHAR NOT NULL, height BIGINT NOT NULL, n INTEGER NOT NULL, "
                "kind VARCHAR NOT NULL, data VARCHAR NOT NULL",
}

# Tables whose rows belong to a block (deleted on rollback), in write order.
BLOCK_TABLES = ("blocks", "txs", "outputs", "inputs", "transfers", "logs", "payloads")

# Tables exported to and imported from Parquet; an export made before ``OPTIONAL_EXPORT_TABLES``
# existed lacks their files and still imports.
OPTIONAL_EXPORT_TABLES = ("logs", "payloads")
EXPORT_TABLES = ("addresses", *(t for t in BLOCK_TABLES if t not in OPTIONAL_EXPORT_TABLES))

EXTRA_TABLES: dict[str, str] = {}
"""Tables that other layers (analysis, intel) keep in the chain store, registered at import time."""


def register_table(name: str, columns: str) -> None:
    """Register a table that another layer keeps in the chain store (created on open)."""
    EXTRA_TABLES[name] = columns


def ddl(existing: Collection[str] = ()) -> list[str]:
    """CREATE statements for every table, core and registered (but those named in ``existing``)."""
    return [f"CREATE TABLE IF NOT EXISTS {name} ({cols})"
            for name, cols in {**TABLES, **EXTRA_TABLES}.items() if name not in existing]
