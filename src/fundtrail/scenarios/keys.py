"""Keys and addresses of generated wallets: four script kinds, addresses derived the way wallets do.

Public keys are random (they sign nothing); everything after them is derived as a wallet would:
P2PKH and P2WPKH pay to HASH160 of the compressed key, P2SH-P2WPKH to HASH160 of the redeem script
``0 <HASH160(key)>``, P2TR to the x-only key. The output script (``script_hex``) is built from the same
hash the address encodes, so deriving the address from the script gives the address back.
Addresses are encoded a thousand at a time with the vectorised codecs of
:mod:`fundtrail.domain.addresses`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from fundtrail.domain.addresses import b58check_encode_many, encode_segwit_many
from fundtrail.domain.chains import ChainParams
from fundtrail.scenarios.dice import Dice
from fundtrail.scenarios.groundtruth import AddressRole, Entity


class ScriptKind(StrEnum):
    """The output script kinds wallets of the world use; a wallet keeps its kind."""

    P2PKH = "p2pkh"
    P2SH_P2WPKH = "p2sh-p2wpkh"
    P2WPKH = "p2wpkh"
    P2TR = "p2tr"


@dataclass(frozen=True, slots=True)
class KindSpec:
    """Sizes and names of a script kind: bitcoin-etl ``type``, vbytes of an input and an output."""

    etl_type: str
    input_vbytes: float
    output_vbytes: int
    witness_bytes: int
    """Witness bytes an input of this kind carries (0 for legacy inputs)."""


KIND_SPECS: dict[ScriptKind, KindSpec] = {
    ScriptKind.P2PKH: KindSpec("pubkeyhash", 148, 34, 0),
    ScriptKind.P2SH_P2WPKH: KindSpec("scripthash", 91, 32, 108),
    ScriptKind.P2WPKH: KindSpec("witness_v0_keyhash", 68, 31, 108),
    ScriptKind.P2TR: KindSpec("witness_v1_taproot", 57.5, 43, 66),
}


@dataclass(frozen=True, slots=True)
class Key:
    """A receiving key of a wallet: its address and the output script that pays it."""

    address: str
    kind: ScriptKind
    script: bytes
    pubkey: bytes

    @property
    def script_hex(self) -> str:
        """The output script as hex (bitcoin-etl ``script_hex``)."""
        return self.script.hex()

    @property
    def script_asm(self) -> str:
        """The output script as Bitcoin Core writes it (bitcoin-etl ``script_asm``)."""
        kind = self.kind
        if kind is ScriptKind.P2PKH:
            return f"OP_DUP OP_HASH160 {self.script[3:23].hex()} OP_EQUALVERIFY OP_CHECKSIG"
        if kind is ScriptKind.P2SH_P2WPKH:
            return f"OP_HASH160 {self.script[2:22].hex()} OP_EQUAL"
        return f"{0 if kind is ScriptKind.P2WPKH else 1} {self.script[2:].hex()}"


def _hash160(data: bytes) -> bytes:
    return hashlib.new("ripemd160", hashlib.sha256(data).digest()).digest()


OwnerSink = Callable[[Key, Entity, AddressRole], None]
"""Called once for every key handed out: the ground truth of who owns which address."""


class KeyFactory:
    """Hands out fresh keys of each script kind, generated in batches, and reports each owner."""

    def __init__(self, params: ChainParams, dice: Dice, on_new: OwnerSink, *, batch: int = 1024) -> None:
        if not params.segwit or not params.bech32_hrp:
            raise ValueError(f"chain {params.name} has no segwit addresses; the generator needs them")
        self.params = params
        self.dice = dice
        self.on_new = on_new
        self.batch = batch
        self._ready: dict[ScriptKind, list[Key]] = {k: [] for k in ScriptKind}
        self.issued = 0

    def new(self, kind: ScriptKind, owner: Entity, role: AddressRole) -> Key:
        """A never-used key of ``kind`` for ``owner``."""
        ready = self._ready[kind]
        if not ready:
            ready.extend(reversed(self._make(kind, self.batch)))
        key = ready.pop()
        self.issued += 1
        self.on_new(key, owner, role)
        return key

    def _make(self, kind: ScriptKind, n: int) -> list[Key]:
        raw = self.dice.bytes(32 * n)
        hrp = self.params.bech32_hrp or ""
        if kind is ScriptKind.P2TR:
            programs = [raw[32 * i : 32 * (i + 1)] for i in range(n)]
            addresses = encode_segwit_many(hrp, [(1, p) for p in programs])
            return [Key(a, kind, b"\x51\x20" + p, p) for a, p in zip(addresses, programs, strict=True)]
        pubkeys = [bytes((2 + (raw[32 * i] & 1),)) + raw[32 * i : 32 * (i + 1)] for i in range(n)]
        hashes = [_hash160(pk) for pk in pubkeys]
        if kind is ScriptKind.P2WPKH:
            addresses = encode_segwit_many(hrp, [(0, h) for h in hashes])
            return [
                Key(a, kind, b"\x00\x14" + h, pk) for a, h, pk in zip(addresses, hashes, pubkeys, strict=True)
            ]
        if kind is ScriptKind.P2PKH:
            addresses = b58check_encode_many([self.params.p2pkh_prefix + h for h in hashes])
            return [
                Key(a, kind, b"\x76\xa9\x14" + h + b"\x88\xac", pk)
                for a, h, pk in zip(addresses, hashes, pubkeys, strict=True)
            ]
        script_hashes = [_hash160(b"\x00\x14" + h) for h in hashes]  # P2SH of the P2WPKH redeem script
        addresses = b58check_encode_many([self.params.p2sh_prefix + sh for sh in script_hashes])
        return [
            Key(a, kind, b"\xa9\x14" + sh + b"\x87", pk)
            for a, sh, pk in zip(addresses, script_hashes, pubkeys, strict=True)
        ]


def redeem_script(key: Key) -> bytes:
    """The P2WPKH redeem script a P2SH-P2WPKH input reveals."""
    return b"\x00\x14" + _hash160(key.pubkey)
