"""Output script classification: which template a scriptPubKey follows and which address it pays.

:func:`classify_script` runs for every output a reader sees, so it tests the templates by length
and opcode bytes first and builds an address only for the template that matched. The templates
follow Bitcoin Core's ``Solver``: P2PK, P2PKH, P2SH, witness programs (P2WPKH, P2WSH, P2TR and
future versions), bare multisig, OP_RETURN data carriers; everything else is nonstandard.
"""

from __future__ import annotations

import hashlib

from fundtrail.domain.addresses import (
    b58check_encode,
    b58check_encode_many,
    encode_segwit,
    encode_segwit_many,
)
from fundtrail.domain.chains import ChainParams, get_chain
from fundtrail.domain.records import ScriptType

try:
    hashlib.new("ripemd160", b"")

    def _ripemd160(data: bytes) -> bytes:
        return hashlib.new("ripemd160", data).digest()
except ValueError:  # OpenSSL 3 without the legacy provider
    from Crypto.Hash import RIPEMD160

    def _ripemd160(data: bytes) -> bytes:
        return RIPEMD160.new(data).digest()

_sha256 = hashlib.sha256

OP_0 = 0x00
OP_PUSHDATA1 = 0x4C
OP_PUSHDATA2 = 0x4D
OP_PUSHDATA4 = 0x4E
OP_1 = 0x51
OP_16 = 0x60
OP_RETURN = 0x6A
OP_DUP = 0x76
OP_EQUAL = 0x87
OP_EQUALVERIFY = 0x88
OP_HASH160 = 0xA9
OP_CHECKSIG = 0xAC
OP_CHECKMULTISIG = 0xAE

_P2PKH = ScriptType.P2PKH
_P2SH = ScriptType.P2SH
_P2PK = ScriptType.P2PK
_P2WPKH = ScriptType.P2WPKH
_P2WSH = ScriptType.P2WSH
_P2TR = ScriptType.P2TR
_WITNESS_UNKNOWN = ScriptType.WITNESS_UNKNOWN
_MULTISIG = ScriptType.MULTISIG
_NULLDATA = ScriptType.NULLDATA
_NONSTANDARD = ScriptType.NONSTANDARD

# Public-key length by its first byte (compressed 02/03, uncompressed 04, hybrid 06/07).
_PUBKEY_LEN = {2: 33, 3: 33, 4: 65, 6: 65, 7: 65}


def hash160(data: bytes) -> bytes:
    """RIPEMD-160 of SHA-256: the hash behind P2PKH and P2SH addresses."""
    return _ripemd160(_sha256(data).digest())


def _params(chain: str | ChainParams) -> ChainParams:
    return chain if isinstance(chain, ChainParams) else get_chain(chain)


def _is_push_only(script: bytes, start: int) -> bool:
    """True when ``script[start:]`` is a sequence of well-formed pushes (opcodes up to OP_16)."""
    i = start
    end = len(script)
    while i < end:
        op = script[i]
        i += 1
        if op < OP_PUSHDATA1:
            i += op
        elif op == OP_PUSHDATA1:
            if i + 1 > end:
                return False
            i += 1 + script[i]
        elif op == OP_PUSHDATA2:
            if i + 2 > end:
                return False
            i += 2 + int.from_bytes(script[i:i + 2], "little")
        elif op == OP_PUSHDATA4:
            if i + 4 > end:
                return False
            i += 4 + int.from_bytes(script[i:i + 4], "little")
        elif op > OP_16:
            return False
        if i > end:
            return False
    return True


def op_return_data(script: bytes) -> bytes | None:
    """The bytes an ``OP_RETURN`` output carries (its pushes joined), or ``None`` for any other script.

    Memos of cross-chain swaps (``=:ETH.ETH:0x...``) are read from these bytes.
    """
    if not script or script[0] != OP_RETURN or not _is_push_only(script, 1):
        return None
    out = bytearray()
    i, end = 1, len(script)
    while i < end:
        op = script[i]
        i += 1
        if op < OP_PUSHDATA1:
            size = op
        elif op == OP_PUSHDATA1:
            size, i = script[i], i + 1
        elif op == OP_PUSHDATA2:
            size, i = int.from_bytes(script[i:i + 2], "little"), i + 2
        elif op == OP_PUSHDATA4:
            size, i = int.from_bytes(script[i:i + 4], "little"), i + 4
        else:  # OP_1NEGATE .. OP_16 push small numbers, no bytes
            continue
        out += script[i:i + size]
        i += size
    return bytes(out)


def _is_multisig(script: bytes) -> bool:
    """OP_m <pubkey>... OP_n OP_CHECKMULTISIG with 1 <= m <= n <= 16 and n keys of valid size."""
    size = len(script)
    if size < 37 or script[-1] != OP_CHECKMULTISIG:
        return False
    m_op = script[0]
    n_op = script[-2]
    if not (OP_1 <= m_op <= OP_16 and OP_1 <= n_op <= OP_16 and m_op <= n_op):
        return False
    i = 1
    keys = 0
    end = size - 2
    while i < end:
        push = script[i]
        if push not in (33, 65) or i + 1 + push > end or _PUBKEY_LEN.get(script[i + 1]) != push:
            return False
        i += 1 + push
        keys += 1
    return i == end and keys == n_op - OP_1 + 1


def classify_script(chain: str | ChainParams, script: bytes) -> tuple[ScriptType, str | None]:
    """The template of an output script and the address it pays (None when it has none).

    P2PK outputs are given the P2PKH address of their public key, as explorers show them.
    Witness programs are recognised only on chains with segwit addresses (a bech32 prefix).
    """
    size = len(script)
    if size == 25:
        if (script[0] == OP_DUP and script[1] == OP_HASH160 and script[2] == 20
                and script[23] == OP_EQUALVERIFY and script[24] == OP_CHECKSIG):
            params = _params(chain)
            return _P2PKH, b58check_encode(params.p2pkh_prefix + script[3:23])
    elif size == 23:
        if script[0] == OP_HASH160 and script[1] == 20 and script[22] == OP_EQUAL:
            params = _params(chain)
            return _P2SH, b58check_encode(params.p2sh_prefix + script[2:22])
    elif size == 35:
        if script[0] == 33 and script[34] == OP_CHECKSIG and script[1] in (2, 3):
            params = _params(chain)
            return _P2PK, b58check_encode(params.p2pkh_prefix + hash160(script[1:34]))
    elif size == 67:
        if script[0] == 65 and script[66] == OP_CHECKSIG and script[1] in (4, 6, 7):
            params = _params(chain)
            return _P2PK, b58check_encode(params.p2pkh_prefix + hash160(script[1:66]))
    if size == 0:
        return _NONSTANDARD, None
    first = script[0]
    # Witness program: a version opcode (OP_0, OP_1..OP_16) then one direct push of 2..40 bytes.
    if 4 <= size <= 42 and script[1] == size - 2 and (first == OP_0 or OP_1 <= first <= OP_16):
        params = _params(chain)
        if params.bech32_hrp:
            version = 0 if first == OP_0 else first - 0x50
            program = script[2:]
            if version == 0:
                if size == 22:
                    return _P2WPKH, encode_segwit(params.bech32_hrp, 0, program)
                if size == 34:
                    return _P2WSH, encode_segwit(params.bech32_hrp, 0, program)
                return _NONSTANDARD, None
            if version == 1 and size == 34:
                return _P2TR, encode_segwit(params.bech32_hrp, 1, program)
            return _WITNESS_UNKNOWN, encode_segwit(params.bech32_hrp, version, program)
    if first == OP_RETURN:
        return (_NULLDATA if _is_push_only(script, 1) else _NONSTANDARD), None
    if _is_multisig(script):
        return _MULTISIG, None
    return _NONSTANDARD, None


def classify_scripts(chain: str | ChainParams,
                     scripts: list[bytes]) -> tuple[list[ScriptType], list[str | None]]:
    """:func:`classify_script` of many scripts (a block's outputs): same results, addresses encoded
    together, which is several times faster per output."""
    params = _params(chain)
    p2pkh = params.p2pkh_prefix
    p2sh = params.p2sh_prefix
    hrp = params.bech32_hrp
    types: list[ScriptType] = []
    addresses: list[str | None] = [None] * len(scripts)
    add = types.append
    b58_at: list[int] = []
    b58_payloads: list[bytes] = []
    seg_at: list[int] = []
    seg_programs: list[tuple[int, bytes]] = []
    for i, script in enumerate(scripts):
        size = len(script)
        if size == 25:
            if (script[0] == OP_DUP and script[1] == OP_HASH160 and script[2] == 20
                    and script[23] == OP_EQUALVERIFY and script[24] == OP_CHECKSIG):
                add(_P2PKH)
                b58_at.append(i)
                b58_payloads.append(p2pkh + script[3:23])
                continue
        elif size == 22:
            if hrp and script[0] == OP_0 and script[1] == 20:
                add(_P2WPKH)
                seg_at.append(i)
                seg_programs.append((0, script[2:]))
                continue
        elif size == 23:
            if script[0] == OP_HASH160 and script[1] == 20 and script[22] == OP_EQUAL:
                add(_P2SH)
                b58_at.append(i)
                b58_payloads.append(p2sh + script[2:22])
                continue
        elif size == 34:
            if hrp and script[1] == 32 and (script[0] == OP_0 or script[0] == OP_1):
                add(_P2WSH if script[0] == OP_0 else _P2TR)
                seg_at.append(i)
                seg_programs.append((0 if script[0] == OP_0 else 1, script[2:]))
                continue
        kind, address = classify_script(params, script)
        add(kind)
        addresses[i] = address
    if b58_payloads:
        for i, address in zip(b58_at, b58check_encode_many(b58_payloads), strict=True):
            addresses[i] = address
    if seg_programs:
        assert hrp is not None
        for i, address in zip(seg_at, encode_segwit_many(hrp, seg_programs), strict=True):
            addresses[i] = address
    return types, addresses
