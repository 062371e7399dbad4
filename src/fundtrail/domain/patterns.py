"""CoinJoin classifiers for single transactions: which mixing protocol a transaction looks like.

Each classifier takes a :class:`~fundtrail.domain.heuristics.TxView` and its parameters and returns a
:class:`PatternMatch` (pattern, rule, confidence and the facts that made it fire) or ``None``. Values
are in base units (satoshi). The rules:

* ``generic-coinjoin``: at least ``min_equal`` outputs of one value, and at least as many inputs as
  those equal outputs (each participant brings an input), from at least two input addresses; not when
  those equal outputs are the premix outputs of a Whirlpool Tx0 (see below).
* ``wasabi-1``: Wasabi 1.x rounds: many outputs of a base denomination near 0.1 BTC (mixing levels are
  powers-of-two multiples of it); a payment to a known coordinator address raises the confidence.
* ``wabisabi``: Wasabi 2.x rounds: many inputs and outputs, most outputs on the standard denominations
  (powers of 2 and 3, 2x powers of 3, the 1-2-5 series times powers of ten).
* ``whirlpool-mix``: exactly 5 inputs and 5 outputs, all outputs one pool denomination
  (100k, 1M, 5M or 50M sat) and every input at least that much.
* ``whirlpool-tx0``: the premix transaction: an ``OP_RETURN`` output, equal premix outputs of a pool
  denomination plus a small mining-fee allowance, and at least one other output (coordinator fee, change).
  Its pattern is ``coinjoin-premix``: the funds are not mixed yet.
* ``joinmarket``: ``n >= 3`` equal outputs and ``n - 1`` or ``n`` other (change) outputs, ``n`` or more
  inputs; not when those equal outputs are the premix outputs of a Whirlpool Tx0.

A Tx0 with three or four premix outputs has the shape the two equal-output rules look for (equal outputs,
as many others: the coordinator fee and the change, several inputs), but one wallet made it. Its
``OP_RETURN`` output (the coordinator's fee payload) and premix values (a pool denomination plus the
miners' fees of the mix) tell it apart: neither JoinMarket nor any other CoinJoin protocol writes an
``OP_RETURN``, so equal outputs of premix value next to one are the premixes of a Tx0, not a mix.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from fundtrail.domain.heuristics import TxView

BTC = 100_000_000


class Pattern(StrEnum):
    """What a detected transaction is, by the name stored in ``tx_patterns.pattern``."""

    COINJOIN = "coinjoin"
    COINJOIN_PREMIX = "coinjoin-premix"
    PEEL_CHAIN = "peel-chain"


MIXER_PATTERNS = (Pattern.COINJOIN, Pattern.COINJOIN_PREMIX)
"""Patterns that count as an interaction with a mixer."""


class PatternRule(StrEnum):
    """The rule that recognised a pattern, by the name stored in ``tx_patterns.rule``."""

    GENERIC_COINJOIN = "generic-coinjoin"
    WASABI_1 = "wasabi-1"
    WABISABI = "wabisabi"
    WHIRLPOOL_MIX = "whirlpool-mix"
    WHIRLPOOL_TX0 = "whirlpool-tx0"
    JOINMARKET = "joinmarket"
    PEEL_CHAIN = "peel-chain"


@dataclass(frozen=True)
class PatternMatch:
    """A rule that fired on a transaction, with the facts (``params``) that made it fire."""

    pattern: Pattern
    rule: PatternRule
    confidence: float
    params: Mapping[str, object] = field(default_factory=dict)


WASABI_COORDINATORS = frozenset({
    "bc1qs604c7jv6amk4cxqlnvuxv26hv3e48cds4m0ew",
    "bc1qa24tsgchvuxsaccp8vrnkfd85hrcpafg20kmjw",
})
"""Wasabi 1.x coordinator fee addresses (public attribution: the GraphSense ``wasabi_collector`` pack)."""

WHIRLPOOL_POOLS = (100_000, 1_000_000, 5_000_000, 50_000_000)
"""Whirlpool pool denominations in satoshi (0.001, 0.01, 0.05 and 0.5 BTC)."""


@dataclass(frozen=True, slots=True)
class PatternParams:
    """Thresholds of the CoinJoin rules."""

    generic_min_equal: int = 3
    wasabi_min_equal: int = 10
    wasabi_base_low: int = 9_000_000
    wasabi_base_high: int = 11_000_000
    wasabi_levels: int = 6
    """Mixing levels above the base denomination: base * 2**1 .. base * 2**levels."""
    wasabi_coordinators: frozenset[str] = WASABI_COORDINATORS
    wabisabi_min_inputs: int = 50
    wabisabi_min_outputs: int = 50
    wabisabi_min_standard_share: float = 0.5
    wabisabi_min_denomination: int = 5_000
    whirlpool_pools: tuple[int, ...] = WHIRLPOOL_POOLS
    whirlpool_size: int = 5
    tx0_max_fee_share: float = 0.02
    """A premix output carries at most this share of its pool denomination (at least 20,000 sat) as fee."""
    joinmarket_min_n: int = 3

    @property
    def min_equal(self) -> int:
        """The fewest equal outputs any mix rule (not Tx0) needs: a pre-filter for batch drivers."""
        return min(self.generic_min_equal, self.wasabi_min_equal, self.whirlpool_size, self.joinmarket_min_n)


def standard_denominations(low: int = 5_000, high: int = 21_000_000 * BTC) -> frozenset[int]:
    """The WabiSabi standard denominations between ``low`` and ``high`` satoshi."""
    found: set[int] = set()
    p = 1
    while p <= high:
        found.add(p)           # powers of 2
        p *= 2
    p = 1
    while p <= high:
        found.update((p, 2 * p))  # powers of 3 and twice them
        p *= 3
    p = 1
    while p <= high:
        found.update((p, 2 * p, 5 * p))  # 1-2-5 series
        p *= 10
    return frozenset(d for d in found if low <= d <= high)


_STANDARD = standard_denominations()


def _values(tx: TxView) -> list[int]:
    return [o.value for o in tx.outputs if o.script_type != "nulldata"]


def _most_common_value(values: list[int]) -> tuple[int, int]:
    """(value, count) of the most frequent output value; the larger value wins a tie."""
    if not values:
        return 0, 0
    counts = Counter(values)
    value = max(counts, key=lambda v: (counts[v], v))
    return value, counts[value]


def _input_addresses(tx: TxView) -> int:
    return len({i.address for i in tx.inputs if i.address is not None})


def _equal_confidence(equal: int) -> float:
    return min(0.95, 1.0 - 2.0 ** -(equal - 1))


def _premix_outputs(tx: TxView, value: int, p: PatternParams) -> bool:
    """True when the equal outputs of ``value`` are the premix outputs of a Whirlpool Tx0 (see module doc)."""
    tx0 = whirlpool_tx0(tx, p)
    return tx0 is not None and tx0.params["premix_value"] == value


def generic_coinjoin(tx: TxView, p: PatternParams = PatternParams()) -> PatternMatch | None:
    """At least ``generic_min_equal`` equal outputs, at least that many inputs, from two or more addresses.

    Equal outputs that are the premixes of a Whirlpool Tx0 do not count: one wallet made them.
    """
    value, equal = _most_common_value(_values(tx))
    if equal < p.generic_min_equal or len(tx.inputs) < equal or _input_addresses(tx) < 2:
        return None
    if _premix_outputs(tx, value, p):
        return None
    return PatternMatch(Pattern.COINJOIN, PatternRule.GENERIC_COINJOIN, _equal_confidence(equal),
                        {"denomination": value, "equal_outputs": equal, "participants": equal,
                         "inputs": len(tx.inputs), "outputs": len(tx.outputs),
                         "min_equal": p.generic_min_equal})


def wasabi_1(tx: TxView, p: PatternParams = PatternParams()) -> PatternMatch | None:
    """A Wasabi 1.x round: many equal outputs at a base denomination near 0.1 BTC."""
    values = _values(tx)
    counts = Counter(values)
    bases = [v for v, c in counts.items()
             if p.wasabi_base_low <= v <= p.wasabi_base_high and c >= p.wasabi_min_equal]
    if not bases or _input_addresses(tx) < 2:
        return None
    base = max(bases, key=lambda v: (counts[v], v))
    if len(tx.inputs) < counts[base]:
        return None
    levels = {k: counts[base * 2**k] for k in range(1, p.wasabi_levels + 1)
              if counts.get(base * 2**k, 0) >= 2}
    coordinator = next((o.address for o in tx.outputs if o.address in p.wasabi_coordinators), None)
    return PatternMatch(Pattern.COINJOIN, PatternRule.WASABI_1, 0.95 if coordinator else 0.8,
                        {"denomination": base, "equal_outputs": counts[base], "inputs": len(tx.inputs),
                         "outputs": len(tx.outputs), "mixing_levels": {str(k): c for k, c in levels.items()},
                         "coordinator": coordinator,
                         "base_range": [p.wasabi_base_low, p.wasabi_base_high],
                         "min_equal": p.wasabi_min_equal})


def wabisabi(tx: TxView, p: PatternParams = PatternParams()) -> PatternMatch | None:
    """A WabiSabi (Wasabi 2.x) round: many inputs and outputs, mostly on standard denominations."""
    values = _values(tx)
    if len(tx.inputs) < p.wabisabi_min_inputs or len(values) < p.wabisabi_min_outputs:
        return None
    standard = sum(1 for v in values if v >= p.wabisabi_min_denomination and v in _STANDARD)
    share = standard / len(values)
    if share < p.wabisabi_min_standard_share:
        return None
    return PatternMatch(Pattern.COINJOIN, PatternRule.WABISABI, 0.9,
                        {"inputs": len(tx.inputs), "outputs": len(values), "standard_outputs": standard,
                         "standard_share": round(share, 4), "min_inputs": p.wabisabi_min_inputs,
                         "min_outputs": p.wabisabi_min_outputs,
                         "min_standard_share": p.wabisabi_min_standard_share})


def whirlpool_mix(tx: TxView, p: PatternParams = PatternParams()) -> PatternMatch | None:
    """A Whirlpool mix: exactly ``whirlpool_size`` inputs and outputs, all outputs one pool denomination."""
    values = _values(tx)
    size = p.whirlpool_size
    if len(tx.inputs) != size or len(tx.outputs) != size or len(values) != size or len(set(values)) != 1:
        return None
    pool = values[0]
    if pool not in p.whirlpool_pools:
        return None
    if any(i.value is None or i.value < pool for i in tx.inputs):
        return None
    return PatternMatch(Pattern.COINJOIN, PatternRule.WHIRLPOOL_MIX, 0.95,
                        {"pool": pool, "inputs": size, "outputs": size})


def whirlpool_tx0(tx: TxView, p: PatternParams = PatternParams()) -> PatternMatch | None:
    """A Whirlpool Tx0: ``OP_RETURN``, equal premix outputs of pool + fee allowance, and another output."""
    if not any(o.script_type == "nulldata" for o in tx.outputs):
        return None
    values = _values(tx)
    counts = Counter(values)
    best: tuple[int, int, int] | None = None  # (premix count, pool, premix value)
    for value, count in counts.items():
        for pool in p.whirlpool_pools:
            allowance = max(int(pool * p.tx0_max_fee_share), 20_000)
            if pool < value <= pool + allowance and (best is None or (count, pool) > best[:2]):
                best = (count, pool, value)
    if best is None:
        return None
    premixes, pool, value = best
    others = len(values) - premixes
    if others < 1:
        return None
    return PatternMatch(Pattern.COINJOIN_PREMIX, PatternRule.WHIRLPOOL_TX0, 0.85 if premixes >= 2 else 0.6,
                        {"pool": pool, "premix_value": value, "premix_outputs": premixes,
                         "other_outputs": others, "inputs": len(tx.inputs)})


def joinmarket(tx: TxView, p: PatternParams = PatternParams()) -> PatternMatch | None:
    """A JoinMarket round: ``n`` equal outputs plus ``n - 1`` or ``n`` change outputs, ``n >= 3``.

    Not a Whirlpool Tx0 whose premix outputs are the equal outputs (same shape, one wallet).
    """
    values = _values(tx)
    value, n = _most_common_value(values)
    changes = len(values) - n
    if n < p.joinmarket_min_n or changes not in (n - 1, n) or len(tx.inputs) < n or _input_addresses(tx) < 2:
        return None
    if _premix_outputs(tx, value, p):
        return None
    return PatternMatch(Pattern.COINJOIN, PatternRule.JOINMARKET, 0.8,
                        {"denomination": value, "equal_outputs": n, "change_outputs": changes,
                         "inputs": len(tx.inputs), "min_n": p.joinmarket_min_n})


CLASSIFIERS = (whirlpool_mix, whirlpool_tx0, wasabi_1, wabisabi, joinmarket, generic_coinjoin)
"""Every single-transaction classifier, most specific first."""


def classify_tx(tx: TxView, p: PatternParams = PatternParams()) -> list[PatternMatch]:
    """Every CoinJoin rule that fires on ``tx`` (most specific first); empty for coinbase transactions."""
    if tx.coinbase:
        return []
    return [m for m in (c(tx, p) for c in CLASSIFIERS) if m is not None]


def is_coinjoin(tx: TxView, p: PatternParams = PatternParams()) -> bool:
    """True when any mix rule (not a premix) fires on ``tx``."""
    return any(m.pattern is Pattern.COINJOIN for m in classify_tx(tx, p))
