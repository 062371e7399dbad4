"""bitcoin-etl exports read by Arrow's JSON parser into :class:`~fundtrail.chains.tables.UtxoTables`.

The exact reader (:mod:`fundtrail.chains.bitcoin.etl`) spends most of its time in Python per row. This one
parses the file with ``pyarrow.json`` against explicit column types and derives every column with array
operations; Python runs per distinct script (classified in batches, cached) and per distinct input
address, not per row. It gives the same rows and the same batch boundaries as the exact reader.

It takes *plain* exports only: rows of the shape bitcoin-etl writes (integer values within range, hex
scripts, the fields the store needs present). Arrow's parser is strict (a string where a number is
expected, a fraction, a duplicated key or any malformed JSON is refused), and every row is checked
against that shape. Anything else raises :class:`NotPlain` before the batch holding it is handed out;
:func:`fundtrail.chains.bitcoin.etl.read_bitcoin_etl` then reads on with the exact reader, which takes
the unusual shapes and names a bad line by file and line number.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from fundtrail.chains.bitcoin.scripts_arrow import template_addresses
from fundtrail.chains.tables import IN_SCHEMA, OUT_SCHEMA, TX_SCHEMA, UtxoTables
from fundtrail.domain.addresses import canonical_address
from fundtrail.domain.amounts import MAX_INT32, MAX_INT64
from fundtrail.domain.chains import get_chain
from fundtrail.domain.records import BlockRecord, PayloadColumns, PayloadKind, ScriptType
from fundtrail.domain.scripts import classify_scripts, op_return_data
from fundtrail.errors import InvalidAddressError
from fundtrail.limits import InputLimits

BLOCK_BYTES = 32 * 1024 * 1024
"""Bytes Arrow's parser reads at a time; a longer line makes the export not plain (the exact reader reads
it)."""

CACHE_BYTES = 24 * 1024 * 1024
"""Bytes each cache of a reader (scripts, derived addresses, listed addresses) may hold, estimated from its
texts (:data:`ENTRY_BYTES` more per entry); a full cache is emptied. Recent outputs are what inputs spend
most, so a few hundred thousand entries catch most repeats while a reading process stays small whatever
the input size."""

ENTRY_BYTES = 100
"""Estimated bytes of a cache entry beside its texts (string objects' headers, the hash table's slots)."""

PLACEHOLDER_PREFIX = "nonstandard"
_NULLDATA = ScriptType.NULLDATA.value
_INT64_MIN = -(2**63)

_INPUT = pa.struct([("index", pa.int64()), ("spent_transaction_hash", pa.string()),
                    ("spent_output_index", pa.int64()), ("sequence", pa.int64()),
                    ("addresses", pa.list_(pa.string())), ("value", pa.int64())])
_OUTPUT = pa.struct([("index", pa.int64()), ("script_hex", pa.string()), ("value", pa.int64())])
SCHEMA = pa.schema([("hash", pa.string()), ("size", pa.int64()), ("virtual_size", pa.int64()),
                    ("version", pa.int64()), ("lock_time", pa.int64()), ("block_number", pa.int64()),
                    ("block_hash", pa.string()), ("block_timestamp", pa.int64()), ("is_coinbase", pa.bool_()),
                    ("index", pa.int64()), ("inputs", pa.list_(_INPUT)), ("outputs", pa.list_(_OUTPUT))])
"""The columns read; other fields of a row are not looked at (as by the exact reader)."""


class NotPlain(Exception):
    """The export holds something only the exact reader takes (or refuses with file and line)."""


def plain_files(paths: list[Path], limits: InputLimits) -> bool:
    """Whether the files can be read here: regular, uncompressed, within the size bound."""
    total = 0
    for path in paths:
        if str(path) == "-" or not path.is_file() or path.suffix == ".gz":
            return False
        with path.open("rb") as probe:
            if probe.read(2) == b"\x1f\x8b":
                return False
        total += path.stat().st_size
    return total <= limits.max_decompressed_bytes


def _np(array: pa.Array | pa.ChunkedArray) -> np.ndarray[Any, Any]:
    return np.asarray(array.to_numpy(zero_copy_only=False))


def _require(ok: bool, why: str) -> None:
    if not ok:
        raise NotPlain(why)


def _no_nulls(array: pa.Array | pa.ChunkedArray, what: str) -> None:
    _require(array.null_count == 0, f"a row without {what}")


def _in_range(values: np.ndarray[Any, Any], top: int, what: str) -> None:
    if len(values):
        _require(bool(values.min() >= 0) and bool(values.max() <= top), f"{what} out of range")


def _list_positions(lengths: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(row of each element, position of each element in its row's list)."""
    rows = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.cumsum(lengths) - lengths
    return rows, np.arange(int(lengths.sum())) - np.repeat(starts, lengths)


def _sums(values: np.ndarray[Any, Any], lengths: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Per row, the exact sum of its elements' int64 values (refused when a sum leaves int64)."""
    ends = np.cumsum(lengths)
    rough = np.concatenate([np.zeros(1), np.cumsum(values, dtype=np.float64)])
    _require(not bool((np.abs(rough[ends] - rough[ends - lengths]) > 9.0e18).any()),
             "a transaction total beyond 64 bits")
    cum = np.concatenate([np.zeros(1, np.int64), np.cumsum(values, dtype=np.int64)])
    with np.errstate(over="ignore"):
        return np.asarray(cum[ends] - cum[ends - lengths])  # exact modulo 2**64: exact while each sum fits


class _Deriver:
    """Turns parsed rows of complete blocks into the store's columns; holds the caches."""

    def __init__(self, chain: str) -> None:
        self.params = get_chain(chain)
        self.chain = self.params.name
        self.scripts: dict[str, tuple[str | None, str]] = {}
        self.known: set[str] = set()  # addresses derived from scripts: canonical already
        self.listed: dict[str, str] = {}
        self.held = {"scripts": 0, "known": 0, "listed": 0}  # estimated bytes of each cache

    def _room(self, cache: str, adding: int) -> None:
        """Count ``adding`` bytes into ``cache``, emptying it first when they would not fit."""
        if self.held[cache] + adding > CACHE_BYTES:
            getattr(self, cache).clear()
            self.held[cache] = 0
        self.held[cache] += adding

    def classify(self, scripts: pa.Array) -> tuple[pa.Array, pa.Array]:
        """(address, script type) of each script given as hex: P2PKH and P2SH by array operations, the
        others per distinct script (classified together, cached)."""
        rows, addresses, types = template_addresses(self.params, scripts)
        self._room("known", addresses.nbytes + ENTRY_BYTES * len(addresses))
        self.known.update(addresses.to_pylist())
        if len(rows) == len(scripts):
            return addresses, types
        rest = np.ones(len(scripts), dtype=bool)
        rest[rows] = False
        others = np.flatnonzero(rest)
        other_addresses, other_types = self._classify_each(scripts.take(pa.array(others)))
        back = pa.array(np.argsort(np.concatenate([rows, others]), kind="stable"))
        return (pa.concat_arrays([addresses, other_addresses]).take(back),
                pa.concat_arrays([types, other_types]).take(back))

    def _classify_each(self, scripts: pa.Array) -> tuple[pa.Array, pa.Array]:
        """(address, script type) of each script given as hex; distinct new scripts classified at once."""
        uniq = pc.unique(scripts)
        texts: list[str] = uniq.to_pylist()
        cache = self.scripts
        new = [t for t in texts if t not in cache]
        if new:
            try:
                raw = [bytes.fromhex(t) for t in new]
            except ValueError:
                raise NotPlain("a script that is not hex") from None
            types, addresses = classify_scripts(self.params, raw)
            found = {t: (a, k.value) for t, a, k in zip(new, addresses, types, strict=True)}
            pairs = [found[t] if t in found else cache[t] for t in texts]
            derived = [a for a in addresses if a is not None]
            self._room("scripts", sum(len(t) + 2 * ENTRY_BYTES for t in new))
            cache.update(found)
            self._room("known", sum(len(a) + ENTRY_BYTES for a in derived))
            self.known.update(derived)
        else:
            pairs = [cache[t] for t in texts]
        at = pc.index_in(scripts, value_set=uniq)
        address = pa.array([p[0] for p in pairs], pa.string()).take(at)
        kind = pa.array([p[1] for p in pairs], pa.string()).take(at)
        return address, kind

    def canonical(self, texts: pa.Array) -> pa.Array:
        """The canonical form of each listed input address (placeholders: none)."""
        uniq = pc.unique(texts)
        out: list[str | None] = []
        known, listed, chain = self.known, self.listed, self.chain
        for text in uniq.to_pylist():
            if text.startswith(PLACEHOLDER_PREFIX):  # bitcoin-etl's made-up names: no address
                out.append(None)
                continue
            if text in known:
                out.append(text)
                continue
            found = listed.get(text)
            if found is None:
                try:
                    found = canonical_address(chain, text)
                except InvalidAddressError:
                    raise NotPlain("an input address that is not valid") from None
                self._room("listed", len(text) + len(found) + 2 * ENTRY_BYTES)
                listed[text] = found
            out.append(found)
        return pa.array(out, pa.string()).take(pc.index_in(texts, value_set=uniq))

    def derive(self, rows: pa.Table, height: np.ndarray[Any, Any], time: np.ndarray[Any, Any],
               ordinal: np.ndarray[Any, Any]) -> _Derived:
        """txs, outputs, inputs and payloads of rows of complete blocks (``time``: their block's,
        ``ordinal``: their position in it, the index of rows without one)."""
        n = rows.num_rows
        txid = rows.column("hash").combine_chunks()
        given = rows.column("index")
        tx_index_np = np.where(_np(given.is_null()), ordinal, _np(pc.fill_null(given, 0)))
        _in_range(tx_index_np, MAX_INT32, "'index'")
        tx_index = pa.array(tx_index_np, pa.int32())
        coinbase = rows.column("is_coinbase")
        _no_nulls(coinbase, "'is_coinbase'")
        size, vsize = rows.column("size"), rows.column("virtual_size")
        for what, col in (("'size'", size), ("'virtual_size'", vsize)):
            _in_range(_np(col.drop_null()), MAX_INT32, what)
        for what, col in (("'version'", rows.column("version")), ("'lock_time'", rows.column("lock_time"))):
            _require(not bool((_np(col.drop_null()) == _INT64_MIN).any()), f"{what} out of range")
        segwit = pc.fill_null(pc.less(vsize, size), False)

        # outputs
        outs = rows.column("outputs").combine_chunks()
        _no_nulls(outs, "'outputs'")
        o_len = _np(pc.list_value_length(outs)).astype(np.int64)
        o_row, o_pos = _list_positions(o_len)
        o = outs.flatten()
        _no_nulls(o, "an output object")
        o_value = pc.struct_field(o, "value")
        o_script = pc.struct_field(o, "script_hex")
        _no_nulls(o_value, "an output 'value'")
        _no_nulls(o_script, "an output 'script_hex'")
        o_value_np = _np(o_value)
        _in_range(o_value_np, MAX_INT64, "an output 'value'")
        o_index = pc.struct_field(o, "index")
        o_n = np.where(_np(o_index.is_null()), o_pos, _np(pc.fill_null(o_index, 0)))
        _in_range(o_n, MAX_INT32, "an output 'index'")
        o_address, o_type = self.classify(o_script)
        o_txid = txid.take(pa.array(o_row))
        o_height = height[o_row]
        payloads = PayloadColumns()
        nulldata = np.flatnonzero(_np(pc.equal(o_type, _NULLDATA)))
        if len(nulldata):
            scripts = o_script.take(pa.array(nulldata)).to_pylist()
            for at, script_hex in zip(nulldata.tolist(), scripts, strict=True):
                payload = op_return_data(bytes.fromhex(script_hex))
                if payload:
                    payloads.add(txid[o_row[at]].as_py(), int(o_height[at]), int(o_n[at]),
                                 PayloadKind.OP_RETURN, payload.hex())

        # inputs
        ins = rows.column("inputs").combine_chunks()
        i_len = _np(pc.fill_null(pc.list_value_length(ins), 0)).astype(np.int64)
        i_row, i_pos = _list_positions(i_len)
        i = ins.flatten()
        _no_nulls(i, "an input object")
        _no_nulls(pc.struct_field(i, "spent_transaction_hash"), "an input 'spent_transaction_hash'")
        prev_n = pc.struct_field(i, "spent_output_index")
        _no_nulls(prev_n, "an input 'spent_output_index'")
        _in_range(_np(prev_n), MAX_INT32, "an input 'spent_output_index'")
        i_index = pc.struct_field(i, "index")
        i_n = np.where(_np(i_index.is_null()), i_pos, _np(pc.fill_null(i_index, 0)))
        _in_range(i_n, MAX_INT32, "an input 'index'")
        _in_range(_np(pc.struct_field(i, "sequence").drop_null()), MAX_INT64, "an input 'sequence'")
        i_value = pc.struct_field(i, "value")
        valued = _np(i_value.is_valid())
        i_value_np = _np(pc.fill_null(i_value, 0))
        _in_range(i_value_np, MAX_INT64, "an input 'value'")
        names = pc.struct_field(i, "addresses")
        one = valued & (_np(pc.fill_null(pc.list_value_length(names), 0)) == 1)
        first = pc.list_element(names.filter(pa.array(one)), 0) if one.any() else pa.array([], pa.string())
        _no_nulls(first, "a string in an input's 'addresses'")
        i_address = pa.nulls(len(i), pa.string())
        if len(first):
            first_at = np.where(one, np.cumsum(one) - 1, 0)
            i_address = pc.if_else(pa.array(one), self.canonical(first).take(pa.array(first_at)),
                                   pa.scalar(None, pa.string()))

        # fees: inputs minus outputs when every input value is known; none for coinbase transactions
        unknown = np.bincount(i_row[~valued], minlength=n) if len(i_row) else np.zeros(n, np.int64)
        fee_np = _sums(i_value_np, i_len) - _sums(o_value_np, o_len)
        fee_null = (unknown > 0) | _np(coinbase)
        fee = pa.array(fee_np, pa.int64(), mask=fee_null)

        txs = pa.Table.from_arrays([
            txid, pa.array(height, pa.int64()), pa.array(time, pa.int64()),
            tx_index, fee, coinbase.combine_chunks(),
            pc.cast(size, pa.int32()).combine_chunks(), pc.cast(vsize, pa.int32()).combine_chunks(),
            rows.column("version").combine_chunks(), rows.column("lock_time").combine_chunks(),
            segwit.combine_chunks()], schema=TX_SCHEMA)
        outputs = pa.Table.from_arrays([
            o_txid, pa.array(o_n, pa.int32()), pa.array(o_height, pa.int64()), o_address, o_value, o_type],
            schema=OUT_SCHEMA)
        inputs = pa.Table.from_arrays([
            txid.take(pa.array(i_row)), pa.array(i_n, pa.int32()), pa.array(height[i_row], pa.int64()),
            pc.struct_field(i, "spent_transaction_hash"), pc.cast(prev_n, pa.int32()),
            pc.struct_field(i, "sequence"), i_address,
            pa.array(i_value_np, pa.int64(), mask=~valued)], schema=IN_SCHEMA)
        return _Derived(txs, outputs, inputs, payloads, np.concatenate([[0], np.cumsum(o_len)]),
                        np.concatenate([[0], np.cumsum(i_len)]))


class _Derived:
    """Derived columns of consecutive transactions; :meth:`part` takes those of ``lo..hi``."""

    def __init__(self, txs: pa.Table, outputs: pa.Table, inputs: pa.Table, payloads: PayloadColumns,
                 out_at: np.ndarray[Any, Any], in_at: np.ndarray[Any, Any]) -> None:
        self.txs, self.outputs, self.inputs, self.payloads = txs, outputs, inputs, payloads
        self.out_at, self.in_at = out_at, in_at

    def part(self, lo: int, hi: int, heights: set[int]
             ) -> tuple[pa.Table, pa.Table, pa.Table, PayloadColumns]:
        """Transactions ``lo..hi`` (of the blocks at ``heights``) with their outputs, inputs and payloads."""
        if lo == 0 and hi == self.txs.num_rows:
            return self.txs, self.outputs, self.inputs, self.payloads
        o_lo, o_hi = int(self.out_at[lo]), int(self.out_at[hi])
        i_lo, i_hi = int(self.in_at[lo]), int(self.in_at[hi])
        part = PayloadColumns()
        p = self.payloads
        for row in range(len(p)):
            if p.height[row] in heights:
                part.txid.append(p.txid[row])
                part.height.append(p.height[row])
                part.n.append(p.n[row])
                part.kind.append(p.kind[row])
                part.data.append(p.data[row])
        return (self.txs.slice(lo, hi - lo), self.outputs.slice(o_lo, o_hi - o_lo),
                self.inputs.slice(i_lo, i_hi - i_lo), part)


class _Range(io.RawIOBase):
    """Bytes ``start..end`` of a file, as a stream."""

    def __init__(self, path: Path, start: int, end: int) -> None:
        super().__init__()
        self._file = path.open("rb", buffering=0)
        self._file.seek(start)
        self._left = end - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)[:self._left]
        got = self._file.readinto(view) or 0
        self._left -= got
        return got

    def close(self) -> None:
        self._file.close()
        super().close()


Span = tuple[Path, int, int | None]
"""A file, or bytes ``start..end`` of it (``end`` None: the whole file)."""


def _parsed(spans: list[Span], limits: InputLimits) -> Iterator[pa.Table]:
    """The rows of the files (or of parts of them), in order, a parser block at a time."""
    block = max(1024, min(BLOCK_BYTES, limits.max_line_bytes))
    options = pj.ParseOptions(explicit_schema=SCHEMA, unexpected_field_behavior="ignore")
    for path, start, end in spans:
        if (path.stat().st_size if end is None else end - start) == 0:
            continue
        source: Any = path if end is None else io.BufferedReader(_Range(path, start, end), 1 << 20)
        try:
            reader = pj.open_json(source, read_options=pj.ReadOptions(block_size=block, use_threads=False),
                                  parse_options=options)
            for batch in reader:
                yield pa.Table.from_batches([batch])
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise NotPlain(f"{path}: {str(exc).splitlines()[0]}") from None


def read_tables(paths: list[Path], chain: str, batch_size: int, limits: InputLimits, *,
                spans: list[Span] | None = None, deriver: _Deriver | None = None) -> Iterator[UtxoTables]:
    """Batches of complete blocks, as the exact reader cuts them; :class:`NotPlain` when it must read.

    ``spans`` reads parts of the files instead (each cut at a block boundary: see :func:`spans_of`).
    """
    deriver = deriver or _Deriver(chain)
    name = deriver.chain
    done: set[int] = set()
    carry: pa.Table | None = None  # rows of the block that may go on in the next parser block
    parts: list[tuple[pa.Table, pa.Table, pa.Table, PayloadColumns]] = []
    blocks: list[BlockRecord] = []
    pending = 0

    def cut() -> UtxoTables:
        nonlocal parts, blocks, pending
        # contiguous copies: a slice would carry (and pickle) the whole parser block it came from
        txs = pa.concat_tables([p[0] for p in parts]).combine_chunks()
        outputs = pa.concat_tables([p[1] for p in parts]).combine_chunks()
        inputs = pa.concat_tables([p[2] for p in parts]).combine_chunks()
        payloads = PayloadColumns()
        for p in parts:
            for column in ("txid", "height", "n", "kind", "data"):
                getattr(payloads, column).extend(getattr(p[3], column))
        out = UtxoTables(name, blocks, txs, outputs, inputs, payloads)
        parts, blocks, pending = [], [], 0
        return out

    def take(rows: pa.Table, final: bool) -> Iterator[UtxoTables]:
        """Write out the complete blocks of ``rows``; keep the last one back unless ``final``."""
        nonlocal carry, pending
        for column in ("hash", "block_number", "block_hash", "block_timestamp"):
            _no_nulls(rows.column(column), repr(column))
        number = _np(rows.column("block_number"))
        _in_range(number, MAX_INT64, "'block_number'")
        _in_range(_np(rows.column("block_timestamp")), MAX_INT64, "'block_timestamp'")
        starts = np.flatnonzero(np.concatenate([[True], number[1:] != number[:-1]]))
        ends = np.append(starts[1:], len(number))
        run = np.repeat(np.arange(len(starts)), ends - starts)
        block_hash = rows.column("block_hash").combine_chunks()
        _require(bool(pc.all(pc.equal(block_hash, block_hash.take(pa.array(starts[run])))).as_py()),
                 "rows of one block with different block hashes")
        complete = len(starts) if final else len(starts) - 1
        if not final:
            carry = rows.slice(int(starts[-1]))
        if complete == 0:
            return
        heights = number[starts[:complete]].tolist()
        _require(len(set(heights)) == len(heights) and not done.intersection(heights),
                 "a block that appears again after other blocks")
        done.update(heights)
        stop = int(ends[complete - 1])
        times_of_block = _np(rows.column("block_timestamp"))[starts[:complete]]
        derived = deriver.derive(rows.slice(0, stop), number[:stop], times_of_block[run[:stop]],
                                 np.arange(stop) - starts[run[:stop]])
        hashes = block_hash.take(pa.array(starts[:complete])).to_pylist()
        # cut where the exact reader cuts: after the block that brings the batch to batch_size
        first = 0
        for k in range(complete):
            blocks.append(BlockRecord(name, heights[k], hashes[k], None, int(times_of_block[k]),
                                      int(ends[k] - starts[k])))
            pending += int(ends[k] - starts[k])
            if pending >= batch_size or (final and k == complete - 1):
                parts.append(derived.part(int(starts[first]), int(ends[k]), set(heights[first:k + 1])))
                first = k + 1
                yield cut()
        if first < complete:
            parts.append(derived.part(int(starts[first]), stop, set(heights[first:complete])))

    for rows in _parsed(spans or [(p, 0, None) for p in paths], limits):
        if carry is not None and carry.num_rows:
            rows = pa.concat_tables([carry, rows])
        carry = None
        if rows.num_rows:
            yield from take(rows, final=False)
    if carry is not None and carry.num_rows:
        yield from take(carry, final=True)
    elif parts:
        yield cut()


SPAN_BYTES = 8 * 1024 * 1024
"""Bytes of a file each of two reading processes takes at a time (see :func:`spans_of`)."""


def _row_at(f: Any, offset: int, total: int) -> tuple[int, int | None] | None:
    """(start, block number) of the first non-blank line starting after ``offset`` ((total, None) at the
    end); None when that line is not a transaction row."""
    f.seek(offset)
    if offset:
        f.readline()  # the rest of the line the offset falls in
    while True:
        start = f.tell()
        line = f.readline()
        if not line:
            return total, None
        if line.strip():
            break
    try:
        number = orjson.loads(line).get("block_number")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return (start, number) if type(number) is int else None


def _next_block(f: Any, offset: int, total: int) -> int | None:
    """The start of the first block that begins after ``offset`` (``total``: none), found by galloping
    and bisecting over byte offsets (a block's rows are contiguous); None when a row is not one."""
    first = _row_at(f, offset, total)
    if first is None or first[1] is None:
        return None if first is None else total
    same, number = first
    step = 1 << 16
    while True:  # gallop to a row of another block
        probe = _row_at(f, min(same + step, total), total)
        if probe is None:
            return None
        if probe[1] != number:
            other = probe[0]
            break
        same = probe[0]
        step *= 2
    while other - same > 1 << 16:  # bisect: ``same`` starts a row of the block, ``other`` one after it
        probe = _row_at(f, (same + other) // 2, total)
        if probe is None:
            return None
        if probe[0] >= other:  # one long row: scan from ``same``
            break
        if probe[1] == number:
            same = probe[0]
        else:
            other = probe[0]
    f.seek(same)
    while True:  # the last rows, one by one
        start = f.tell()
        line = f.readline()
        if not line:
            return total
        if not line.strip():
            continue
        try:
            found = orjson.loads(line).get("block_number")
        except (orjson.JSONDecodeError, AttributeError):
            return None
        if found != number:
            return start if type(found) is int else None


def spans_of(path: Path, size: int | None = None) -> list[Span] | None:
    """The file cut into parts of about ``size`` bytes (default :data:`SPAN_BYTES`), each starting at a
    block's first row, so that parts can be read apart; None when a cut cannot be placed (a line that is
    not a transaction row)."""
    size = size or SPAN_BYTES
    total = path.stat().st_size
    cuts = [0]
    with path.open("rb") as f:
        at = size
        while at < total:
            start = _next_block(f, at, total)
            if start is None:
                return None
            if start >= total:
                break
            if start > cuts[-1]:
                cuts.append(start)
            at = max(start, at) + size
    bounds = [*cuts, total]
    return [(path, bounds[k], bounds[k + 1]) for k in range(len(cuts))]


def span_tables(path: Path, chain: str, limits: InputLimits, spans: list[Span]) -> Iterator[UtxoTables]:
    """The blocks of each span in turn, one :class:`UtxoTables` per span (for a reading process: see
    :func:`fundtrail.chains.bitcoin.etl.read_bitcoin_etl`; :func:`rebatched` cuts them into batches)."""
    deriver = _Deriver(chain)
    for span in spans:
        found = list(read_tables([path], chain, 2**62, limits, spans=[span], deriver=deriver))
        yield found[0] if found else UtxoTables(deriver.chain, [], _empty(TX_SCHEMA), _empty(OUT_SCHEMA),
                                                _empty(IN_SCHEMA))


def _empty(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()


def _block_offsets(table: pa.Table, heights: list[int]) -> np.ndarray[Any, Any]:
    """Row offsets of each block's rows (blocks in ``heights`` order, each block's rows together)."""
    found, counts = np.unique(_np(table.column("height")), return_counts=True)
    by_height = dict(zip(found.tolist(), counts.tolist(), strict=True))
    return np.concatenate([[0], np.cumsum([by_height.get(h, 0) for h in heights])]).astype(np.int64)


def rebatched(parts: Iterator[UtxoTables], batch_size: int) -> Iterator[UtxoTables]:
    """The blocks of consecutive parts cut into batches as the exact reader cuts them (a batch ends
    after the block that brings it to ``batch_size`` transactions)."""
    Offsets = np.ndarray[Any, Any]
    pieces: list[tuple[UtxoTables, int, int, Offsets, Offsets, Offsets]] = []
    pending = 0

    def cut() -> UtxoTables:
        nonlocal pieces, pending
        blocks: list[BlockRecord] = []
        tables: list[list[pa.Table]] = [[], [], []]
        payloads = PayloadColumns()
        for part, lo, hi, tx_at, out_at, in_at in pieces:
            blocks += part.blocks[lo:hi]
            sources = ((part.txs, tx_at), (part.outputs, out_at), (part.inputs, in_at))
            for k, (table, at) in enumerate(sources):
                tables[k].append(table.slice(int(at[lo]), int(at[hi] - at[lo])))
            heights = {b.height for b in part.blocks[lo:hi]}
            p = part.payloads
            for row in range(len(p)):
                if p.height[row] in heights:
                    payloads.add(p.txid[row], p.height[row], p.n[row], PayloadKind(p.kind[row]), p.data[row])
        txs, outputs, inputs = (pa.concat_tables(t).combine_chunks() for t in tables)
        pieces, pending = [], 0
        return UtxoTables(parts_chain, blocks, txs, outputs, inputs, payloads)

    parts_chain = ""
    for part in parts:
        parts_chain = part.chain
        heights = [b.height for b in part.blocks]
        tx_at = _block_offsets(part.txs, heights)
        out_at = _block_offsets(part.outputs, heights)
        in_at = _block_offsets(part.inputs, heights)
        first = 0
        for k, block in enumerate(part.blocks):
            pending += block.tx_count
            if pending >= batch_size:
                pieces.append((part, first, k + 1, tx_at, out_at, in_at))
                first = k + 1
                yield cut()
        if first < len(part.blocks):
            pieces.append((part, first, len(part.blocks), tx_at, out_at, in_at))
    if pieces:
        yield cut()
