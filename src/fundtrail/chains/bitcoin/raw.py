"""Raw Bitcoin blocks and transactions: parsing, validation and the block-file reader.

Parses the consensus serialization (legacy and BIP144 segwit), computes txids, block hashes and
merkle roots, and reads Bitcoin Core ``blk*.dat`` files (network magic + little-endian length per
block) or single raw blocks (``.blk``), transparently decompressing ``.bz2``, ``.gz`` and ``.xz``.
Files are streamed one block at a time.

Hashes are shown the Bitcoin way: double SHA-256, byte-reversed hex. Amounts are satoshi ints.

Speed matters here (every transaction of a chain goes through it): the parser works on ``bytes``
with precompiled ``struct`` readers and inlined varints, and :func:`read_block_files` fills the
columnar batch straight from the scan without building per-input or per-output objects.
"""

from __future__ import annotations

import bz2
import gc
import gzip
import hashlib
import io
import logging
import lzma
import queue
import struct
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from fundtrail.chains.ahead import AHEAD_MIN_BYTES
from fundtrail.chains.bitcoin.scripts_arrow import classify_raw_scripts
from fundtrail.domain.chains import CHAINS, ChainParams, get_chain
from fundtrail.domain.records import BlockRecord, PayloadKind, ScriptType, UtxoBatch
from fundtrail.domain.scripts import op_return_data
from fundtrail.errors import BlockValidationError, InputError, ParseError

log = logging.getLogger(__name__)

_U16 = struct.Struct("<H").unpack_from
_U32 = struct.Struct("<I").unpack_from
_I32 = struct.Struct("<i").unpack_from
_U64 = struct.Struct("<Q").unpack_from
_I64 = struct.Struct("<q").unpack_from
_HEADER = struct.Struct("<i32s32sIII").unpack_from
_FRAME = struct.Struct("<4sI").unpack
_sha256 = hashlib.sha256

ZERO_HASH = "00" * 32
_NULL_PREV = bytes(32)
COINBASE_PREV_N = 0xFFFFFFFF
HEADER_SIZE = 80
MAX_BLOCK_BYTES = 32 * 1024 * 1024
"""Largest frame length accepted (Bitcoin Core's MAX_SIZE for a network message)."""

DEFAULT_BATCH_TXS = 20_000
"""Transactions per batch of :func:`read_block_files` (a batch is cut at the next block boundary)."""

MAX_PENDING_BLOCKS = 20_000
"""Blocks held back waiting for their parent (blk*.dat files are written out of order)."""

GENESIS_HASHES: dict[str, str] = {
    "btc": "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
    "btc-testnet": "000000000933ea01ad0ee984209779baaef3ee1c7e8d04a68ad7dd66ec17f6d3",
    "btc-regtest": "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
    "ltc": "12a765e31ffd4059bada1e25190f6e98c99d9714d334efa41a195a7e7e04bfe2",
}
"""Genesis block hashes, so that a file starting at block 1 can be placed without the genesis block."""


# ------------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True, slots=True)
class BlockHeader:
    """The 80-byte block header. Hashes are display hex (byte-reversed)."""

    version: int
    prev_hash: str
    merkle_root: str
    time: int
    bits: int
    nonce: int
    hash: str


class TxIn(NamedTuple):
    """A transaction input (an immutable tuple: cheaper than a dataclass for thousands per block)."""

    prev_txid: str
    prev_n: int
    script_sig: bytes
    sequence: int
    witness: tuple[bytes, ...]


class TxOut(NamedTuple):
    """A transaction output: value in satoshi and the output script (scriptPubKey)."""

    value: int
    script: bytes


@dataclass(frozen=True, slots=True)
class Transaction:
    """A parsed transaction. ``size`` is the full serialized size, ``weight`` per BIP141."""

    txid: str
    wtxid: str
    version: int
    locktime: int
    inputs: tuple[TxIn, ...]
    outputs: tuple[TxOut, ...]
    size: int
    weight: int
    segwit: bool

    @property
    def vsize(self) -> int:
        """Virtual size: weight / 4, rounded up."""
        return (self.weight + 3) // 4

    @property
    def is_coinbase(self) -> bool:
        """True for a coinbase transaction (one input spending the null outpoint)."""
        return (len(self.inputs) == 1 and self.inputs[0].prev_txid == ZERO_HASH
                and self.inputs[0].prev_n == COINBASE_PREV_N)

    @property
    def output_value(self) -> int:
        """Sum of the output values in satoshi."""
        return sum(o.value for o in self.outputs)


@dataclass(frozen=True, slots=True)
class Block:
    """A parsed block whose merkle root has been checked."""

    header: BlockHeader
    txs: tuple[Transaction, ...]
    size: int
    weight: int

    @property
    def hash(self) -> str:
        """The block hash (display hex)."""
        return self.header.hash

    @property
    def bip34_height(self) -> int | None:
        """The height pushed by the coinbase (BIP34, block version 2 and later), if any."""
        if self.header.version < 2 or not self.txs or not self.txs[0].is_coinbase:
            return None
        return bip34_height(self.txs[0].inputs[0].script_sig)


# ------------------------------------------------------------------------------------------------
# Parsing


class _Malformed(Exception):
    """Internal: a structural problem found while scanning (turned into a named InputError)."""


def _dsha(data: bytes) -> bytes:
    return _sha256(_sha256(data).digest()).digest()


def _varint_wide(data: bytes, pos: int) -> tuple[int, int]:
    """A varint whose first byte is 0xfd..0xff (the caller handles the one-byte case inline)."""
    b = data[pos]
    if b == 0xFD:
        return _U16(data, pos + 1)[0], pos + 3
    if b == 0xFE:
        value, end = _U32(data, pos + 1)[0], pos + 5
    else:
        value, end = _U64(data, pos + 1)[0], pos + 9
    if value > len(data):  # every counted item takes at least a byte: the data cannot hold them
        raise IndexError(f"count or length {value} runs past the end of the data")
    return value, end


def _scan_tx(data: bytes, pos: int, keep_witness: bool) -> tuple:  # type: ignore[type-arg]
    """Scan one transaction at ``pos``.

    Returns ``(txid_raw, wtxid_raw, version, locktime, segwit, size, base_size, inputs, outputs,
    witnesses, end)`` with inputs as ``(prev_raw, prev_n, script_sig, sequence)`` and outputs as
    ``(value, script)``; ``witnesses`` is a list per input when ``keep_witness`` else ``None``.
    Raises IndexError/struct.error on truncation and _Malformed on a bad structure.
    """
    start = pos
    version = _U32(data, pos)[0]
    pos += 4
    segwit = data[pos] == 0
    if segwit:
        flag = data[pos + 1]
        if flag != 1:
            raise _Malformed(f"unknown transaction optional data flag 0x{flag:02x}")
        pos += 2
    body = pos
    n = data[pos]
    if n < 0xFD:
        pos += 1
    else:
        n, pos = _varint_wide(data, pos)
    inputs: list[tuple[bytes, int, bytes, int]] = []
    append = inputs.append
    for _ in range(n):
        prev = data[pos:pos + 32]
        prev_n = _U32(data, pos + 32)[0]
        k = data[pos + 36]
        if k < 0xFD:
            pos += 37
        else:
            k, pos = _varint_wide(data, pos + 36)
        end = pos + k
        append((prev, prev_n, data[pos:end], _U32(data, end)[0]))
        pos = end + 4
    if segwit and not inputs:
        raise _Malformed("segwit transaction without inputs")
    n = data[pos]
    if n < 0xFD:
        pos += 1
    else:
        n, pos = _varint_wide(data, pos)
    outputs: list[tuple[int, bytes]] = []
    append_out = outputs.append
    for _ in range(n):
        value = _I64(data, pos)[0]
        k = data[pos + 8]
        if k < 0xFD:
            pos += 9
        else:
            k, pos = _varint_wide(data, pos + 8)
        end = pos + k
        append_out((value, data[pos:end]))
        pos = end
    body_end = pos
    witnesses: list[tuple[bytes, ...]] | None = None
    if segwit:
        if keep_witness:
            witnesses = []
        for _ in range(len(inputs)):
            n = data[pos]
            if n < 0xFD:
                pos += 1
            else:
                n, pos = _varint_wide(data, pos)
            items: list[bytes] | None = [] if keep_witness else None
            for _ in range(n):
                k = data[pos]
                if k < 0xFD:
                    pos += 1
                else:
                    k, pos = _varint_wide(data, pos)
                if items is not None:
                    items.append(data[pos:pos + k])
                pos += k
            if witnesses is not None and items is not None:
                witnesses.append(tuple(items))
    locktime = _U32(data, pos)[0]
    pos += 4
    if pos > len(data):
        raise IndexError("transaction runs past the end of the data")
    size = pos - start
    if segwit:
        stripped = data[start:start + 4] + data[body:body_end] + data[pos - 4:pos]
        base_size = len(stripped)
        txid = _dsha(stripped)
        wtxid = _dsha(data[start:pos]) if keep_witness else txid
    else:
        base_size = size
        txid = wtxid = _dsha(data[start:pos])
    return txid, wtxid, version, locktime, segwit, size, base_size, inputs, outputs, witnesses, pos


def merkle_root(hashes: list[bytes]) -> bytes:
    """The merkle root (internal byte order) of txids in internal byte order."""
    if not hashes:
        return bytes(32)
    level = hashes
    while len(level) > 1:
        if len(level) & 1:
            level = level + [level[-1]]
        level = [_dsha(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def bip34_height(script_sig: bytes) -> int | None:
    """The block height a coinbase scriptSig starts with (BIP34), or None when it has none."""
    if not script_sig:
        return None
    op = script_sig[0]
    if op == 0:
        return 0
    if 0x51 <= op <= 0x60:
        return op - 0x50
    if 1 <= op <= 8 and len(script_sig) > op:
        raw = script_sig[1:1 + op]
        if raw[-1] & 0x80:
            return None  # negative: not a height
        return int.from_bytes(raw, "little")
    return None


def parse_header(data: bytes) -> BlockHeader:
    """Parse an 80-byte block header (extra bytes are ignored)."""
    if len(data) < HEADER_SIZE:
        raise ParseError("<header>", None, f"block header of {len(data)} bytes (needs 80)")
    version, prev, merkle, time, bits, nonce = _HEADER(data, 0)
    return BlockHeader(version, prev[::-1].hex(), merkle[::-1].hex(), time, bits, nonce,
                       _dsha(data[:HEADER_SIZE])[::-1].hex())


class _ScannedBlock(NamedTuple):
    """Internal: a block scanned and checked, its transactions as raw tuples."""

    hash: str
    prev_hash: str
    version: int
    time: int
    header: bytes
    txs: list[tuple]  # type: ignore[type-arg]
    size: int


def _scan_block(data: bytes, source: str, where: str, keep_witness: bool) -> _ScannedBlock:
    """Scan a serialized block, check that it is used up exactly and that its merkle root matches."""
    if len(data) < HEADER_SIZE + 1:
        raise BlockValidationError(source, where, f"{len(data)} bytes is too short for a block")
    header = data[:HEADER_SIZE]
    block_hash = _dsha(header)[::-1].hex()
    version, prev, merkle, time, _bits, _nonce = _HEADER(header, 0)
    label = f"{block_hash} ({where})" if where else block_hash
    pos = HEADER_SIZE
    txs = []
    counted = False
    try:
        n = data[pos]
        if n < 0xFD:
            pos += 1
        else:
            n, pos = _varint_wide(data, pos)
        counted = True
        if n == 0:
            raise _Malformed("block without transactions")
        for _ in range(n):
            tx = _scan_tx(data, pos, keep_witness)
            txs.append(tx)
            pos = tx[-1]
    except (IndexError, struct.error):
        what = (f"unparseable transaction {len(txs)} at block byte {pos}: it runs" if counted
                else "truncated: the transaction count runs")
        raise BlockValidationError(source, label, f"{what} past the end of the {len(data)}-byte "
                                   "block") from None
    except _Malformed as exc:
        what = f"unparseable transaction {len(txs)} at block byte {pos}: " if txs or n else ""
        raise BlockValidationError(source, label, f"{what}{exc}") from None
    if pos != len(data):
        raise BlockValidationError(source, label, f"{len(data) - pos} bytes left over after the "
                                   f"{len(txs)} transactions")
    computed = merkle_root([t[0] for t in txs])
    if computed != merkle:
        raise BlockValidationError(source, label, f"merkle root {merkle[::-1].hex()} in the header does "
                                   f"not match the transactions ({computed[::-1].hex()})")
    return _ScannedBlock(block_hash, prev[::-1].hex(), version, time, header, txs, len(data))


def _transaction(t: tuple) -> Transaction:  # type: ignore[type-arg]
    txid, wtxid, version, locktime, segwit, size, base_size, ins, outs, wits, _end = t
    if wits is None:
        wits = [()] * len(ins)
    inputs = tuple(TxIn(p[::-1].hex(), n, s, q, w) for (p, n, s, q), w in zip(ins, wits, strict=True))
    outputs = tuple(TxOut(v, s) for v, s in outs)
    return Transaction(txid[::-1].hex(), wtxid[::-1].hex(), version, locktime, inputs, outputs, size,
                       base_size * 3 + size, segwit)


def parse_transaction(data: bytes) -> Transaction:
    """Parse one serialized transaction (legacy or BIP144 segwit); the data must be used up exactly."""
    data = bytes(data)
    try:
        t = _scan_tx(data, 0, True)
    except (IndexError, struct.error):
        raise ParseError("<transaction>", None, f"truncated transaction ({len(data)} bytes)") from None
    except _Malformed as exc:
        raise ParseError("<transaction>", None, f"unparseable transaction: {exc}") from None
    if t[-1] != len(data):
        raise ParseError("<transaction>", f"byte {t[-1]}", f"{len(data) - t[-1]} bytes left over after "
                         "the transaction")
    return _transaction(t)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a block is parsed.

    Parsing allocates many small acyclic objects, which trigger collections that scan everything
    the process holds; pausing saves a fifth to a third of the time and cannot leak (no cycles).
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def parse_block(data: bytes, *, source: str = "<block>") -> Block:
    """Parse and check a serialized block; raises BlockValidationError naming ``source`` and the block."""
    data = bytes(data)
    with _gc_paused():
        scanned = _scan_block(data, source, "", True)
        header = parse_header(scanned.header)
        txs = tuple(_transaction(t) for t in scanned.txs)
    count_len = len(data) - HEADER_SIZE - sum(t.size for t in txs)
    weight = (HEADER_SIZE + count_len) * 4 + sum(t.weight for t in txs)
    return Block(header, txs, len(data), weight)


# ------------------------------------------------------------------------------------------------
# Files


_COMPRESSION_MAGIC = ((b"BZh", "bz2"), (b"\x1f\x8b", "gz"), (b"\xfd7zXZ\x00", "xz"))


def _compression(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in (".bz2", ".gz", ".xz"):
        return suffix[1:]
    with path.open("rb") as f:
        head = f.read(6)
    for magic, kind in _COMPRESSION_MAGIC:
        if head.startswith(magic):
            return kind
    return None


def block_xor_key(path: Path) -> bytes | None:
    """The obfuscation key of a Bitcoin Core (28+) blocks folder (``xor.dat`` beside the file), if any."""
    key_file = path.parent / "xor.dat"
    if not key_file.is_file():
        return None
    key = key_file.read_bytes()
    if len(key) != 8:
        raise ParseError(str(key_file), None, f"an obfuscation key of {len(key)} bytes (expected 8)")
    return key if key.strip(b"\x00") else None


class _Unxored(io.RawIOBase):
    """A raw stream undoing Bitcoin Core's block-file obfuscation (XOR with a repeating 8-byte key)."""

    def __init__(self, stream: BinaryIO, key: bytes) -> None:
        self._stream = stream
        self._key = key
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(len(buffer))
        n = len(data)
        if n:
            shift = self._pos % 8
            stream_key = (self._key[shift:] + self._key[:shift]) * (n // 8 + 1)
            plain = (int.from_bytes(data, "little") ^ int.from_bytes(stream_key[:n], "little"))
            buffer[:n] = plain.to_bytes(n, "little")
            self._pos += n
        return n

    def close(self) -> None:
        self._stream.close()
        super().close()


def open_block_file(path: str | Path) -> BinaryIO:
    """Open a block file for streaming reads.

    Decompresses .bz2/.gz/.xz (by extension or content) and undoes Bitcoin Core's obfuscation of
    plain ``blk*.dat`` files when the folder has a non-zero ``xor.dat``.
    """
    p = Path(path)
    kind = _compression(p)
    if kind == "bz2":
        return bz2.open(p, "rb")  # type: ignore[return-value]
    if kind == "gz":
        return gzip.open(p, "rb")  # type: ignore[return-value]
    if kind == "xz":
        return lzma.open(p, "rb")  # type: ignore[return-value]
    key = block_xor_key(p)
    if key is not None:
        return io.BufferedReader(_Unxored(p.open("rb"), key), buffer_size=1 << 20)
    return p.open("rb")


def block_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files to read: each file as given; a folder stands for its ``blk*.dat`` files in order."""
    files: list[Path] = []
    for raw_path in paths:
        path = Path(raw_path)
        if path.is_dir():
            found = sorted(path.glob("blk*.dat"))
            if not found:
                raise ParseError(str(path), None, "a folder without blk*.dat files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ParseError(str(path), None, "no such file")
    return files


def _magic_owner(magic: bytes) -> str | None:
    owners = [p.name for p in CHAINS.values() if p.magic == magic]
    return ", ".join(owners) if owners else None


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes (fewer only at the end of the stream)."""
    data = stream.read(n)
    if len(data) == n or not data:
        return data
    parts = [data]
    got = len(data)
    while got < n:
        more = stream.read(n - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _only_zeros_left(stream: BinaryIO) -> int | None:
    """Read to the end: None when only zero bytes remain, else the index of the first non-zero byte."""
    seen = 0
    while chunk := stream.read(1 << 20):
        stripped = chunk.lstrip(b"\x00")
        if stripped:
            return seen + len(chunk) - len(stripped)
        seen += len(chunk)
    return None


def iter_framed_blocks(stream: BinaryIO, magic: bytes, source: str,
                       chain: str = "") -> Iterator[tuple[int, bytes]]:
    """``(offset, block bytes)`` of each block of a ``blk*.dat``-framed stream.

    Stops cleanly at the end or at zero padding (Bitcoin Core preallocates its files); raises
    BlockValidationError on wrong magic, a length running past the end, or trailing bytes.
    """
    offset = 0
    wanted = chain or (_magic_owner(magic) or "this chain")
    while True:
        head = _read_exact(stream, 8)
        if not head:
            return
        if head[:4] != magic:
            if not head.strip(b"\x00"):
                nonzero = _only_zeros_left(stream)
                if nonzero is None:
                    return
                raise BlockValidationError(source, f"at offset {offset}", "trailing garbage after the "
                                           f"zero padding (first non-zero byte at offset "
                                           f"{offset + len(head) + nonzero})")
            if len(head) < 8:
                raise BlockValidationError(source, f"at offset {offset}", f"truncated: {len(head)} "
                                           "stray bytes where a block frame should start")
            owner = _magic_owner(head[:4])
            if owner:
                problem = (f"network magic {head[:4].hex()} is {owner}'s, not {wanted}'s "
                           f"({magic.hex()})")
            elif offset == 0:
                problem = (f"not a {wanted} block file: starts with {head[:4].hex()}, "
                           f"expected network magic {magic.hex()}")
            else:
                problem = (f"trailing garbage: {head[:4].hex()} where network magic {magic.hex()} "
                           "or the end of the file should be")
            raise BlockValidationError(source, f"at offset {offset}", problem)
        if len(head) < 8:
            raise BlockValidationError(source, f"at offset {offset}", "truncated block frame header")
        length = _FRAME(head)[1]
        if length < HEADER_SIZE + 1 or length > MAX_BLOCK_BYTES:
            raise BlockValidationError(source, f"at offset {offset}", f"bad block length {length}")
        data = _read_exact(stream, length)
        if len(data) < length:
            raise BlockValidationError(source, f"at offset {offset}", f"truncated: the frame declares "
                                       f"{length} bytes but the file ends after {len(data)}")
        yield offset, data
        offset += 8 + length


def iter_block_bytes(stream: BinaryIO, magic: bytes, source: str) -> Iterator[bytes]:
    """The serialized blocks of a ``blk*.dat``-framed stream, one at a time."""
    for _offset, data in iter_framed_blocks(stream, magic, source):
        yield data


_RAW_BLOCK_SUFFIXES = (".blk", ".block", ".raw")


def _is_raw_block_name(path: Path) -> bool:
    name = path.name.lower()
    for suffix in (".bz2", ".gz", ".xz"):
        name = name.removesuffix(suffix)
    return name.endswith(_RAW_BLOCK_SUFFIXES)


def _blocks_of_file(path: Path, params: ChainParams) -> Iterator[tuple[str, bytes, bool]]:
    """``(where, block bytes, guessed)`` for each block of a file: framed, or one raw block.

    ``guessed`` is True for a file read as one raw block only because it lacks the network magic
    (and has no raw-block name such as ``.blk``).
    """
    source = str(path)
    try:
        with open_block_file(path) as stream:
            head = _read_exact(stream, 4)
            if not head:
                return
            rest = io.BufferedReader(_Prefixed(head, stream))
            if head == params.magic or head == b"\x00\x00\x00\x00":
                for offset, data in iter_framed_blocks(rest, params.magic, source, params.name):
                    yield f"offset {offset}", data, False
                return
            owner = _magic_owner(head)
            if owner:
                raise BlockValidationError(source, "at offset 0", f"network magic {head.hex()} is "
                                           f"{owner}'s, not {params.name}'s ({params.magic.hex()})")
            data = _read_exact(rest, MAX_BLOCK_BYTES + 1)
            if len(data) > MAX_BLOCK_BYTES:
                raise BlockValidationError(source, "at offset 0", f"not a {params.name} block file: no "
                                           f"network magic {params.magic.hex()} and too large for one "
                                           "raw block")
            yield "offset 0", data, not _is_raw_block_name(path)
    except (EOFError, OSError, lzma.LZMAError, zlib.error) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ParseError(source, None, f"cannot read the (compressed) data: {exc}") from None


class _Prefixed(io.RawIOBase):
    """A raw stream that replays a few already-read bytes before the rest of another stream."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        self._prefix = prefix
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._stream.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


# ------------------------------------------------------------------------------------------------
# The reader: blocks -> columnar batches


class _Prepared:
    """One block turned into batch columns, all but the height (known only once it is placed)."""

    __slots__ = ("source", "where", "hash", "prev_hash", "time", "bip34", "tx_txid", "tx_coinbase",
                 "tx_size", "tx_vsize", "tx_version", "tx_locktime", "tx_segwit", "out_txid", "out_n",
                 "out_address", "out_value", "out_type", "in_txid", "in_n", "in_prev_txid", "in_prev_n",
                 "in_sequence", "op_returns")

    source: str
    where: str
    hash: str
    prev_hash: str
    time: int
    bip34: int | None
    tx_txid: list[str]
    tx_coinbase: list[bool]
    tx_size: list[int | None]
    tx_vsize: list[int | None]
    tx_version: list[int | None]
    tx_locktime: list[int | None]
    tx_segwit: list[bool]
    out_txid: list[str]
    out_n: list[int]
    out_address: list[str | None]
    out_value: list[int]
    out_type: list[str]
    in_txid: list[str]
    in_n: list[int]
    in_prev_txid: list[str]
    in_prev_n: list[int]
    in_sequence: list[int | None]
    op_returns: list[tuple[str, int, str]]  # (txid, n, hex payload) of OP_RETURN outputs


_TYPE_NAMES = {t: t.value for t in ScriptType}


def _prepare(params: ChainParams, block: _ScannedBlock, source: str, where: str) -> _Prepared:
    """Turn a scanned block into batch columns (script types and addresses included)."""
    p = _Prepared()
    p.source, p.where, p.hash, p.prev_hash, p.time = source, where, block.hash, block.prev_hash, block.time
    p.bip34 = None
    tx_txid: list[str] = []
    tx_coinbase: list[bool] = []
    tx_size: list[int | None] = []
    tx_vsize: list[int | None] = []
    tx_version: list[int | None] = []
    tx_locktime: list[int | None] = []
    tx_segwit: list[bool] = []
    out_txid: list[str] = []
    out_n: list[int] = []
    out_value: list[int] = []
    scripts: list[bytes] = []
    in_txid: list[str] = []
    in_n: list[int] = []
    in_prev_txid: list[str] = []
    in_prev_n: list[int] = []
    in_sequence: list[int | None] = []
    add_value = out_value.append
    add_script = scripts.append
    add_prev = in_prev_txid.append
    add_prev_n = in_prev_n.append
    add_sequence = in_sequence.append
    for index, t in enumerate(block.txs):
        txid_raw, _w, version, locktime, segwit, size, base_size, ins, outs, _wits, _end = t
        txid = txid_raw[::-1].hex()
        coinbase = (index == 0 and len(ins) == 1 and ins[0][0] == _NULL_PREV
                    and ins[0][1] == COINBASE_PREV_N)
        tx_txid.append(txid)
        tx_coinbase.append(coinbase)
        tx_size.append(size)
        tx_vsize.append((base_size * 3 + size + 3) // 4)
        tx_version.append(version)
        tx_locktime.append(locktime)
        tx_segwit.append(segwit)
        k = len(outs)
        out_txid += [txid] * k
        out_n += range(k)
        for value, script in outs:
            add_value(value)
            add_script(script)
        if coinbase:
            if block.version >= 2:
                p.bip34 = bip34_height(ins[0][2])
            continue
        k = len(ins)
        in_txid += [txid] * k
        in_n += range(k)
        for prev, prev_n, _script, sequence in ins:
            add_prev(prev[::-1].hex())
            add_prev_n(prev_n)
            add_sequence(sequence)
    types, addresses = classify_raw_scripts(params, scripts)
    p.tx_txid, p.tx_coinbase, p.tx_size, p.tx_vsize = tx_txid, tx_coinbase, tx_size, tx_vsize
    p.tx_version, p.tx_locktime, p.tx_segwit = tx_version, tx_locktime, tx_segwit
    p.out_txid, p.out_n, p.out_address, p.out_value = out_txid, out_n, addresses, out_value
    names = _TYPE_NAMES
    p.out_type = [names[t] for t in types]
    nulldata = ScriptType.NULLDATA
    p.op_returns = [(out_txid[i], out_n[i], payload.hex()) for i, t in enumerate(types)
                    if t is nulldata and (payload := op_return_data(scripts[i]))]
    p.in_txid, p.in_n, p.in_prev_txid, p.in_prev_n, p.in_sequence = (in_txid, in_n, in_prev_txid, in_prev_n,
                                                                     in_sequence)
    return p


def _extend(batch: UtxoBatch, p: _Prepared, height: int) -> None:
    """Append a prepared block at ``height`` to the batch."""
    ntx = len(p.tx_txid)
    nin = len(p.in_txid)
    batch.blocks.append(BlockRecord(batch.chain, height, p.hash, p.prev_hash, p.time, ntx))
    batch.tx_txid += p.tx_txid
    batch.tx_height += [height] * ntx
    batch.tx_time += [p.time] * ntx
    batch.tx_index += range(ntx)
    batch.tx_fee += [None] * ntx
    batch.tx_coinbase += p.tx_coinbase
    batch.tx_size += p.tx_size
    batch.tx_vsize += p.tx_vsize
    batch.tx_version += p.tx_version
    batch.tx_locktime += p.tx_locktime
    batch.tx_segwit += p.tx_segwit
    batch.out_txid += p.out_txid
    batch.out_n += p.out_n
    batch.out_address += p.out_address
    batch.out_value += p.out_value
    batch.out_script_type += p.out_type
    batch.in_txid += p.in_txid
    batch.in_n += p.in_n
    batch.in_prev_txid += p.in_prev_txid
    batch.in_prev_n += p.in_prev_n
    batch.in_sequence += p.in_sequence
    batch.in_address += [None] * nin
    batch.in_value += [None] * nin
    for txid, n, payload in p.op_returns:
        batch.payloads.add(txid, height, n, PayloadKind.OP_RETURN, payload)


def prepared_blocks(paths: Iterable[Path], params: ChainParams) -> Iterator[_Prepared]:
    """Scan, check and prepare every block of the files, in file order (no heights yet)."""
    for path in paths:
        source = str(path)
        for where, data, guessed in _blocks_of_file(path, params):
            try:
                with _gc_paused():
                    prepared = _prepare(params, _scan_block(data, source, where, False), source, where)
            except BlockValidationError as exc:
                if not guessed:
                    raise
                raise BlockValidationError(
                    source, "at offset 0", f"not a {params.name} block file: no network magic "
                    f"{params.magic.hex()} at the start, and not a raw block either ({exc.problem})"
                ) from None
            yield prepared


def _prepared_chunks(paths: list[Path], params: ChainParams) -> Iterator[list[_Prepared]]:
    """:func:`prepared_blocks` in lists of about :data:`READ_AHEAD_TXS` transactions (for a worker)."""
    chunk: list[_Prepared] = []
    txs = 0
    for prepared in prepared_blocks(paths, params):
        chunk.append(prepared)
        txs += len(prepared.tx_txid)
        if txs >= READ_AHEAD_TXS:
            yield chunk
            chunk, txs = [], 0
    if chunk:
        yield chunk


READ_AHEAD_TXS = 10_000
"""Transactions per chunk handed from the reading thread to the consumer."""


def _read_ahead(blocks: Iterator[_Prepared], chunks: int = 3) -> Iterator[_Prepared]:
    """Run ``blocks`` in a thread, a few chunks ahead, so parsing overlaps the store's writes.

    The store releases the GIL while DuckDB works, so on two cores parsing the next batch and
    writing the previous one run at the same time. Errors are raised in the consumer, after the
    blocks read before them.
    """
    q: queue.Queue[tuple[int, object]] = queue.Queue(maxsize=chunks)
    stop = threading.Event()

    def put(kind: int, item: object) -> bool:
        while not stop.is_set():
            try:
                q.put((kind, item), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        chunk: list[_Prepared] = []
        txs = 0
        try:
            for prepared in blocks:
                chunk.append(prepared)
                txs += len(prepared.tx_txid)
                if txs >= READ_AHEAD_TXS:
                    if not put(0, chunk):
                        return
                    chunk, txs = [], 0
            if chunk and not put(0, chunk):
                return
            put(1, None)
        except BaseException as exc:  # handed to the consumer thread
            if chunk and not put(0, chunk):
                return
            put(2, exc)

    thread = threading.Thread(target=work, name="fundtrail-block-reader", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = q.get()
            if kind == 0:
                yield from item  # type: ignore[misc]
            elif kind == 1:
                return
            else:
                raise item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(timeout=30)


def read_block_files(paths: Iterable[str | Path], chain: str, *,
                     known_height: Callable[[str], int | None],
                     batch_size: int = DEFAULT_BATCH_TXS, read_ahead: bool = True) -> Iterator[UtxoBatch]:
    """Batches of complete blocks read from ``blk*.dat`` files or raw block files.

    A folder stands for its ``blk*.dat`` files (a Bitcoin Core ``blocks`` folder, de-obfuscated with
    its ``xor.dat``); compressed files are read as they stream.

    Heights: a genesis block (null parent) is 0; a block whose parent came earlier in the input,
    or is known to the store (``known_height(parent_hash)``), is parent + 1; otherwise the BIP34
    height of its coinbase (block version 2 and later). A block placed by none of these waits for
    its parent (Bitcoin Core writes blocks out of order); one still waiting at the end is an error.
    Each batch holds about ``batch_size`` transactions, cut at a block boundary. With
    ``read_ahead`` the files are parsed in a thread while the caller writes the previous batch;
    ``known_height`` is always called from the caller's thread.
    """
    params = get_chain(chain)
    name = params.name
    if not params.is_utxo:
        raise InputError(f"chain {name!r} is not a UTXO chain; raw blocks are for Bitcoin-family chains")
    files = block_files(paths)
    genesis = GENESIS_HASHES.get(name)
    heights: dict[str, int] = {}
    waiting: dict[str, list[_Prepared]] = {}
    n_waiting = 0
    held = _StaleFilter(HOLD_BLOCKS)
    batch = UtxoBatch(name)
    blocks: Iterator[_Prepared]
    if read_ahead and sum(p.stat().st_size for p in files) >= AHEAD_MIN_BYTES:
        from fundtrail.chains.ahead import read_ahead as in_worker

        # scanned in a worker process while this one places and writes blocks (two cores)
        blocks = (p for chunk in in_worker(_prepared_chunks, files, params) for p in chunk)
    else:
        source = prepared_blocks(files, params)
        blocks = _read_ahead(source) if read_ahead else source

    def emit(released: Iterable[tuple[_Prepared, int]]) -> Iterator[UtxoBatch]:
        nonlocal batch
        for block, h in released:
            _extend(batch, block, h)
            if len(batch.tx_txid) >= batch_size:
                yield batch
                batch = UtxoBatch(name)

    for prepared in blocks:
        if prepared.hash in heights:
            continue  # the same block twice (Bitcoin Core can store one again after a reindex)
        prev = prepared.prev_hash
        if prev == ZERO_HASH:
            height: int | None = 0
        elif prev == genesis:
            height = 1
        else:
            parent = heights.get(prev)
            if parent is None:
                parent = known_height(prev)
            height = parent + 1 if parent is not None else prepared.bip34
        if height is None:
            waiting.setdefault(prev, []).append(prepared)
            n_waiting += 1
            if n_waiting > MAX_PENDING_BLOCKS:
                raise BlockValidationError(prepared.source, f"{prepared.hash} ({prepared.where})",
                                           f"more than {MAX_PENDING_BLOCKS} blocks whose parents are unknown")
            continue
        stack = [(prepared, height)]
        while stack:
            block, h = stack.pop()
            if block.hash in heights:
                continue
            heights[block.hash] = h
            yield from emit(held.add(block, h))
            children = waiting.pop(block.hash, None)
            if children:
                n_waiting -= len(children)
                stack.extend((child, h + 1) for child in children)
        if len(heights) > 2 * KEEP_HEIGHTS:
            # Older blocks are in the store by now (known_height finds them); keep the recent ones.
            for key in list(heights)[:-KEEP_HEIGHTS]:
                del heights[key]
            held.forget_old(KEEP_HEIGHTS)
    if waiting:
        first = next(iter(waiting.values()))[0]
        raise BlockValidationError(first.source, f"{first.hash} ({first.where})",
                                   f"cannot place block {first.hash}: parent {first.prev_hash} "
                                   "unknown and no BIP34 height")
    yield from emit(held.flush())
    if batch.blocks:
        yield batch


KEEP_HEIGHTS = 100_000
"""Heights of recently read blocks kept in memory to place their children."""

HOLD_BLOCKS = 12
"""Blocks held back before they are written, so that a stale block can lose to its rival branch."""


class _StaleFilter:
    """Holds the last few placed blocks back to drop stale ones.

    Bitcoin Core's block files also hold stale blocks (a rival that lost a race). When a held block
    leaves the window, it is written unless a sibling (same parent) has a longer branch in the
    window, or a sibling was already written: then it and its descendants are skipped with a warning.
    Ties go to the block read first, as a node would have it.
    """

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.order: deque[str] = deque()
        self.info: dict[str, tuple[_Prepared, int, int]] = {}  # hash -> (block, height, arrival)
        self.children: dict[str, list[str]] = {}
        self.dropped: set[str] = set()
        self.written_child: dict[str, str] = {}  # parent hash -> the child that was written
        self.skipped: dict[str, None] = {}  # stale blocks that left the window (their children are stale)
        self.arrivals = 0

    def add(self, block: _Prepared, height: int) -> list[tuple[_Prepared, int]]:
        """Hold a placed block; returns the blocks that leave the window and are to be written."""
        self.info[block.hash] = (block, height, self.arrivals)
        self.arrivals += 1
        self.children.setdefault(block.prev_hash, []).append(block.hash)
        self.order.append(block.hash)
        out: list[tuple[_Prepared, int]] = []
        while len(self.order) > self.depth:
            self._release(self.order.popleft(), out)
        return out

    def flush(self) -> list[tuple[_Prepared, int]]:
        """Release every held block (end of input)."""
        out: list[tuple[_Prepared, int]] = []
        while self.order:
            self._release(self.order.popleft(), out)
        return out

    def forget_old(self, keep: int) -> None:
        """Bound the memory of written blocks' parents."""
        for memory in (self.written_child, self.skipped):
            if len(memory) > keep:
                for key in list(memory)[:-keep]:
                    del memory[key]

    def _reach(self, h: str) -> int:
        """The greatest height of ``h``'s branch among held blocks."""
        best = self.info[h][1]
        stack = [h]
        while stack:
            for child in self.children.get(stack.pop(), ()):
                if child in self.info and child not in self.dropped:
                    best = max(best, self.info[child][1])
                    stack.append(child)
        return best

    def _drop(self, h: str, why: str) -> None:
        stack = [h]
        while stack:
            x = stack.pop()
            if x in self.dropped or x not in self.info:
                continue
            self.dropped.add(x)
            block, height, _ = self.info[x]
            log.warning("%s: stale block %s at height %d skipped: %s", block.source, x, height, why)
            stack.extend(self.children.get(x, ()))

    def _release(self, h: str, out: list[tuple[_Prepared, int]]) -> None:
        block, height, arrival = self.info[h]
        prev = block.prev_hash
        if h not in self.dropped:
            written = self.written_child.get(prev)
            if prev in self.skipped:
                self._drop(h, f"its parent {prev} is stale")
            elif written is not None and written != h:
                self._drop(h, f"block {written} at the same height was written")
            else:
                rivals = [c for c in self.children.get(prev, ())
                          if c != h and c in self.info and c not in self.dropped]
                if rivals:
                    def score(x: str) -> tuple[int, int]:
                        return self._reach(x), -self.info[x][2]
                    best = max([h, *rivals], key=score)
                    if best != h:
                        self._drop(h, f"a longer branch from block {best} was read")
        del self.info[h]
        siblings = self.children.get(prev)
        if siblings is not None:
            siblings.remove(h)
            if not siblings:
                del self.children[prev]
        if h in self.dropped:
            self.dropped.discard(h)
            self.skipped[h] = None
            return
        self.written_child[prev] = h
        out.append((block, height))
