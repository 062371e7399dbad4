"""Addresses of P2PKH and P2SH scripts given as hex in an Arrow column, by array operations.

The two templates that carry most outputs are recognised with string kernels, their hashes decoded from
hex with a lookup table, and their base58check addresses encoded for the whole column at once (long
division by 58**5 on 32-bit limbs); only the checksum is computed per row (``hashlib``). Results are those
of :func:`fundtrail.domain.scripts.classify_scripts`, which the caller applies to every other script.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fundtrail.domain.addresses import b58_matrix
from fundtrail.domain.chains import ChainParams
from fundtrail.domain.records import ScriptType
from fundtrail.domain.scripts import classify_scripts

_NIBBLE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _NIBBLE[_c] = _i

# (type, hex length, hex prefix, hex suffix, where the 20-byte hash starts in the hex)
TEMPLATES = ((ScriptType.P2PKH, 50, "76a914", "88ac", 6), (ScriptType.P2SH, 46, "a914", "87", 4))


def _fixed_width_bytes(strings: pa.Array, width: int) -> np.ndarray[Any, Any]:
    """The characters of strings that are all ``width`` long, as an (n, width) byte matrix."""
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32)[strings.offset:]
    data = np.frombuffer(strings.buffers()[2], dtype=np.uint8)
    start = int(offsets[0])
    return data[start:start + width * len(strings)].reshape(len(strings), width)


def _b58(raw: np.ndarray[Any, Any]) -> pa.Array:
    """Base58 of each row of a byte matrix (leading zero bytes as ``1``), as a string array."""
    ascii_digits, start = b58_matrix(raw)
    n, width = ascii_digits.shape
    keep = np.arange(width)[None, :] >= start[:, None]
    data = ascii_digits[keep]
    offsets = np.concatenate([[0], np.cumsum(width - start)]).astype(np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data.tobytes()))


def _encode(prefix: bytes, hashes: np.ndarray[Any, Any]) -> pa.Array:
    """The base58check address of each 20-byte hash (rows of ``hashes``) behind ``prefix``."""
    n = len(hashes)
    body = np.empty((n, len(prefix) + 20), dtype=np.uint8)
    body[:, :len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
    body[:, len(prefix):] = hashes
    step = body.shape[1]
    blob = body.tobytes()
    sha = hashlib.sha256
    check = b"".join([sha(sha(blob[k:k + step]).digest()).digest()[:4] for k in range(0, len(blob), step)])
    return _b58(np.concatenate([body, np.frombuffer(check, dtype=np.uint8).reshape(n, 4)], axis=1))


def template_addresses(params: ChainParams, scripts: pa.Array
                       ) -> tuple[np.ndarray[Any, Any], pa.Array, pa.Array]:
    """(rows recognised, their addresses, their types) for the P2PKH and P2SH scripts of ``scripts``
    (lower-case hex; other spellings are left to the caller)."""
    rows: list[np.ndarray[Any, Any]] = []
    addresses: list[pa.Array] = []
    types: list[pa.Array] = []
    size = pc.binary_length(scripts)
    for kind, width, head, tail, at in TEMPLATES:
        prefix = params.p2pkh_prefix if kind is ScriptType.P2PKH else params.p2sh_prefix
        if not prefix:
            continue
        mask = pc.and_(pc.equal(size, width),
                       pc.and_(pc.starts_with(scripts, head), pc.ends_with(scripts, tail)))
        where = np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False)))
        if not len(where):
            continue
        hexes = pc.utf8_slice_codeunits(scripts.take(pa.array(where)), at, at + 40)
        chars = _NIBBLE[_fixed_width_bytes(hexes, 40)].reshape(len(where), 20, 2)
        good = ~(chars == 255).any(axis=(1, 2))
        where, chars = where[good], chars[good]
        if not len(where):
            continue
        rows.append(where)
        addresses.append(_encode(prefix, (chars[:, :, 0] << 4) | chars[:, :, 1]))
        types.append(pa.repeat(pa.scalar(kind.value, pa.string()), len(where)))
    if not rows:
        return np.zeros(0, dtype=np.int64), pa.array([], pa.string()), pa.array([], pa.string())
    return np.concatenate(rows), pa.concat_arrays(addresses), pa.concat_arrays(types)


# (type, script length, leading bytes, trailing bytes, where the 20-byte hash starts)
RAW_TEMPLATES = ((ScriptType.P2PKH, 25, b"\x76\xa9\x14", b"\x88\xac", 3),
                 (ScriptType.P2SH, 23, b"\xa9\x14", b"\x87", 2))


def classify_raw_scripts(params: ChainParams, scripts: list[bytes]
                         ) -> tuple[list[ScriptType], list[str | None]]:
    """:func:`~fundtrail.domain.scripts.classify_scripts` of raw scripts: P2PKH and P2SH addresses by
    array operations, the other scripts by ``classify_scripts``."""
    n = len(scripts)
    types: list[ScriptType | None] = [None] * n
    addresses: list[str | None] = [None] * n
    lengths = np.fromiter(map(len, scripts), dtype=np.int64, count=n)
    for kind, size, head, tail, at in RAW_TEMPLATES:
        prefix = params.p2pkh_prefix if kind is ScriptType.P2PKH else params.p2sh_prefix
        where = np.flatnonzero(lengths == size)
        if not prefix or not len(where):
            continue
        blob = b"".join([scripts[i] for i in where.tolist()])
        matrix = np.frombuffer(blob, dtype=np.uint8).reshape(-1, size)
        ok = ((matrix[:, :len(head)] == np.frombuffer(head, dtype=np.uint8)).all(axis=1)
              & (matrix[:, size - len(tail):] == np.frombuffer(tail, dtype=np.uint8)).all(axis=1))
        where, matrix = where[ok], matrix[ok]
        if not len(where):
            continue
        encoded = _encode(prefix, matrix[:, at:at + 20]).to_pylist()
        for i, address in zip(where.tolist(), encoded, strict=True):
            types[i] = kind
            addresses[i] = address
    others = [i for i, t in enumerate(types) if t is None]
    if others:
        kinds, found = classify_scripts(params, [scripts[i] for i in others])
        for i, kind_found, address_found in zip(others, kinds, found, strict=True):
            types[i] = kind_found
            addresses[i] = address_found
    return [t for t in types if t is not None], addresses
