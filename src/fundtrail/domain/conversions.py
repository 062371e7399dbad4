"""Conversions: value taken in on one chain and asset and paid out on another (pure types and memos).

A :class:`Conversion` has a ``kind`` (swap, bridge, pool), the ``rule`` that found it, a ``confidence``
(0..1), the number of ``candidates`` the rule chose among, and two :class:`Leg` s: where the value went in
(``in_``: the pool, bridge or pair that received it) and where it came out (``out``: the recipient).
What a rule refused is a :class:`Skip`: a counted warning naming the transaction, never a conversion.

Cross-chain memos follow THORChain's grammar: ``SWAP:ASSET:DEST[:LIMIT...]`` (``=`` and ``s`` are short
for ``SWAP``), ``ASSET`` being ``CHAIN.SYMBOL[-CONTRACT]``, answered on the destination chain by
``OUT:<inbound txid>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fundtrail.domain.chains import NATIVE_ASSET
from fundtrail.errors import InputError


class ConversionKind(StrEnum):
    """What changed: the asset (swap), the chain (bridge) or the owner's visibility (pool)."""

    SWAP = "swap"
    BRIDGE = "bridge"
    POOL = "pool"


@dataclass(frozen=True, slots=True)
class Leg:
    """One side of a conversion: ``value`` base units of ``asset`` at ``address`` in ``txid`` on ``chain``."""

    chain: str
    txid: str
    address: str
    asset: str
    value: int
    time: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (value as a string of base units)."""
        return {"chain": self.chain, "txid": self.txid, "address": self.address, "asset": self.asset,
                "value": str(self.value), "time": self.time}


@dataclass(frozen=True, slots=True)
class Conversion:
    """A detected conversion. ``anonymity_set`` is the pool's anonymity set (pools only)."""

    kind: ConversionKind
    rule: str
    confidence: float
    candidates: int
    in_: Leg
    out: Leg
    anonymity_set: int | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as ``fundtrail conversions`` and the trace document print it."""
        doc: dict[str, Any] = {"kind": self.kind.value, "rule": self.rule, "confidence": self.confidence,
                               "candidates": self.candidates, "in": self.in_.to_dict(),
                               "out": self.out.to_dict()}
        if self.anonymity_set is not None:
            doc["anonymity_set"] = self.anonymity_set
        if self.evidence:
            doc["evidence"] = self.evidence
        return doc


@dataclass(frozen=True, slots=True)
class Skip:
    """Input a rule refused (malformed log, look-alike contract, bad memo, unmatched relay ...)."""

    reason: str
    chain: str
    txid: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        """JSON form."""
        return {"reason": self.reason, "chain": self.chain, "txid": self.txid, "detail": self.detail}


# --------------------------------------------------------------------------- memos

MEMO_CHAINS: dict[str, str] = {
    "BTC": "btc", "ETH": "eth", "BSC": "bsc", "LTC": "ltc", "BCH": "bch", "DOGE": "doge", "AVAX": "avax",
    "BASE": "base", "ARB": "arb",
}
"""Chain prefixes of memo assets and the FundTrail chains they name."""

_SWAP_ACTIONS = frozenset({"SWAP", "=", "S"})


class MemoAction(StrEnum):
    """What a memo asks for."""

    SWAP = "swap"  # inbound: swap to ASSET and pay DEST
    OUT = "out"    # outbound: the payment answering an inbound transaction


@dataclass(frozen=True, slots=True)
class Memo:
    """A parsed memo. ``SWAP``: ``chain``/``asset``/``address`` of the destination; ``OUT``: ``inbound``."""

    action: MemoAction
    chain: str | None = None
    asset: str | None = None
    address: str | None = None
    inbound: str | None = None


def normalise_txid(text: str) -> str:
    """A txid as memos quote it (upper case, no ``0x``) in the store's form: lower-case hex."""
    t = text.strip().lower()
    return t[2:] if t.startswith("0x") else t


def parse_memo(text: str) -> Memo:
    """Parse a memo; raises InputError naming the problem (unknown chain, bad address, bad shape)."""
    from fundtrail.domain.addresses import canonical_address  # numpy: not needed to list the kinds

    parts = text.strip().split(":")
    action = parts[0].strip().upper()
    if action == "OUT":
        if len(parts) < 2 or not parts[1].strip():
            raise InputError(f"memo {text!r}: OUT without the inbound transaction")
        inbound = normalise_txid(parts[1])
        if len(inbound) != 64 or any(c not in "0123456789abcdef" for c in inbound):
            raise InputError(f"memo {text!r}: {parts[1]!r} is not a transaction id")
        return Memo(MemoAction.OUT, inbound=inbound)
    if action not in _SWAP_ACTIONS:
        raise InputError(f"memo {text!r}: not a swap or OUT memo")
    if len(parts) < 3:
        raise InputError(f"memo {text!r}: a swap memo needs an asset and a destination")
    asset_text, dest = parts[1].strip(), parts[2].strip()
    prefix, dot, symbol = asset_text.partition(".")
    if not dot or not symbol:
        raise InputError(f"memo {text!r}: asset {asset_text!r} is not CHAIN.SYMBOL")
    chain = MEMO_CHAINS.get(prefix.upper())
    if chain is None:
        raise InputError(f"memo {text!r}: unknown chain {prefix!r}")
    try:
        address = canonical_address(chain, dest)
    except InputError as error:
        raise InputError(f"memo {text!r}: {error}") from None
    _, dash, contract = symbol.partition("-")
    if dash:
        try:
            asset = canonical_address(chain, contract)
        except InputError:
            raise InputError(f"memo {text!r}: token contract {contract!r} is not an address") from None
    else:
        asset = NATIVE_ASSET
    return Memo(MemoAction.SWAP, chain=chain, asset=asset, address=address)
