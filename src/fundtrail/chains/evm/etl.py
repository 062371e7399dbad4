"""ethereum-etl exports (CSV, or JSON lines) read into :class:`AccountBatch` es.

A folder holds one file per table, named as ethereum-etl names them, each ``.csv`` or ``.json``
(JSON lines):

* ``blocks``: ``number, hash, parent_hash, timestamp`` (and ``withdrawals`` after Shapella); required;
* ``transactions``: ``hash, block_number, transaction_index, from_address, to_address, value``; required;
  the ``receipt_*`` columns of streamed exports give status and gas when there is no receipts file;
* ``receipts``: ``transaction_hash, block_number, status, gas_used, effective_gas_price``, optional;
* ``logs`` (``export_receipts_and_logs``): when present, ERC-20 transfers are decoded from it, which tells
  ERC-721 transfers apart, and the swap, bridge and pool events conversions need are kept in the ``logs``
  table (with the gas price of their transactions); call data that carries a cross-chain memo is kept too;
  otherwise ``token_transfers`` is read as it is (ethereum-etl puts ERC-721 transfers there too, with
  the token id as the value);
* ``traces``: internal transfers, block and uncle rewards, genesis allocations and the DAO-fork moves.
  Exports made without an archive node have none; the reader then logs that internal transfers are missing.

Files are streamed row by row and joined on the block number, so each must list its rows in
non-decreasing block order (ethereum-etl writes them so). Batches hold complete blocks. A row that
cannot be read raises :class:`~fundtrail.errors.ParseError` naming the file, the line and the column.
"""

from __future__ import annotations

import csv
import decimal
import json
import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from fundtrail.chains.ahead import AHEAD_MIN_BYTES
from fundtrail.chains.evm.decode import (
    LogDecodeStats,
    TransferLogKind,
    classify_transfer_log,
    decode_erc20_transfer,
    flatten_parity_traces,
    parse_address,
    parse_hash,
    parse_optional_address,
    parse_optional_quantity,
    parse_quantity,
    split_topics,
    transaction_fee,
    withdrawal_wei,
)
from fundtrail.chains.evm.events import KEPT_TOPICS, memo_in_call_data
from fundtrail.domain.amounts import MAX_INT32, MAX_INT64, amount_problem, shown_number
from fundtrail.domain.chains import NATIVE_ASSET, ChainFamily, get_chain
from fundtrail.domain.records import AccountBatch, BlockRecord, PayloadKind, TransferKind
from fundtrail.errors import InputError, ParseError

log = logging.getLogger(__name__)

Row = Mapping[str, Any]

REQUIRED: dict[str, tuple[str, ...]] = {
    "blocks": ("number", "hash", "parent_hash", "timestamp"),
    "transactions": ("hash", "block_number", "transaction_index", "from_address", "to_address", "value"),
    "receipts": ("transaction_hash", "block_number", "status", "gas_used"),
    "token_transfers": ("token_address", "from_address", "to_address", "value", "transaction_hash",
                        "log_index", "block_number"),
    "logs": ("log_index", "transaction_hash", "block_number", "address", "data", "topics"),
    "traces": ("block_number", "transaction_hash", "from_address", "to_address", "value", "trace_type",
               "trace_address"),
}


def _json_loads(text: str | bytes) -> Any:
    """JSON with exact integers of any size; fractions come back as Decimal, which amounts refuse."""
    return json.loads(text, parse_float=decimal.Decimal)


def parse_amount(value: Any, what: str = "amount") -> int:
    """A native amount (wei): :func:`parse_quantity` within what the store keeps exactly (DECIMAL(38,0)).

    Token amounts are not checked here: spam tokens mint beyond it and the store keeps those as text.
    """
    amount = parse_quantity(value, what)
    problem = amount_problem(amount)
    if problem:
        raise InputError(f"{what}: {problem}")
    return amount


def _bounded(top: int) -> Callable[[Any, str], int]:
    def parse(value: Any, what: str) -> int:
        number = parse_quantity(value, what)
        if number > top:
            raise InputError(f"{what}: {shown_number(number)} is out of range (0 to {top:,})")
        return number
    return parse


parse_height = _bounded(MAX_INT64)
"""A block number or timestamp the store keeps (BIGINT)."""
parse_index = _bounded(MAX_INT32)
"""A transaction or log index the store keeps (INTEGER)."""


def parse_optional_amount(value: Any, what: str = "amount") -> int | None:
    """Like :func:`parse_amount`, with ``None`` and ``""`` meaning absent."""
    if value is None or value == "":
        return None
    return parse_amount(value, what)


def _find(directory: Path, name: str) -> Path | None:
    for suffix in (".csv", ".json", ".jsonl"):
        path = directory / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


class _Table:
    """One export file, streamed as ``(line, row)``; rows map column names to values."""

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name
        self.is_csv = path.suffix == ".csv"

    def fail(self, line: int | None, problem: str) -> ParseError:
        """A ParseError naming this file and ``line``."""
        return ParseError(str(self.path), None if line is None else str(line), problem)

    def rows(self) -> Iterator[tuple[int, Row]]:
        """Every row with its line number (1 is a CSV's header)."""
        return self._csv_rows() if self.is_csv else self._json_rows()

    def _csv_rows(self) -> Iterator[tuple[int, Row]]:
        with open(self.path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            try:
                header = next(reader)
            except StopIteration:  # ethereum-etl leaves the file empty when there is nothing to export
                return
            except csv.Error as error:
                raise self.fail(reader.line_num, f"bad CSV: {error}") from None
            missing = [c for c in REQUIRED[self.name] if c not in header]
            if missing:
                raise self.fail(1, f"missing column {', '.join(repr(c) for c in missing)}")
            width = len(header)
            while True:
                try:
                    values = next(reader)
                except StopIteration:
                    return
                except csv.Error as error:
                    raise self.fail(reader.line_num, f"bad CSV: {error}") from None
                if not values:
                    continue
                if len(values) != width:
                    raise self.fail(reader.line_num, f"{len(values)} fields where the header has {width}")
                yield reader.line_num, dict(zip(header, values, strict=True))

    def _json_rows(self) -> Iterator[tuple[int, Row]]:
        with open(self.path, "rb") as handle:
            for line_no, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    row = _json_loads(raw)
                except ValueError as error:
                    raise self.fail(line_no, f"bad JSON: {error}") from None
                if not isinstance(row, dict):
                    raise self.fail(line_no, "not a JSON object")
                missing = [c for c in REQUIRED[self.name] if c not in row]
                if missing:
                    raise self.fail(line_no, f"missing column {', '.join(repr(c) for c in missing)}")
                yield line_no, row

    def value(self, line: int, row: Row, column: str, parse: Callable[[Any, str], Any]) -> Any:
        """``parse(row[column])``, with errors naming file, line and column."""
        given = row.get(column)
        if type(given) is str:
            quick = _QUICK.get(parse)
            if quick is not None and quick[0](given):  # the common spelling: the same result, sooner
                return given if quick[1] is None else quick[1](given)
        try:
            return parse(given, column)
        except InputError as error:
            raise self.fail(line, f"column {column!r}: {_problem(error, column)}") from None


def _hex_of(length: int) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        return len(text) == length and text.startswith("0x") and _LOWER_HEX.issuperset(text[2:])
    return check


def _digits_up_to(width: int) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        return len(text) <= width and text.isascii() and text.isdigit()
    return check


_LOWER_HEX = frozenset("0123456789abcdef")
_QUICK: dict[Callable[[Any, str], Any], tuple[Callable[[str], bool], Callable[[str], Any] | None]] = {
    parse_hash: (_hex_of(66), None),
    parse_address: (_hex_of(42), None),
    parse_optional_address: (_hex_of(42), None),
    parse_height: (_digits_up_to(18), int),
    parse_index: (_digits_up_to(9), int),
    parse_amount: (_digits_up_to(38), int),
    parse_quantity: (_digits_up_to(4_000), int),
    parse_optional_quantity: (_digits_up_to(4_000), int),
}
"""Values in the spelling exports use (lower-case hex, plain decimal digits within the bound), which
each parser would return as they are (hex) or as ``int`` (digits); other values take the parser."""


def _problem(error: InputError, column: str) -> str:
    text = str(error)
    prefix = f"{column}: "
    return text[len(prefix):] if text.startswith(prefix) else text


class _Grouped:
    """Rows of a table handed out block by block; the table must be in non-decreasing block order."""

    def __init__(self, table: _Table, block_column: str = "block_number") -> None:
        self.table = table
        self.block_column = block_column
        self._rows = table.rows()
        self._pending: tuple[int, int, Row] | None = None
        self._last = -1
        self._advance()

    def _advance(self) -> None:
        item = next(self._rows, None)
        if item is None:
            self._pending = None
            return
        line, row = item
        number = self.table.value(line, row, self.block_column, parse_height)
        if number < self._last:
            raise self.table.fail(line, f"block {number} after block {self._last}: rows must be in block "
                                        "order (sort the file by block number)")
        self._last = number
        self._pending = (number, line, row)

    def take(self, number: int) -> list[tuple[int, Row]]:
        """The rows of block ``number``; rows of a block the blocks file skipped are an error."""
        rows: list[tuple[int, Row]] = []
        while self._pending is not None and self._pending[0] <= number:
            block, line, row = self._pending
            if block < number:
                raise self.table.fail(line, f"block {block} is not in the blocks file (or the files are not "
                                            "in the same block order)")
            rows.append((line, row))
            self._advance()
        return rows

    def finish(self) -> None:
        """Fail on rows left after the last block."""
        if self._pending is not None:
            block, line, _ = self._pending
            raise self.table.fail(line, f"block {block} is not in the blocks file")


def read_ethereum_etl(directory: Path, chain: str, *, batch_size: int = 10_000) -> Iterator[AccountBatch]:
    """Batches of complete blocks from an ethereum-etl export folder (see the module docstring).

    A batch closes after the block that brings it to ``batch_size`` transactions (or blocks).
    """
    params = get_chain(chain)
    if params.family is not ChainFamily.ACCOUNT:
        raise InputError(f"chain {chain!r} is not an account chain; ethereum-etl exports are EVM data")
    if not params.has_hex_addresses:
        raise InputError(f"chain {params.name!r} is read over its JSON-RPC (fundtrail ingest rpc URL --chain "
                         f"{params.name}), not from ethereum-etl exports")
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: not a folder of ethereum-etl exports")
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, not {batch_size}")
    tables = {name: _Table(path, name) for name in REQUIRED if (path := _find(directory, name)) is not None}
    for name in ("blocks", "transactions"):
        if name not in tables:
            raise InputError(f"{directory}: no {name}.csv (or {name}.json): "
                             "not an ethereum-etl export folder")
    if "traces" not in tables:
        log.warning("%s: no traces file (exports made without an archive node have none): internal "
                    "transfers, rewards and genesis allocations are not read", directory)
    if "logs" in tables:
        log.info("%s: token transfers decoded from %s", directory, tables["logs"].path.name)
        tables.pop("token_transfers", None)
    elif "token_transfers" in tables:
        log.info("%s: token transfers from %s (ERC-721 transfers in it are read as amounts)", directory,
                 tables["token_transfers"].path.name)
    else:
        log.warning("%s: neither logs nor token_transfers: no token transfers are read", directory)
    if sum(t.path.stat().st_size for t in tables.values()) >= AHEAD_MIN_BYTES:
        from fundtrail.chains.ahead import read_ahead

        # parsed in a worker process while this one writes (two cores)
        return read_ahead(_read, params.name, tables, batch_size)
    return _read(params.name, tables, batch_size)


def _read(chain: str, tables: dict[str, _Table], batch_size: int) -> Iterator[AccountBatch]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # contract creation inputs exceed the default
    blocks = tables["blocks"]
    side = {name: _Grouped(t) for name, t in tables.items() if name != "blocks"}
    stats = LogDecodeStats()
    batch = AccountBatch(chain=chain)
    last = -1
    for line, row in blocks.rows():
        number = blocks.value(line, row, "number", parse_height)
        if number <= last:
            raise blocks.fail(line, f"block {number} after block {last}: blocks must be in increasing order")
        last = number
        groups = {name: g.take(number) for name, g in side.items()}
        _add_block(batch, tables, line, row, number, groups, stats)
        if len(batch.tx_txid) >= batch_size or len(batch.blocks) >= batch_size:
            yield batch
            batch = AccountBatch(chain=chain)
    for g in side.values():
        g.finish()
    if batch.blocks:
        yield batch
    if stats.erc721_skipped or stats.malformed_skipped:
        log.info("logs: %d ERC-20 transfers read; %d ERC-721 transfers and %d malformed Transfer logs "
                 "skipped", stats.erc20, stats.erc721_skipped, stats.malformed_skipped)


def _status(value: Any, column: str) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    return parse_quantity(value, column) == 1


def _withdrawals(value: Any, column: str) -> list[Mapping[str, Any]]:
    if value is None or value == "" or value == "[]":
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):  # ethereum-etl's CSV joins the objects with commas, without brackets
            text = f"[{text}]"
        try:
            value = _json_loads(text)
        except ValueError:
            raise InputError(f"{column}: not a list of withdrawals") from None
    if not isinstance(value, list) or not all(isinstance(w, dict) for w in value):
        raise InputError(f"{column}: not a list of withdrawals")
    return value


def _trace_address(value: Any, column: str) -> list[int]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        items = value
    else:
        items = [v for v in str(value).split(",") if v.strip() != ""]
    try:
        return [int(v) for v in items]
    except (TypeError, ValueError):
        raise InputError(f"{column}: {value!r} is not a list of integers") from None


def _add_block(batch: AccountBatch, tables: dict[str, _Table], line: int, row: Row, height: int,
               groups: dict[str, list[tuple[int, Row]]], stats: LogDecodeStats) -> None:
    blocks = tables["blocks"]
    chain = batch.chain
    native = NATIVE_ASSET
    block_hash = blocks.value(line, row, "hash", parse_hash)
    parent = row.get("parent_hash")
    prev_hash = blocks.value(line, row, "parent_hash", parse_hash) if parent and height > 0 else None
    time = blocks.value(line, row, "timestamp", parse_height)

    txt = tables["transactions"]
    tx_rows = sorted(groups["transactions"],
                     key=lambda item: txt.value(item[0], item[1], "transaction_index", parse_index))
    batch.blocks.append(BlockRecord(chain, height, block_hash, prev_hash, time, len(tx_rows)))

    receipts: dict[str, tuple[int, Row]] = {}
    if "receipts" in tables:
        rt = tables["receipts"]
        for rline, rrow in groups["receipts"]:
            receipts[rt.value(rline, rrow, "transaction_hash", parse_hash)] = (rline, rrow)

    trace_rows = groups.get("traces", [])
    parity, block_level = _traces_as_parity(tables.get("traces"), trace_rows, block_hash)
    hashes: list[str] = []
    index_of: dict[str, int] = {}
    for tline, trow in tx_rows:
        txid = txt.value(tline, trow, "hash", parse_hash)
        hashes.append(txid)
        index_of[txid] = txt.value(tline, trow, "transaction_index", parse_index)
        given = trow.get("block_hash")
        if given and txt.value(tline, trow, "block_hash", parse_hash) != block_hash:
            raise txt.fail(tline, f"column 'block_hash': {given} is not block {height}'s hash {block_hash}")
    for entry in parity:
        if entry["type"] != "reward" and entry.get("transactionPosition") is None:
            position = index_of.get(entry["transactionHash"])
            if position is None:
                raise tables["traces"].fail(entry["_line"], f"transaction {entry['transactionHash']} is "
                                                            f"not in block {height}'s transactions")
            entry["transactionPosition"] = position
    try:
        traced = flatten_parity_traces(sorted(parity, key=_trace_order)) if parity else None
    except InputError as error:
        raise tables["traces"].fail(trace_rows[0][0] if trace_rows else None, str(error)) from None

    failed: set[str] = set()
    gas_prices: dict[str, int] = {}
    for (tline, trow), txid in zip(tx_rows, hashes, strict=True):
        index = index_of[txid]
        if txid in receipts:
            status, gas_used, effective, l1_fee, created = _receipt(tables["receipts"], *receipts[txid], "")
        else:  # streamed exports carry the receipt in the transaction row
            status, gas_used, effective, l1_fee, created = _receipt(txt, tline, trow, "receipt_")
        if status is None and traced is not None and index in traced.failed_txs:
            status = False
        gas_price = (txt.value(tline, trow, "gas_price", parse_optional_quantity)
                     if "gas_price" in trow else None)
        fee = transaction_fee(gas_used, effective, gas_price, l1_fee=l1_fee)
        if fee is not None and (problem := amount_problem(fee)):
            raise txt.fail(tline, f"the fee (gas used times gas price) {problem}")
        batch.add_tx(txid, height, time, index, fee=fee, status=status)
        if effective or gas_price:
            gas_prices[txid] = effective or gas_price or 0
        memo = memo_in_call_data(str(trow.get("input") or ""))
        if memo is not None and status is not False:
            batch.payloads.add(txid, height, 0, PayloadKind.MEMO, memo)
        sender = txt.value(tline, trow, "from_address", parse_address)
        receiver = (txt.value(tline, trow, "to_address", parse_optional_address) or created
                    or (traced.created.get(index) if traced is not None else None))
        if status is False:
            failed.add(txid)
        else:
            batch.add_transfer(txid, height, time, 0, TransferKind.NATIVE.value, native, sender, receiver,
                               txt.value(tline, trow, "value", parse_amount))
        if fee:
            batch.add_transfer(txid, height, time, 0, TransferKind.FEE.value, native, sender, None, fee)

    if "logs" in tables:
        lt = tables["logs"]
        for lline, lrow in groups["logs"]:
            topics = lt.value(lline, lrow, "topics", lambda v, c: split_topics(v))
            data = lrow.get("data") or "0x"
            try:
                kind = classify_transfer_log(topics, data)
            except InputError as error:
                raise lt.fail(lline, f"column 'data': {_problem(error, 'data')}") from None
            stats.count(kind)
            if kind is not TransferLogKind.ERC20:
                if topics and topics[0].lower() in KEPT_TOPICS:
                    _keep_log(batch, lt, lline, lrow, height, topics, data, failed, gas_prices)
                continue
            txid = lt.value(lline, lrow, "transaction_hash", parse_hash)
            if txid in failed:
                continue
            try:
                transfer = decode_erc20_transfer(str(lrow.get("address")), topics, data)
            except InputError as error:
                raise lt.fail(lline, str(error)) from None
            assert transfer is not None
            batch.add_transfer(txid, height, time, lt.value(lline, lrow, "log_index", parse_index),
                               TransferKind.TOKEN.value, transfer.token, transfer.from_, transfer.to,
                               transfer.value)
    elif "token_transfers" in tables:
        tt = tables["token_transfers"]
        for kline, krow in groups["token_transfers"]:
            txid = tt.value(kline, krow, "transaction_hash", parse_hash)
            if txid in failed:
                continue
            batch.add_transfer(txid, height, time, tt.value(kline, krow, "log_index", parse_index),
                               TransferKind.TOKEN.value,
                               tt.value(kline, krow, "token_address", parse_address),
                               tt.value(kline, krow, "from_address", parse_address),
                               tt.value(kline, krow, "to_address", parse_address),
                               tt.value(kline, krow, "value", parse_quantity))

    if traced is not None:
        for internal in traced.transfers:
            txid = internal.tx_hash or hashes[internal.tx_index]
            if txid in failed:
                continue
            batch.add_transfer(txid, height, time, internal.position, TransferKind.INTERNAL.value, native,
                               internal.from_, internal.to, internal.value)
        for reward in traced.rewards:
            batch.add_transfer(None, height, time, reward.position, TransferKind.REWARD.value, native, None,
                               reward.to, reward.value)
    for position, (from_, to, value) in enumerate(block_level):
        batch.add_transfer(None, height, time, position, TransferKind.GENESIS.value, native, from_, to, value)

    if "withdrawals" in row:
        for position, w in enumerate(blocks.value(line, row, "withdrawals", _withdrawals)):
            try:
                amount = parse_quantity(w.get("amount", 0), "amount")
                address = parse_address(w.get("address"), "address")
            except InputError as error:
                raise blocks.fail(line, f"column 'withdrawals': {error}") from None
            if amount and (problem := amount_problem(withdrawal_wei(amount))):
                raise blocks.fail(line, f"column 'withdrawals': withdrawal {position}: amount {problem}")
            if amount:
                batch.add_transfer(None, height, time, position, TransferKind.WITHDRAWAL.value, native, None,
                                   address, withdrawal_wei(amount))


def _keep_log(batch: AccountBatch, table: _Table, line: int, row: Row, height: int, topics: list[str],
              data: str, failed: set[str], gas_prices: dict[str, int]) -> None:
    """Keep a log that conversion decoding reads (and its transaction's gas price, once)."""
    txid = table.value(line, row, "transaction_hash", parse_hash)
    if txid in failed:
        return
    address = table.value(line, row, "address", parse_address)
    index = table.value(line, row, "log_index", parse_index)
    price = gas_prices.pop(txid, None)  # popped: one gas price row per transaction
    if price is not None:
        batch.payloads.add(txid, height, 0, PayloadKind.GAS_PRICE, str(price))
    batch.logs.add(txid, height, index, address, [t.lower() for t in topics], str(data).lower())


def _receipt(table: _Table, line: int, row: Row, prefix: str
             ) -> tuple[bool | None, int | None, int | None, int | None, str | None]:
    """Status, gas used, effective gas price, L1 fee and created contract from a receipt row (or the
    ``receipt_`` columns of a transaction row); absent columns give ``None``."""

    def get(column: str, parse: Callable[[Any, str], Any]) -> Any:
        return table.value(line, row, prefix + column, parse) if prefix + column in row else None

    return (get("status", _status), get("gas_used", parse_optional_quantity),
            get("effective_gas_price", parse_optional_quantity), get("l1_fee", parse_optional_quantity),
            get("contract_address", parse_optional_address))


def _trace_order(entry: Mapping[str, Any]) -> tuple[int, int, list[int]]:
    # rewards after the transactions' traces; within a transaction depth first, as trace_block lists them
    if entry["type"] == "reward":
        return (1, entry["_line"], [])
    return (0, entry["transactionPosition"], entry["traceAddress"])


def _traces_as_parity(table: _Table | None, rows: list[tuple[int, Row]], block_hash: str
                      ) -> tuple[list[dict[str, Any]], list[tuple[str | None, str, int]]]:
    """ethereum-etl trace rows as Parity ``trace_block`` entries, and the block-level state changes
    (``genesis`` and ``daofork`` rows) as ``(from, to, value)``."""
    parity: list[dict[str, Any]] = []
    block_level: list[tuple[str | None, str, int]] = []
    if table is None:
        return parity, block_level
    for line, row in rows:
        ttype = str(row.get("trace_type") or "").lower()
        value = table.value(line, row, "value", parse_optional_amount) or 0
        if ttype in ("genesis", "daofork"):
            if value:
                block_level.append((table.value(line, row, "from_address", parse_optional_address),
                                    table.value(line, row, "to_address", parse_address), value))
            continue
        if ttype == "reward":
            parity.append({"type": "reward", "_line": line, "action": {
                "author": table.value(line, row, "to_address", parse_address), "value": value,
                "rewardType": row.get("reward_type") or "block"}})
            continue
        if ttype not in ("call", "create", "suicide"):
            continue
        txid = table.value(line, row, "transaction_hash", parse_hash)
        status = table.value(line, row, "status", _status) if "status" in row else None
        error = row.get("error") or ("reverted" if status is False else None)
        from_ = table.value(line, row, "from_address", parse_optional_address)
        to = table.value(line, row, "to_address", parse_optional_address)
        entry: dict[str, Any] = {
            "type": ttype, "_line": line, "transactionHash": txid, "blockHash": block_hash,
            "transactionPosition": (table.value(line, row, "transaction_index", parse_optional_quantity)
                                    if "transaction_index" in row else None),
            "traceAddress": table.value(line, row, "trace_address", _trace_address),
            "error": error,
        }
        if ttype == "call":
            entry["action"] = {"callType": row.get("call_type") or "call", "from": from_, "to": to,
                               "value": value}
        elif ttype == "create":
            entry["action"] = {"from": from_, "value": value}
            entry["result"] = {"address": to}
        else:
            entry["action"] = {"address": from_, "refundAddress": to, "balance": value}
        parity.append(entry)
    return parity, block_level
