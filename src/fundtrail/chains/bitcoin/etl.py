"""bitcoin-etl ``transactions`` exports (JSON lines, plain or gzip) as batches of complete blocks.

Files are read as one stream, line by line, in the order given (``-`` is standard input); a block may
continue from one file into the next. Transactions of a block must be contiguous: the reader buffers
one block at a time and a batch ends at a block boundary once it holds ``batch_size`` transactions.
A block that shows up again after other blocks is an error (sort the export by block number first).

Addresses and script types come from the output's ``script_hex`` through
:func:`~fundtrail.domain.scripts.classify_scripts` (a block's new scripts at once; the same results as
:func:`~fundtrail.domain.scripts.classify_script`), as every reader derives them. Without
``script_hex`` the export's ``addresses`` are used, except bitcoin-etl's made-up ``nonstandard...``
placeholders, which are no addresses. Inputs carry the spent output's address and value when the
export was enriched; otherwise the store resolves them from the outputs it holds. Zcash shielded
pseudo-inputs and outputs (``type`` ``shielded``, no script) are left out: the store keeps the
transparent part. A fee is kept only when every input value is known (bitcoin-etl writes negative
fees for unenriched rows); coinbase transactions have none.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
import queue
import sys
import threading
import zlib
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import IO, Any, cast

import orjson

from fundtrail.chains.ahead import AHEAD_MIN_BYTES
from fundtrail.chains.tables import UtxoTables
from fundtrail.domain.addresses import canonical_address
from fundtrail.domain.amounts import MAX_AMOUNT, MAX_INT32, MAX_INT64, amount_problem, shown_number
from fundtrail.domain.chains import ChainParams, get_chain
from fundtrail.domain.records import BlockRecord, PayloadKind, ScriptType, UtxoBatch
from fundtrail.domain.scripts import classify_script, classify_scripts, op_return_data
from fundtrail.errors import InputError, InputLimitError, InvalidAddressError, ParseError
from fundtrail.limits import ENV_VARS, InputLimits, input_limits

log = logging.getLogger(__name__)

_NULLDATA = ScriptType.NULLDATA.value


def _keep_op_return(batch: UtxoBatch, txid: str, height: int, n: int, script_hex: str) -> None:
    """Keep the bytes an OP_RETURN output carries (memos of cross-chain swaps are read from them)."""
    payload = op_return_data(bytes.fromhex(script_hex))
    if payload:
        batch.payloads.add(txid, height, n, PayloadKind.OP_RETURN, payload.hex())


# bitcoin-etl's output type names, for rows without script_hex.
ETL_TYPES: dict[str, ScriptType] = {
    "pubkey": ScriptType.P2PK,
    "pubkeyhash": ScriptType.P2PKH,
    "scripthash": ScriptType.P2SH,
    "witness_v0_keyhash": ScriptType.P2WPKH,
    "witness_v0_scripthash": ScriptType.P2WSH,
    "witness_v1_taproot": ScriptType.P2TR,
    "witness_unknown": ScriptType.WITNESS_UNKNOWN,
    "multisig": ScriptType.MULTISIG,
    "nulldata": ScriptType.NULLDATA,
    "nonstandard": ScriptType.NONSTANDARD,
}

SHIELDED = "shielded"
PLACEHOLDER_PREFIX = "nonstandard"

_CACHE_LIMIT = 150_000
"""Entries of each reader cache (scripts, addresses): cleared when full. About 160 bytes an entry (a
script's hex or an address with its canonical form, their string objects and the table's slot): ~24 MB
each, as :data:`fundtrail.chains.bitcoin.etl_arrow.CACHE_BYTES`, so a reading process stays small."""


class _Block:
    """The transactions of the block being read, until the next block starts."""

    __slots__ = ("height", "hash", "time", "txs", "first_line")

    def __init__(self, height: int, block_hash: str, time: int, first_line: str) -> None:
        self.height = height
        self.hash = block_hash
        self.time = time
        self.txs: list[tuple[dict[str, Any], str]] = []
        self.first_line = first_line


STDIN = "-"


def _open(path: Path) -> IO[bytes]:
    """The file (``-``: standard input) as bytes, decompressed when it is gzip (suffix or magic bytes)."""
    if str(path) == STDIN:
        stream: Any = sys.stdin.buffer
        if not hasattr(stream, "peek"):
            stream = io.BufferedReader(stream)
        if stream.peek(2)[:2] == b"\x1f\x8b":
            return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
        return contextlib.nullcontext(stream)  # type: ignore[return-value]  # stdin stays open
    if path.suffix != ".gz":
        with path.open("rb") as probe:
            if probe.read(2) != b"\x1f\x8b":
                return path.open("rb")
    return gzip.GzipFile(path, "rb")  # type: ignore[return-value]


def _lines(paths: list[Path], limits: InputLimits) -> Iterator[tuple[bytes, str, int]]:
    """(line, file name, line number) of every non-blank line of the files, in order.

    Each file is read within ``limits``: its (decompressed) size, its blank lines and the length of a
    line are bounded, so that a small crafted file (a gzip of a gigabyte of newlines) is refused at once.
    """
    max_line = limits.max_line_bytes
    max_bytes = limits.max_decompressed_bytes
    max_blank = limits.max_blank_lines
    for path in paths:
        name = "<stdin>" if str(path) == STDIN else str(path)
        if name != "<stdin>" and Path(path).is_dir():
            raise ParseError(name, None, "is a folder, not a bitcoin-etl transactions file")
        lineno = 0
        total = 0
        blank = 0
        try:
            with _open(Path(path)) as handle:
                readline = handle.readline
                while raw := readline(max_line + 1):
                    lineno += 1
                    total += len(raw)
                    if len(raw) > max_line and not raw.endswith(b"\n"):
                        raise InputLimitError(name, str(lineno), f"a line longer than {max_line:,} bytes",
                                              ENV_VARS["max_line_bytes"])
                    if total > max_bytes:
                        raise InputLimitError(name, str(lineno), f"more than {max_bytes:,} bytes "
                                                                 "(decompressed)",
                                              ENV_VARS["max_decompressed_bytes"])
                    if raw.strip():
                        yield raw, name, lineno
                    else:
                        blank += 1
                        if blank > max_blank:
                            raise InputLimitError(name, str(lineno), f"more than {max_blank:,} blank lines",
                                                  ENV_VARS["max_blank_lines"])
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise ParseError(name, str(lineno + 1) if lineno else None,
                             f"truncated or corrupt gzip data ({exc})") from None


class _Reader:
    """Turns rows into batch columns; holds the per-run caches."""

    def __init__(self, chain: str) -> None:
        self.params: ChainParams = get_chain(chain)
        self.chain = self.params.name
        self.scripts: dict[str, tuple[str | None, str]] = {}
        self.addresses: dict[str, str | None] = {}

    def output_script(self, script_hex: str, where: str) -> tuple[str | None, str]:
        """(address, script type) of an output script given as hex (cached: scripts repeat)."""
        found = self.scripts.get(script_hex)
        if found is not None:
            return found
        try:
            script = bytes.fromhex(script_hex)
        except ValueError:
            raise _err(where, "field 'script_hex' is not hex") from None
        script_type, address = classify_script(self.params, script)
        found = (address, script_type.value)
        if len(self.scripts) >= _CACHE_LIMIT:
            self.scripts.clear()
        self.scripts[script_hex] = found
        if address is not None:
            # An address derived from a script is canonical: later inputs that name it need no decoding.
            if len(self.addresses) >= _CACHE_LIMIT:
                self.addresses.clear()
            self.addresses[address] = address
        return found

    def listed_address(self, addresses: Any, where: str, field: str) -> str | None:
        """The one real address of an ``addresses`` list, canonical; None for none or several."""
        if not addresses:
            return None
        if not isinstance(addresses, list):
            raise _err(where, f"field '{field}' must be a list")
        if len(addresses) != 1:
            return None
        text = addresses[0]
        if not isinstance(text, str):
            raise _err(where, f"field '{field}' must hold strings")
        if text.startswith(PLACEHOLDER_PREFIX):
            return None
        if text in self.addresses:
            return self.addresses[text]
        try:
            address = canonical_address(self.chain, text)
        except InvalidAddressError as exc:
            raise _err(where, f"field '{field}': {exc}") from None
        if len(self.addresses) >= _CACHE_LIMIT:
            self.addresses.clear()
        self.addresses[text] = address
        return address

    def add_block(self, batch: UtxoBatch, block: _Block) -> None:
        """Append one buffered block and its transactions to the batch.

        The loop is written for speed (CPython): the common row shape (integer values, hex scripts,
        spent-output references) takes the inline path; anything else goes through
        :meth:`_output_slow` / :meth:`_input_slow`, which handle the rare shapes and name problems.
        """
        height, time = block.height, block.time
        out_txid, out_n, out_address = batch.out_txid.append, batch.out_n.append, batch.out_address.append
        out_value, out_type = batch.out_value.append, batch.out_script_type.append
        in_txid, in_n, in_prev_txid = batch.in_txid.append, batch.in_n.append, batch.in_prev_txid.append
        in_prev_n, in_sequence = batch.in_prev_n.append, batch.in_sequence.append
        in_address, in_value = batch.in_address.append, batch.in_value.append
        tx_txid, tx_height, tx_time, tx_index = (batch.tx_txid.append, batch.tx_height.append,
                                                 batch.tx_time.append, batch.tx_index.append)
        tx_fee, tx_coinbase, tx_size, tx_vsize = (batch.tx_fee.append, batch.tx_coinbase.append,
                                                  batch.tx_size.append, batch.tx_vsize.append)
        tx_version, tx_locktime, tx_segwit = (batch.tx_version.append, batch.tx_locktime.append,
                                              batch.tx_segwit.append)
        scripts = self.scripts
        listed = self.addresses
        pending: list[tuple[int, str, str, str, int]] = []  # (output row, script hex, where, txid, n)
        pending_in: list[tuple[int, list[str], str, int]] = []  # (input row, addresses, where, position)
        for ordinal, (row, where) in enumerate(block.txs):
            txid = row["hash"]
            outputs = row.get("outputs")
            inputs = row.get("inputs")
            if type(outputs) is not list:
                raise _err(where, "missing field 'outputs'" if outputs is None
                           else "field 'outputs' must be a list")
            if type(inputs) is not list:
                if inputs is not None:
                    raise _err(where, "field 'inputs' must be a list")
                inputs = ()
            out_total = 0
            pseudo_total = 0
            for position, out in enumerate(outputs):
                if type(out) is dict:
                    value = out.get("value")
                    script_hex = out.get("script_hex")
                    n = out.get("index")
                    if n is None:
                        n = position
                    if (type(value) is int and type(script_hex) is str and type(n) is int
                            and 0 <= value <= MAX_AMOUNT and 0 <= n <= MAX_INT32):
                        found = scripts.get(script_hex)
                        out_txid(txid)
                        out_n(n)
                        out_value(value)
                        out_total += value
                        if found is None:  # classified with the block's other new scripts, below
                            pending.append((len(batch.out_address), script_hex, where, txid, n))
                            out_address(None)
                            out_type(_NULLDATA)
                            continue
                        out_address(found[0])
                        out_type(found[1])
                        if found[1] == _NULLDATA:
                            _keep_op_return(batch, txid, height, n, script_hex)
                        continue
                kept = self._output_slow(out, position, where)
                if kept is None:
                    pseudo_total -= out["value"]  # value entering a shielded pool
                    continue
                n, address, value, script_type = kept
                out_txid(txid)
                out_n(n)
                out_address(address)
                out_value(value)
                out_type(script_type)
                out_total += value
                if script_type == _NULLDATA and isinstance(out.get("script_hex"), str):
                    _keep_op_return(batch, txid, height, n, out["script_hex"])

            in_total = 0
            all_known = True
            for position, inp in enumerate(inputs):
                if type(inp) is dict:
                    prev_txid = inp.get("spent_transaction_hash")
                    prev_n = inp.get("spent_output_index")
                    value = inp.get("value")
                    n = inp.get("index")
                    if n is None:
                        n = position
                    sequence = inp.get("sequence")
                    if (type(prev_txid) is str and type(prev_n) is int and type(n) is int
                            and 0 <= prev_n <= MAX_INT32 and 0 <= n <= MAX_INT32
                            and (sequence is None or (type(sequence) is int and 0 <= sequence <= MAX_INT64))):
                        if value is None:
                            all_known = False
                            address = None
                        elif type(value) is int:
                            if not 0 <= value <= MAX_AMOUNT:
                                raise _err(where,
                                           f"inputs[{position}]: field 'value' {_amount_problem(value)}")
                            in_total += value
                            names = inp.get("addresses")
                            if type(names) is list and len(names) == 1 and names[0] in listed:
                                address = listed[names[0]]
                            elif type(names) is list and len(names) == 1 and type(names[0]) is str:
                                # decoded after the block's new scripts are classified (most are theirs)
                                pending_in.append((len(batch.in_address), names, where, position))
                                address = None
                            else:
                                address = self.listed_address(names, where, f"inputs[{position}].addresses")
                        else:
                            raise _err(where, f"inputs[{position}]: field 'value' must be an integer")
                        in_txid(txid)
                        in_n(n)
                        in_prev_txid(prev_txid)
                        in_prev_n(prev_n)
                        in_sequence(sequence)
                        in_address(address)
                        in_value(value)
                        continue
                pseudo_total += self._input_slow(inp, position, where)

            index = row.get("index")
            if type(index) is not int:
                if index is not None:
                    raise _err(where, "field 'index' must be an integer")
                index = ordinal
            elif not 0 <= index <= MAX_INT32:
                raise _err(where, f"field 'index' {_range_problem(index, MAX_INT32)}")
            coinbase = row.get("is_coinbase")
            if type(coinbase) is not bool:
                if coinbase is not None:
                    raise _err(where, "field 'is_coinbase' must be true or false")
                coinbase = False
            size = row.get("size")
            vsize = row.get("virtual_size")
            if type(size) is not int:
                size = None
            elif not 0 <= size <= MAX_INT32:
                raise _err(where, f"field 'size' {_range_problem(size, MAX_INT32)}")
            if type(vsize) is not int:
                vsize = None
            elif not 0 <= vsize <= MAX_INT32:
                raise _err(where, f"field 'virtual_size' {_range_problem(vsize, MAX_INT32)}")
            version = row.get("version")
            locktime = row.get("lock_time")
            for field, number in (("version", version), ("lock_time", locktime)):
                if type(number) is int and not -MAX_INT64 <= number <= MAX_INT64:
                    raise _err(where, f"field '{field}' {_range_problem(number, MAX_INT64)}")
            tx_txid(txid)
            tx_height(height)
            tx_time(time)
            tx_index(index)
            tx_fee(in_total - out_total + pseudo_total if all_known and not coinbase else None)
            tx_coinbase(coinbase)
            tx_size(size)
            tx_vsize(vsize)
            tx_version(version if type(version) is int else None)
            tx_locktime(locktime if type(locktime) is int else None)
            tx_segwit(size is not None and vsize is not None and vsize < size)
        if pending:
            self._classify(batch, pending, height)
        for row_at, names, where, position in pending_in:
            found_address = listed.get(names[0])
            batch.in_address[row_at] = (found_address if found_address is not None else
                                        self.listed_address(names, where, f"inputs[{position}].addresses"))
        batch.blocks.append(BlockRecord(self.chain, height, block.hash, None, time, len(block.txs)))

    def _classify(self, batch: UtxoBatch, pending: list[tuple[int, str, str, str, int]], height: int) -> None:
        """Classify the block's scripts not seen before in one call (addresses encoded together) and
        fill their rows; the cache is bounded (cleared when full)."""
        raw: list[bytes] = []
        for _row, script_hex, where, _txid, _n in pending:
            try:
                raw.append(bytes.fromhex(script_hex))
            except ValueError:
                raise _err(where, "field 'script_hex' is not hex") from None
        types, addresses = classify_scripts(self.params, raw)
        scripts = self.scripts
        listed = self.addresses
        out_address = batch.out_address
        out_type = batch.out_script_type
        if len(scripts) + len(raw) > _CACHE_LIMIT:
            scripts.clear()
        if len(listed) + len(raw) > _CACHE_LIMIT:
            listed.clear()
        for (row, script_hex, _where, txid, n), kind, address, script in zip(pending, types, addresses, raw,
                                                                            strict=True):
            name = kind.value
            out_address[row] = address
            out_type[row] = name
            scripts[script_hex] = (address, name)
            if address is not None:
                listed[address] = address
            elif name == _NULLDATA:
                payload = op_return_data(script)
                if payload:
                    batch.payloads.add(txid, height, n, PayloadKind.OP_RETURN, payload.hex())

    def _output_slow(self, out: Any, position: int, where: str) -> tuple[int, str | None, int, str] | None:
        """An output of an unusual shape: (n, address, value, type), None for a shielded pseudo-output."""
        if type(out) is not dict:
            raise _err(where, f"outputs[{position}] must be an object")
        value = out.get("value")
        if type(value) is not int:
            problem = "missing field 'value'" if value is None else "field 'value' must be an integer"
            raise _err(where, f"outputs[{position}]: {problem}")
        if not 0 <= value <= MAX_AMOUNT:
            raise _err(where, f"outputs[{position}]: field 'value' {_amount_problem(value)}")
        script_hex = out.get("script_hex")
        if script_hex is None and out.get("type") == SHIELDED:
            return None
        n = out.get("index", position)
        if n is None:
            n = position
        if type(n) is not int:
            raise _err(where, f"outputs[{position}]: field 'index' must be an integer")
        if not 0 <= n <= MAX_INT32:
            raise _err(where, f"outputs[{position}]: field 'index' {_range_problem(n, MAX_INT32)}")
        if script_hex is not None:
            if type(script_hex) is not str:
                raise _err(where, f"outputs[{position}]: field 'script_hex' must be a string")
            address, script_type = self.output_script(script_hex, where)
        else:
            address = self.listed_address(out.get("addresses"), where, f"outputs[{position}].addresses")
            kind = ETL_TYPES.get(out.get("type") or "")
            script_type = (kind or ScriptType.NONSTANDARD).value
        return n, address, value, script_type

    def _input_slow(self, inp: Any, position: int, where: str) -> int:
        """An input of an unusual shape: the value of a shielded pseudo-input, or a ParseError."""
        if type(inp) is not dict:
            raise _err(where, f"inputs[{position}] must be an object")
        prev_txid = inp.get("spent_transaction_hash")
        value = inp.get("value")
        if value is not None and type(value) is not int:
            raise _err(where, f"inputs[{position}]: field 'value' must be an integer")
        if value is not None and not 0 <= value <= MAX_AMOUNT:
            raise _err(where, f"inputs[{position}]: field 'value' {_amount_problem(value)}")
        if prev_txid is None:
            if inp.get("type") == SHIELDED and value is not None:
                return value  # value leaving a shielded pool
            raise _err(where, f"inputs[{position}]: missing field 'spent_transaction_hash'")
        if type(prev_txid) is not str:
            raise _err(where, f"inputs[{position}]: field 'spent_transaction_hash' must be a string")
        prev_n = inp.get("spent_output_index")
        if type(prev_n) is not int:
            problem = ("missing field 'spent_output_index'" if prev_n is None
                       else "field 'spent_output_index' must be an integer")
            raise _err(where, f"inputs[{position}]: {problem}")
        checks: tuple[tuple[str, Any, int], ...] = (
            ("spent_output_index", prev_n, MAX_INT32), ("index", inp.get("index"), MAX_INT32),
            ("sequence", inp.get("sequence"), MAX_INT64))
        for field, number, top in checks:
            if type(number) is int and not 0 <= number <= top:
                raise _err(where, f"inputs[{position}]: field '{field}' {_range_problem(number, top)}")
        raise _err(where, f"inputs[{position}]: fields 'index' and 'sequence' must be integers")


def _amount_problem(value: int) -> str:
    return amount_problem(value) or "is not an amount"


def _range_problem(number: int, top: int) -> str:
    return f"{shown_number(number)} is out of range (0 to {top:,})"


def _err(where: str, problem: str) -> ParseError:
    """A ParseError for ``file:line``."""
    name, _, line = where.rpartition(":")
    return ParseError(name, line, problem)


def _required(row: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = row.get(key)
    if type(value) is not kind:
        if value is None:
            raise _err(where, f"missing field '{key}'")
        expected = "an integer" if kind is int else "a string"
        raise _err(where, f"field '{key}' must be {expected}, got {type(value).__name__}")
    if kind is int and not 0 <= cast(int, value) <= MAX_INT64:
        raise _err(where, f"field '{key}' {_range_problem(cast(int, value), MAX_INT64)}")
    return value


def read_bitcoin_etl(paths: list[Path], chain: str, *, batch_size: int = 20_000,
                     prefetch: bool = True, limits: InputLimits | None = None,
                     fast: bool | None = None) -> Iterator[UtxoBatch | UtxoTables]:
    """Batches of complete blocks from bitcoin-etl transactions JSON-lines files (plain or .gz).

    With ``prefetch`` the next batch is parsed while the caller writes this one: in a worker process
    for files of :data:`~fundtrail.chains.ahead.AHEAD_MIN_BYTES` or more (two cores), else in a thread
    (the store's database work runs outside the interpreter lock); at most one batch waits in between.
    Each file is read within ``limits`` (default: :func:`~fundtrail.limits.input_limits`, the
    environment's): decompressed size, blank lines and line length are bounded.

    ``fast`` (default: for uncompressed files of ``AHEAD_MIN_BYTES`` or more) reads plain exports with
    Arrow's JSON parser into :class:`~fundtrail.chains.tables.UtxoTables` (same rows, same batches; see
    :mod:`fundtrail.chains.bitcoin.etl_arrow`); from the first batch that is not plain on, the exact
    reader goes on, and names a bad line by file and line. Blank lines are not counted in uncompressed
    files read this way (the bound is for decompressed streams).
    """
    from fundtrail.chains.bitcoin.etl_arrow import plain_files

    files = [Path(p) for p in paths]
    bounds = limits or input_limits()
    regular = all(str(p) != STDIN and p.is_file() for p in files)
    large = regular and sum(p.stat().st_size for p in files) >= AHEAD_MIN_BYTES
    use_fast = (large if fast is None else fast) and regular and plain_files(files, bounds)
    batches: Iterator[UtxoBatch | UtxoTables]
    read = _read_fast if use_fast else _read_batches
    if use_fast and prefetch and large and len(files) == 1:
        # two reading processes take alternate parts of the file while this one writes
        batches = _read_in_two(files[0], chain, batch_size, bounds)
    elif prefetch and large:
        from fundtrail.chains.ahead import read_ahead

        # parsed in a worker process while this one writes: two cores, no shared interpreter lock
        batches = read_ahead(read, files, chain, batch_size, bounds)
    else:
        batches = read(files, chain, batch_size, bounds)
        if prefetch:
            batches = _prefetched(batches)
    for number, batch in enumerate(batches, 1):
        # Logged as the batch is handed over: batch N announced means batches before N were written.
        log.info("bitcoin-etl batch %d: blocks %d..%d, %d transactions", number, batch.blocks[0].height,
                 batch.blocks[-1].height, batch.tx_count)
        yield batch


_END = object()


def _read_fast(paths: list[Path], chain: str, batch_size: int, limits: InputLimits
               ) -> Iterator[UtxoBatch | UtxoTables]:
    """Arrow's reading of plain exports; from the first batch that is not plain on, the exact reader's
    (it cuts the same batches, so the ones already handed out are skipped)."""
    from fundtrail.chains.bitcoin.etl_arrow import NotPlain, read_tables

    handed = 0
    try:
        for tables in read_tables(paths, chain, batch_size, limits):
            yield tables
            handed += 1
        return
    except NotPlain as exc:
        log.info("bitcoin-etl: %s after %d batches; reading on with the exact reader", exc, handed)
    for number, batch in enumerate(_read_batches(paths, chain, batch_size, limits)):
        if number >= handed:
            yield batch


def _read_in_two(path: Path, chain: str, batch_size: int, limits: InputLimits
                 ) -> Iterator[UtxoBatch | UtxoTables]:
    """The file cut at block boundaries into parts read alternately by two worker processes (Arrow's
    reading: :func:`~fundtrail.chains.bitcoin.etl_arrow.span_tables`), batches handed out in file order.

    Batches are cut as the exact reader cuts them (:func:`~fundtrail.chains.bitcoin.etl_arrow.rebatched`).
    When a part is not plain, or a block shows up in two parts, the exact reader reads the file again
    and hands out its batches from the first one not handed out yet (it names the bad line).
    """
    from fundtrail.chains.ahead import read_ahead
    from fundtrail.chains.bitcoin.etl_arrow import NotPlain, rebatched, span_tables, spans_of

    spans = spans_of(path)
    if spans is None or len(spans) < 2:
        yield from read_ahead(_read_fast, [path], chain, batch_size, limits)
        return
    handed: set[int] = set()
    workers: list[Generator[Any, None, None]] = [
        read_ahead(span_tables, path, chain, limits, spans[k::2]) for k in (0, 1)]

    def in_order() -> Iterator[UtxoTables]:
        for number in range(len(spans)):
            part: UtxoTables = next(workers[number % 2])
            heights = [b.height for b in part.blocks]
            if handed.intersection(heights) or len(set(heights)) != len(heights):
                raise NotPlain("a block in two parts of the file")
            handed.update(heights)
            yield part

    done: set[int] = set()
    try:
        for tables in rebatched(in_order(), batch_size):
            yield tables
            done.update(b.height for b in tables.blocks)
        return
    except NotPlain as exc:
        log.info("bitcoin-etl: %s after %d blocks; reading on with the exact reader", exc, len(done))
    finally:
        for worker in workers:
            worker.close()
    # the same batches as the exact reader's: the ones handed out already are skipped
    for batch in _read_batches([path], chain, batch_size, limits):
        if not done.issuperset(b.height for b in batch.blocks):
            yield batch


def _prefetched(source: Iterator[Any]) -> Iterator[Any]:
    """Run ``source`` in a daemon thread, one item ahead; its exceptions are raised here."""
    handoff: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: Any, error: BaseException | None = None) -> bool:
        while not stop.is_set():
            try:
                handoff.put((item, error), timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in source:
                if not put(item):
                    break
            else:
                put(_END)
        except BaseException as exc:  # handed to the consumer, which raises it
            put(None, exc)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="bitcoin-etl-reader", daemon=True)
    thread.start()
    try:
        while True:
            item, error = handoff.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()


def _read_batches(paths: list[Path], chain: str, batch_size: int, limits: InputLimits) -> Iterator[UtxoBatch]:
    reader = _Reader(chain)
    chain_name = reader.chain
    loads = orjson.loads
    batch = UtxoBatch(chain_name)
    done: dict[int, str] = {}  # heights of blocks already read -> where they started
    block: _Block | None = None

    for raw, name, lineno in _lines(paths, limits):
        where = f"{name}:{lineno}"
        try:
            row = loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ParseError(name, str(lineno), f"malformed JSON ({exc})") from None
        if type(row) is not dict:
            raise ParseError(name, str(lineno), "a line must hold one JSON object (a transaction)")
        height = row.get("block_number")
        if block is None or height != block.height:
            height = _required(row, "block_number", int, where)
            if height in done:
                raise InputError(f"{where}: block {height} appears again after other blocks (first seen at "
                                 f"{done[height]}); sort the export by block_number and ingest it again")
            if block is not None:
                reader.add_block(batch, block)
                done[block.height] = block.first_line
                if batch.tx_count >= batch_size:
                    yield batch
                    batch = UtxoBatch(chain_name)
            block = _Block(height, _required(row, "block_hash", str, where),
                           _required(row, "block_timestamp", int, where), where)
        else:
            if row.get("block_hash") != block.hash:
                _required(row, "block_hash", str, where)
                raise ParseError(name, str(lineno), f"field 'block_hash' is {row.get('block_hash')} but "
                                                    f"block {block.height} started as {block.hash} at "
                                                    f"{block.first_line}")
            if type(row.get("block_timestamp")) is not int:
                _required(row, "block_timestamp", int, where)
        if type(row.get("hash")) is not str:
            _required(row, "hash", str, where)
        block.txs.append((row, where))

    if block is not None:
        reader.add_block(batch, block)
    if batch.blocks:
        yield batch
