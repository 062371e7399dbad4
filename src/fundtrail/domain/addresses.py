"""Addresses: encoding, decoding, validation per chain and canonical forms.

Codecs: Base58Check (legacy ``1...``/``3...`` and their altcoin cousins), bech32 and bech32m segwit
addresses (BIP173, BIP350), CashAddr (Bitcoin Cash ``q...``/``p...``, canonicalised to its legacy
base58 form), EVM hex addresses with the EIP-55 checksum and TRON accounts (base58check ``T...``,
version byte ``0x41``; also given as hex ``41``/``0x41`` + 20 bytes).

Canonical forms, as the chain store keeps them: base58 as is, bech32 lower case, EVM lower-case hex,
TRON base58check ``T...``.
An address of another chain given for a chain is rejected with the name of the chain it belongs to.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from fundtrail.domain.chains import CHAINS, ChainParams, get_chain
from fundtrail.domain.records import ScriptType
from fundtrail.errors import InputError, InvalidAddressError

# --------------------------------------------------------------------------------------------------
# Base58 / Base58Check

B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(B58_ALPHABET)}
# Two base58 digits at a time: divmod by 58**2 halves the number of big-int divisions.
_B58_PAIRS = [B58_ALPHABET[i // 58] + B58_ALPHABET[i % 58] for i in range(58 * 58)]


def b58encode(data: bytes) -> str:
    """Base58 encoding (Bitcoin alphabet); each leading zero byte becomes a ``1``."""
    n = int.from_bytes(data, "big")
    parts: list[str] = []
    while n:
        n, r = divmod(n, 3364)
        parts.append(_B58_PAIRS[r])
    text = "".join(reversed(parts)).lstrip("1")
    pad = len(data) - len(data.lstrip(b"\x00"))
    return "1" * pad + text


def b58decode(text: str) -> bytes:
    """Decode Base58 text; raises InputError on a character outside the alphabet."""
    n = 0
    index = _B58_INDEX
    for c in text:
        digit = index.get(c)
        if digit is None:
            raise InputError(f"character {c!r} is not base58")
        n = n * 58 + digit
    pad = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\x00" * pad + body


def _checksum4(payload: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]


def b58check_encode(payload: bytes) -> str:
    """Base58Check: ``payload`` (version byte(s) + data) followed by a 4-byte double-SHA-256 checksum."""
    return b58encode(payload + _checksum4(payload))


def b58check_decode(text: str) -> bytes:
    """The payload of Base58Check text; raises InputError on a bad character, length or checksum."""
    raw = b58decode(text)
    if len(raw) < 5:
        raise InputError("base58check text too short")
    payload, check = raw[:-4], raw[-4:]
    if _checksum4(payload) != check:
        raise InputError("bad base58check checksum")
    return payload


# --------------------------------------------------------------------------------------------------
# Bech32 / bech32m (BIP173, BIP350)

BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_INDEX = {c: i for i, c in enumerate(BECH32_CHARSET)}
_BECH32_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_BECH32M_CONST = 0x2BC830A3


class Bech32Variant(StrEnum):
    """The two bech32 checksum constants: BIP173 (``bech32``) and BIP350 (``bech32m``)."""

    BECH32 = "bech32"
    BECH32M = "bech32m"


def _gen_table(gens: tuple[int, ...]) -> tuple[int, ...]:
    """XOR of the generators selected by each 5-bit value of the top bits (one lookup per step)."""
    table = []
    for top in range(32):
        acc = 0
        for i, g in enumerate(gens):
            if (top >> i) & 1:
                acc ^= g
        table.append(acc)
    return tuple(table)


_BECH32_TABLE = _gen_table(_BECH32_GEN)


def _bech32_polymod(values: list[int], chk: int = 1) -> int:
    table = _BECH32_TABLE
    for v in values:
        chk = ((chk & 0x1FFFFFF) << 5 ^ v) ^ table[chk >> 25]
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def bech32_encode(hrp: str, data: list[int], variant: Bech32Variant) -> str:
    """Bech32 or bech32m text of 5-bit ``data`` under ``hrp`` (lower case)."""
    const = 1 if variant is Bech32Variant.BECH32 else _BECH32M_CONST
    values = _hrp_expand(hrp) + data
    polymod = _bech32_polymod(values + [0] * 6) ^ const
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(BECH32_CHARSET[d] for d in data + checksum)


def bech32_decode(text: str) -> tuple[str, list[int], Bech32Variant]:
    """Split bech32/bech32m text into (hrp, 5-bit data without checksum, variant); raises InputError."""
    if any(ord(c) < 33 or ord(c) > 126 for c in text):
        raise InputError("bech32 text has a character outside US-ASCII 33..126")
    if text.lower() != text and text.upper() != text:
        raise InputError("bech32 text mixes upper and lower case")
    if len(text) > 90:
        raise InputError("bech32 text longer than 90 characters")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1:
        raise InputError("bech32 text has no human-readable part")
    if pos + 7 > len(text):
        raise InputError("bech32 checksum too short")
    hrp = text[:pos]
    try:
        data = [_BECH32_INDEX[c] for c in text[pos + 1:]]
    except KeyError as exc:
        raise InputError(f"character {exc.args[0]!r} is not in the bech32 alphabet") from None
    check = _bech32_polymod(_hrp_expand(hrp) + data)
    if check == 1:
        variant = Bech32Variant.BECH32
    elif check == _BECH32M_CONST:
        variant = Bech32Variant.BECH32M
    else:
        raise InputError("bad bech32 checksum")
    return hrp, data[:-6], variant


def convertbits(data: bytes | list[int], frombits: int, tobits: int, pad: bool) -> list[int]:
    """Regroup a sequence of ``frombits``-bit values into ``tobits``-bit values; raises InputError."""
    acc = 0
    bits = 0
    out: list[int] = []
    maxv = (1 << tobits) - 1
    for value in data:
        if value < 0 or value >> frombits:
            raise InputError("value out of range while regrouping bits")
        acc = (acc << frombits) | value
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (tobits - bits)) & maxv)
    elif bits >= frombits or ((acc << (tobits - bits)) & maxv):
        raise InputError("bad padding in bech32 data")
    return out


def _check_witness_program(version: int, program: bytes) -> None:
    if not 0 <= version <= 16:
        raise InputError(f"witness version {version} outside 0..16")
    if not 2 <= len(program) <= 40:
        raise InputError(f"witness program of {len(program)} bytes (must be 2..40)")
    if version == 0 and len(program) not in (20, 32):
        raise InputError(f"version 0 witness program of {len(program)} bytes (must be 20 or 32)")


# Two symbols per step: the checksum is GF(2)-linear, so the top 10 bits of the state select one
# precomputed XOR for two consecutive symbols (encoding runs for every segwit output read).
def _two_step(chk: int) -> int:
    for _ in range(2):
        chk = ((chk & 0x1FFFFFF) << 5) ^ _BECH32_TABLE[chk >> 25]
    return chk


_BECH32_TABLE2 = tuple(_two_step(x << 20) for x in range(1024))
_BECH32_PAIRS = tuple(BECH32_CHARSET[x >> 5] + BECH32_CHARSET[x & 31] for x in range(1024))
_HRP_STATE: dict[str, int] = {}


def encode_segwit(hrp: str, version: int, program: bytes) -> str:
    """Segwit address text: bech32 for version 0, bech32m for versions 1..16; raises InputError."""
    _check_witness_program(version, program)
    chk = _HRP_STATE.get(hrp)
    if chk is None:
        chk = _HRP_STATE[hrp] = _bech32_polymod(_hrp_expand(hrp))
    nbits = len(program) * 8
    pad = -nbits % 5
    symbols = 1 + (nbits + pad) // 5
    # all data symbols as one integer, 5 bits each, then six zero symbols for the checksum
    value = ((version << (nbits + pad)) | (int.from_bytes(program, "big") << pad)) << 30
    total = symbols + 6
    table = _BECH32_TABLE
    shift = 5 * total
    if total & 1:
        shift -= 5
        chk = ((chk & 0x1FFFFFF) << 5 ^ (value >> shift) & 31) ^ table[chk >> 25]
    table2 = _BECH32_TABLE2
    while shift:
        shift -= 10
        chk = ((chk & 0xFFFFF) << 10) ^ ((value >> shift) & 1023) ^ table2[chk >> 20]
    chk ^= 1 if version == 0 else _BECH32M_CONST
    value |= chk
    pairs = _BECH32_PAIRS
    shift = 5 * total
    out = []
    if total & 1:
        shift -= 5
        out.append(BECH32_CHARSET[(value >> shift) & 31])
    while shift:
        shift -= 10
        out.append(pairs[(value >> shift) & 1023])
    return hrp + "1" + "".join(out)


def decode_segwit(text: str) -> tuple[str, int, bytes]:
    """(hrp, witness version, program) of a segwit address; raises InputError when invalid."""
    hrp, data, variant = bech32_decode(text)
    if not data:
        raise InputError("segwit address without witness version")
    version = data[0]
    if version > 16:
        raise InputError(f"witness version {version} outside 0..16")
    program = bytes(convertbits(data[1:], 5, 8, False))
    _check_witness_program(version, program)
    expected = Bech32Variant.BECH32 if version == 0 else Bech32Variant.BECH32M
    if variant is not expected:
        raise InputError(f"witness version {version} needs a {expected.value} checksum, "
                         f"not {variant.value}")
    return hrp, version, program


# --------------------------------------------------------------------------------------------------
# Many addresses at once (readers encode every output of a block): numpy does the arithmetic for
# all addresses of one shape together; small groups take the scalar path.

VECTOR_MIN = 16
"""Smallest group of same-shaped addresses worth encoding with numpy."""

_B58_ALPHA = np.frombuffer(B58_ALPHABET.encode("ascii"), dtype=np.uint8)
_B58_CHUNK = np.uint64(58**5)
_B58_FIFTY_EIGHT = np.uint64(58)
_U64_32 = np.uint64(32)


def _b58_rounds(length: int) -> int:
    """Number of 5-digit base-58 chunks that hold any ``length``-byte number."""
    rounds = 1
    while 58 ** (5 * rounds) < 256**length:
        rounds += 1
    return rounds


def b58_matrix(raw: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Base58 of each row of an (n, length) byte matrix, computed together: the ASCII digits at a fixed
    width, and per row where its text starts in them (leading zero bytes become ``1`` each)."""
    n, length = raw.shape
    nlimb = (length + 3) // 4
    buf = np.zeros((n, nlimb * 4), dtype=np.uint8)
    buf[:, nlimb * 4 - length:] = raw
    limbs = buf.view(">u4").astype(np.uint64)  # big-endian 32-bit limbs, most significant first
    rounds = _b58_rounds(length)
    chunks = np.empty((n, rounds), dtype=np.uint64)
    first = 0
    for r in range(rounds):  # long division by 58**5, one chunk of five digits per round
        while first < nlimb and not limbs[:, first].any():
            first += 1
        rem = np.zeros(n, dtype=np.uint64)
        for j in range(first, nlimb):
            cur = (rem << _U64_32) | limbs[:, j]
            q = cur // _B58_CHUNK
            rem = cur - q * _B58_CHUNK
            limbs[:, j] = q
        chunks[:, rounds - 1 - r] = rem
    grouped = np.empty((n, rounds, 5), dtype=np.uint8)
    for k in range(4, -1, -1):
        q = chunks // _B58_FIFTY_EIGHT
        grouped[:, :, k] = chunks - q * _B58_FIFTY_EIGHT
        chunks = q
    width = rounds * 5
    digits = grouped.reshape(n, width)
    nonzero = digits != 0
    zero_digits = np.where(nonzero.any(axis=1), nonzero.argmax(axis=1), width)
    nonzero_bytes = raw != 0
    zero_bytes = np.where(nonzero_bytes.any(axis=1), nonzero_bytes.argmax(axis=1), length)
    # Each leading zero byte is one "1"; the fixed width always has room for them (58 < 256).
    return _B58_ALPHA[digits], zero_digits - zero_bytes


def _b58encode_same_length(raws: list[bytes]) -> list[str]:
    """Base58 of many byte strings of one length, as :func:`b58encode` would give each."""
    n, length = len(raws), len(raws[0])
    ascii_digits, start = b58_matrix(np.frombuffer(b"".join(raws), dtype=np.uint8).reshape(n, length))
    width = ascii_digits.shape[1]
    ends = np.arange(1, n + 1, dtype=np.int64) * width
    starts = ends - width + start
    text = ascii_digits.tobytes().decode("ascii")
    return [text[s:e] for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]


def b58check_encode_many(payloads: list[bytes]) -> list[str]:
    """:func:`b58check_encode` of each payload, computed together (same results, faster)."""
    sha = hashlib.sha256
    raws = [p + sha(sha(p).digest()).digest()[:4] for p in payloads]
    out: list[str] = [""] * len(raws)
    groups: dict[int, list[int]] = {}
    for i, r in enumerate(raws):
        groups.setdefault(len(r), []).append(i)
    for length, idx in groups.items():
        if len(idx) < VECTOR_MIN or length == 0:
            for i in idx:
                out[i] = b58encode(raws[i])
            continue
        for i, text in zip(idx, _b58encode_same_length([raws[i] for i in idx]), strict=True):
            out[i] = text
    return out


_BECH32_CHARS = np.frombuffer(BECH32_CHARSET.encode("ascii"), dtype=np.uint8)
_BECH32_TABLE_NP = np.array(_BECH32_TABLE, dtype=np.int64)


def _segwit_same_shape(hrp: str, version: int, programs: list[bytes]) -> list[str]:
    """Segwit addresses of many programs of one version and length, as :func:`encode_segwit` gives."""
    n, length = len(programs), len(programs[0])
    nsym = (length * 8 + 4) // 5
    groups = (length + 4) // 5  # 5 bytes = 40 bits = 8 symbols
    padded = np.zeros((n, groups * 5), dtype=np.int64)
    padded[:, :length] = np.frombuffer(b"".join(programs), dtype=np.uint8).reshape(n, length)
    b = padded.reshape(n, groups, 5)
    forty = (b[:, :, 0] << 32) | (b[:, :, 1] << 24) | (b[:, :, 2] << 16) | (b[:, :, 3] << 8) | b[:, :, 4]
    symbols = np.empty((n, groups, 8), dtype=np.int64)
    for k in range(8):
        symbols[:, :, k] = (forty >> (35 - 5 * k)) & 31
    data = np.empty((n, 1 + nsym + 6), dtype=np.int64)
    data[:, 0] = version
    data[:, 1:1 + nsym] = symbols.reshape(n, groups * 8)[:, :nsym]
    state = _HRP_STATE.get(hrp)
    if state is None:
        state = _HRP_STATE[hrp] = _bech32_polymod(_hrp_expand(hrp))
    chk = np.full(n, state, dtype=np.int64)
    table = _BECH32_TABLE_NP
    for k in range(1 + nsym):
        chk = ((chk & 0x1FFFFFF) << 5) ^ data[:, k] ^ table[chk >> 25]
    for _ in range(6):
        chk = ((chk & 0x1FFFFFF) << 5) ^ table[chk >> 25]
    chk ^= 1 if version == 0 else _BECH32M_CONST
    for i in range(6):
        data[:, 1 + nsym + i] = (chk >> (5 * (5 - i))) & 31
    prefix = hrp + "1"
    width = data.shape[1]
    text = _BECH32_CHARS[data].tobytes().decode("ascii")
    return [prefix + text[i:i + width] for i in range(0, n * width, width)]


def encode_segwit_many(hrp: str, programs: list[tuple[int, bytes]]) -> list[str]:
    """:func:`encode_segwit` of each ``(version, program)``, computed together (same results, faster)."""
    out: list[str] = [""] * len(programs)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (version, program) in enumerate(programs):
        _check_witness_program(version, program)
        groups.setdefault((version, len(program)), []).append(i)
    for (version, _length), idx in groups.items():
        if len(idx) < VECTOR_MIN:
            for i in idx:
                out[i] = encode_segwit(hrp, version, programs[i][1])
            continue
        texts = _segwit_same_shape(hrp, version, [programs[i][1] for i in idx])
        for i, text in zip(idx, texts, strict=True):
            out[i] = text
    return out


# --------------------------------------------------------------------------------------------------
# CashAddr (Bitcoin Cash)

_CASHADDR_GEN = (0x98F2BC8E61, 0x79B76D99E2, 0xF33E5FB3C4, 0xAE2EABE2A8, 0x1E4F43E470)


_CASHADDR_TABLE = _gen_table(_CASHADDR_GEN)


def _cashaddr_polymod(values: list[int]) -> int:
    c = 1
    table = _CASHADDR_TABLE
    for d in values:
        c = (((c & 0x07FFFFFFFF) << 5) ^ d) ^ table[c >> 35]
    return c ^ 1


def decode_cashaddr(text: str, default_prefix: str) -> tuple[int, bytes]:
    """(type, hash) of a CashAddr address (type 0 = P2PKH, 1 = P2SH); raises InputError."""
    if text.lower() != text and text.upper() != text:
        raise InputError("cashaddr text mixes upper and lower case")
    text = text.lower()
    prefix, sep, payload = text.rpartition(":")
    if not sep:
        prefix = default_prefix
    if prefix != default_prefix:
        raise InputError(f"cashaddr prefix {prefix!r} is not {default_prefix!r}")
    try:
        data = [_BECH32_INDEX[c] for c in payload]
    except KeyError as exc:
        raise InputError(f"character {exc.args[0]!r} is not in the cashaddr alphabet") from None
    if len(data) < 9:
        raise InputError("cashaddr text too short")
    if _cashaddr_polymod([ord(c) & 31 for c in prefix] + [0] + data) != 0:
        raise InputError("bad cashaddr checksum")
    raw = bytes(convertbits(data[:-8], 5, 8, False))
    version, body = raw[0], raw[1:]
    sizes = {0: 20, 1: 24, 2: 28, 3: 32, 4: 40, 5: 48, 6: 56, 7: 64}
    if version & 0x80 or sizes[version & 7] != len(body):
        raise InputError("bad cashaddr version byte")
    return version >> 3, body


# --------------------------------------------------------------------------------------------------
# EVM (EIP-55)

_HEX = frozenset("0123456789abcdefABCDEF")


def keccak256(data: bytes) -> bytes:
    """Keccak-256 (the Ethereum hash, not SHA3-256)."""
    from Crypto.Hash import keccak  # loaded when used (EVM checksums): ~30 ms that bitcoin work never needs

    return keccak.new(digest_bits=256, data=data).digest()


def to_checksum_address(address: str) -> str:
    """The EIP-55 mixed-case form of a 20-byte hex address (with or without ``0x``, any case)."""
    body = address[2:] if address[:2].lower() == "0x" else address
    if len(body) != 40 or not _HEX.issuperset(body):
        raise InputError(f"{address!r} is not 40 hex digits")
    body = body.lower()
    digest = keccak256(body.encode("ascii")).hex()
    return "0x" + "".join(c.upper() if int(h, 16) >= 8 else c for c, h in zip(body, digest[:40], strict=True))


# --------------------------------------------------------------------------------------------------
# Per-chain validation and construction


class AddressType(StrEnum):
    """What an address pays to; the UTXO values match :class:`ScriptType` values."""

    P2PKH = "p2pkh"
    P2SH = "p2sh"
    P2WPKH = "p2wpkh"
    P2WSH = "p2wsh"
    P2TR = "p2tr"
    WITNESS_UNKNOWN = "witness_unknown"
    EVM = "evm"
    TRON = "tron"

    @property
    def script_type(self) -> ScriptType | None:
        """The output script type this address pays to (None for account chains)."""
        return None if self in (AddressType.EVM, AddressType.TRON) else ScriptType(self.value)


@dataclass(frozen=True, slots=True)
class DecodedAddress:
    """A validated address: its canonical text, type and payload.

    ``payload`` is the hash160 for P2PKH/P2SH, the witness program for segwit, and the 20 bytes
    of an EVM or TRON account. ``witness_version`` is set for segwit addresses only.
    """

    chain: str
    text: str
    type: AddressType
    payload: bytes
    witness_version: int | None = None


# Base58Check version bytes of networks outside the registry, to name them in rejections.
_FOREIGN_BASE58 = {b"\x41": "Tron (trx)"}


def _base58_owner(prefix_payload: bytes, exclude: str) -> str | None:
    """The chain (or network) whose base58 version bytes begin ``prefix_payload``."""
    owners = []
    for params in CHAINS.values():
        if params.name == exclude or not params.is_utxo:
            continue
        for prefix in (params.p2pkh_prefix, *params.p2sh_prefixes):
            if prefix and prefix_payload.startswith(prefix) and len(prefix_payload) == len(prefix) + 20:
                owners.append(params.name)
                break
    for prefix, name in _FOREIGN_BASE58.items():
        if prefix_payload.startswith(prefix) and len(prefix_payload) == len(prefix) + 20:
            owners.append(name)
    return ", ".join(owners) if owners else None


def _hrp_owner(hrp: str) -> str | None:
    owners = [p.name for p in CHAINS.values() if p.bech32_hrp == hrp]
    return ", ".join(owners) if owners else None


_SEGWIT_TYPES = {(0, 20): AddressType.P2WPKH, (0, 32): AddressType.P2WSH, (1, 32): AddressType.P2TR}


def _decode_utxo(params: ChainParams, text: str) -> DecodedAddress:
    chain = params.name
    lower = text.lower()
    hrp = params.bech32_hrp
    if hrp and lower.startswith(hrp + "1"):
        try:
            got_hrp, version, program = decode_segwit(text)
        except InputError as exc:
            raise InvalidAddressError(text, chain, str(exc)) from None
        if got_hrp != hrp:  # e.g. "bcrt1..." read as "bc" + "rt1..." cannot happen: rfind("1")
            owner = _hrp_owner(got_hrp)
            raise InvalidAddressError(text, chain, f"bech32 prefix {got_hrp!r}"
                                      + (f" belongs to {owner}" if owner else " is not " + hrp))
        kind = _SEGWIT_TYPES.get((version, len(program)), AddressType.WITNESS_UNKNOWN)
        return DecodedAddress(chain, lower, kind, program, version)
    if params.cashaddr_prefix and (lower.startswith(params.cashaddr_prefix + ":")
                                   or lower[:1] in ("q", "p") and len(lower) in (42, 54)):
        try:
            kind_code, body = decode_cashaddr(text, params.cashaddr_prefix)
        except InputError as exc:
            raise InvalidAddressError(text, chain, str(exc)) from None
        if kind_code not in (0, 1) or len(body) != 20:
            raise InvalidAddressError(text, chain, f"cashaddr type {kind_code} is not P2PKH or P2SH")
        if kind_code == 0:
            return DecodedAddress(chain, b58check_encode(params.p2pkh_prefix + body), AddressType.P2PKH, body)
        return DecodedAddress(chain, b58check_encode(params.p2sh_prefix + body), AddressType.P2SH, body)
    if "1" in lower[1:] and lower.rfind("1") < 20:
        # Looks like bech32 (hrp + "1" + data) with another chain's prefix.
        other = lower[:lower.rfind("1")]
        owner = _hrp_owner(other)
        if owner:
            raise InvalidAddressError(text, chain, f"bech32 address of {owner}")
    try:
        payload = b58check_decode(text)
    except InputError as exc:
        if text.lower().startswith("0x"):
            raise InvalidAddressError(text, chain, "an EVM address, not a UTXO-chain address") from None
        raise InvalidAddressError(text, chain, str(exc)) from None
    p2pkh = params.p2pkh_prefix
    if payload.startswith(p2pkh) and len(payload) == len(p2pkh) + 20:
        return DecodedAddress(chain, text, AddressType.P2PKH, payload[len(p2pkh):])
    for prefix in params.p2sh_prefixes:
        if payload.startswith(prefix) and len(payload) == len(prefix) + 20:
            return DecodedAddress(chain, text, AddressType.P2SH, payload[len(prefix):])
    owner = _base58_owner(payload, chain)
    if owner:
        raise InvalidAddressError(text, chain, f"base58 version 0x{payload[:len(p2pkh)].hex()} "
                                  f"belongs to {owner}")
    raise InvalidAddressError(text, chain, f"unknown base58 version 0x{payload[:1].hex()} "
                              f"with {len(payload) - 1}-byte payload")


def _decode_evm(params: ChainParams, text: str) -> DecodedAddress:
    chain = params.name
    if not text.startswith(("0x", "0X")):
        raise InvalidAddressError(text, chain, "EVM addresses start with 0x")
    body = text[2:]
    if len(body) != 40 or not _HEX.issuperset(body):
        raise InvalidAddressError(text, chain, "not 40 hex digits after 0x")
    if body != body.lower() and body != body.upper() and to_checksum_address(body) != "0x" + body:
        raise InvalidAddressError(text, chain, "bad EIP-55 checksum (mixed case does not match)")
    lower = "0x" + body.lower()
    return DecodedAddress(chain, lower, AddressType.EVM, bytes.fromhex(body))


def account_address(params: ChainParams, account: bytes) -> str:
    """The canonical text of a 20-byte account on an account chain: lower-case ``0x`` hex, TRON ``T...``."""
    if len(account) != 20:
        raise InputError(f"account of {len(account)} bytes (must be 20)")
    if params.account_b58_prefix:
        return b58check_encode(params.account_b58_prefix + account)
    return "0x" + account.hex()


def _decode_b58_account(params: ChainParams, text: str) -> DecodedAddress:
    """A TRON-style account: base58check (version byte + 20 bytes) or the same bytes in hex."""
    chain, prefix = params.name, params.account_b58_prefix
    body = text[2:] if text[:2] in ("0x", "0X") else text
    if _HEX.issuperset(body) and (body != text or body[:2] == prefix.hex()):
        want = 2 * (len(prefix) + 20)
        if len(body) != want or not body.lower().startswith(prefix.hex()):
            evm_style = body != text and len(body) == 40 and not body.lower().startswith(prefix.hex())
            shape = "an EVM-style address" if evm_style else f"{len(body)} hex digits"
            raise InvalidAddressError(text, chain, f"{shape}; hex addresses are {prefix.hex()} + 20 bytes "
                                      f"({want} hex digits), or give the base58 form")
        raw = bytes.fromhex(body)
    else:
        try:
            raw = b58check_decode(text)
        except InputError as exc:
            raise InvalidAddressError(text, chain, str(exc)) from None
        if not raw.startswith(prefix) or len(raw) != len(prefix) + 20:
            owner = _base58_owner(raw, chain)
            raise InvalidAddressError(text, chain, f"base58 version 0x{raw[:1].hex()} with "
                                      f"{len(raw) - 1}-byte payload"
                                      + (f" belongs to {owner}" if owner else " is not an account"))
    account = raw[len(prefix):]
    return DecodedAddress(chain, account_address(params, account), AddressType.TRON, account)


def decode_address(chain: str, text: str) -> DecodedAddress:
    """Validate ``text`` as an address of ``chain``; raises InvalidAddressError with the reason."""
    params = get_chain(chain)
    text = text.strip()
    if not text:
        raise InvalidAddressError(text, params.name, "empty")
    if params.is_utxo:
        return _decode_utxo(params, text)
    if params.account_b58_prefix:
        return _decode_b58_account(params, text)
    return _decode_evm(params, text)


def canonical_address(chain: str, text: str) -> str:
    """The canonical form of an address on ``chain``; raises InvalidAddressError when invalid."""
    return decode_address(chain, text).text


def is_valid_address(chain: str, text: str) -> bool:
    """True when ``text`` is a valid address of ``chain``."""
    try:
        decode_address(chain, text)
    except InvalidAddressError:
        return False
    return True


def address_type(chain: str, address: str) -> AddressType:
    """The type of a valid address of ``chain``; raises InvalidAddressError when invalid."""
    return decode_address(chain, address).type


def p2pkh_address(chain: str | ChainParams, hash160: bytes) -> str:
    """The P2PKH address of a 20-byte public-key hash on ``chain``."""
    params = get_chain(chain) if isinstance(chain, str) else chain
    if len(hash160) != 20:
        raise InputError(f"P2PKH hash of {len(hash160)} bytes (must be 20)")
    return b58check_encode(params.p2pkh_prefix + hash160)


def p2sh_address(chain: str | ChainParams, hash160: bytes) -> str:
    """The P2SH address of a 20-byte script hash on ``chain``."""
    params = get_chain(chain) if isinstance(chain, str) else chain
    if len(hash160) != 20:
        raise InputError(f"P2SH hash of {len(hash160)} bytes (must be 20)")
    return b58check_encode(params.p2sh_prefix + hash160)


def segwit_address(chain: str | ChainParams, version: int, program: bytes) -> str:
    """The bech32/bech32m address of a witness program on ``chain``; InputError without segwit."""
    params = get_chain(chain) if isinstance(chain, str) else chain
    if not params.bech32_hrp:
        raise InputError(f"chain {params.name} has no segwit addresses")
    return encode_segwit(params.bech32_hrp, version, program)


def script_for_address(chain: str, address: str) -> bytes:
    """The standard output script (scriptPubKey) that pays ``address`` on a UTXO chain."""
    decoded = decode_address(chain, address)
    if decoded.type is AddressType.P2PKH:
        return b"\x76\xa9\x14" + decoded.payload + b"\x88\xac"
    if decoded.type is AddressType.P2SH:
        return b"\xa9\x14" + decoded.payload + b"\x87"
    if decoded.witness_version is not None:
        op = 0 if decoded.witness_version == 0 else 0x50 + decoded.witness_version
        return bytes((op, len(decoded.payload))) + decoded.payload
    raise InvalidAddressError(address, chain, "an account address has no output script")
