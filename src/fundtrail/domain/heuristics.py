"""Change-address heuristics on single transactions: which output went back to the spender.

Each rule looks at one transaction (a :class:`TxView`) and names the output it believes is change, with a
confidence in [0, 1]. Rules only speak for outputs that carry an address; ``OP_RETURN`` and other
address-less outputs are ignored. The rules:

* ``address-reuse``: an output paying an address that also funds the transaction is change (certain).
* ``one-time-change``: exactly one output address is new (never seen before) while every other output
  address was seen before; the new one is change.
* ``address-type``: all inputs share one script type and exactly one output has it; that one is change.
* ``round-number``: every output but one is a round amount (a payment of whole units); the odd one is change.
* ``optimal-change``: exactly one output is smaller than every input; a wallet would not have added the
  smallest input if it were the payment, so it is change.
* ``peel-chain``: a 1-in/2-out step of a detected peel chain; its larger (continuing) output is change,
  provided it keeps the script type of the spent coin. A peeling wallet sends its remainder to an address
  of its own kind; a larger output of another script type is a payment to another wallet, and the "chain"
  has crossed from one owner to the next (someone paid more than half of a coin, and the payee spent it
  the same way). A step that *ends* its chain (its larger output is spent, but not by a further step of
  the chain) gets the lower ``peel_end_confidence``: there the structure broke, and a payee who received
  more than half of a coin and spent it otherwise looks the same, so another rule must agree before the
  output reaches a clustering threshold. A last step whose larger output is still unspent keeps
  ``peel_confidence``: the chain may go on, and nothing contradicts it yet.

:func:`combine_evidence` folds the evidence of a transaction into one confidence per output: the rules
on an output combine as independent witnesses (``1 - prod(1 - c)``), and evidence that *another* output is
the change counts against it, so conflicting rules cancel instead of both winning. ``address-reuse`` is
certain: it is never discounted, and an output it names makes every uncertain output of the transaction
a payment (score 0), since a wallet returns its change once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class ChangeRule(StrEnum):
    """The change heuristics, by the name stored in ``change_outputs.heuristic``."""

    ADDRESS_REUSE = "address-reuse"
    ONE_TIME_CHANGE = "one-time-change"
    ADDRESS_TYPE = "address-type"
    ROUND_NUMBER = "round-number"
    OPTIMAL_CHANGE = "optimal-change"
    PEEL_CHAIN = "peel-chain"


COMBINED = "combined"
"""The ``heuristic`` value of the row holding an output's combined confidence."""


@dataclass(frozen=True, slots=True)
class TxInput:
    """A spent output as the spending transaction sees it. ``value`` is ``None`` when unresolved."""

    address: str | None
    value: int | None
    script_type: str | None = None


@dataclass(frozen=True, slots=True)
class TxOutput:
    """An output of a transaction. ``seen_before``: its address appeared in an earlier transaction."""

    n: int
    address: str | None
    value: int
    script_type: str
    seen_before: bool = False


@dataclass(frozen=True, slots=True)
class TxView:
    """One transaction with what the heuristics need to know about it."""

    txid: str
    inputs: tuple[TxInput, ...]
    outputs: tuple[TxOutput, ...]
    coinbase: bool = False

    @property
    def addressed_outputs(self) -> tuple[TxOutput, ...]:
        """Outputs that pay an address (the only ones change rules speak about)."""
        return tuple(o for o in self.outputs if o.address is not None)


@dataclass(frozen=True, slots=True)
class ChangeParams:
    """Confidences and thresholds of the change rules."""

    reuse_confidence: float = 1.0
    one_time_confidence: float = 0.7
    address_type_confidence: float = 0.6
    round_confidence: float = 0.6
    optimal_confidence: float = 0.5
    peel_confidence: float = 0.8
    peel_end_confidence: float = 0.55
    """The peel-chain rule on a step ending its chain (larger output spent, not by a further step): below
    0.8 alone, above it with any other rule of confidence 0.6 or more."""
    round_zeros: int = 5
    """A value is round when it ends in at least this many decimal zeros (in base units)."""
    peel_max_payment_share: float = 0.5
    """In a peel step, the payment output carries at most this share of the two outputs."""

    def confidence(self, rule: ChangeRule) -> float:
        """The confidence a rule gives its output."""
        return {
            ChangeRule.ADDRESS_REUSE: self.reuse_confidence,
            ChangeRule.ONE_TIME_CHANGE: self.one_time_confidence,
            ChangeRule.ADDRESS_TYPE: self.address_type_confidence,
            ChangeRule.ROUND_NUMBER: self.round_confidence,
            ChangeRule.OPTIMAL_CHANGE: self.optimal_confidence,
            ChangeRule.PEEL_CHAIN: self.peel_confidence,
        }[rule]


@dataclass(frozen=True, slots=True)
class ChangeEvidence:
    """One rule naming output ``n`` of a transaction as change."""

    n: int
    rule: ChangeRule
    confidence: float


@dataclass(frozen=True, slots=True)
class CombinedChange:
    """All evidence on one output, combined."""

    n: int
    confidence: float
    rules: tuple[ChangeRule, ...]


def is_round(value: int, zeros: int) -> bool:
    """True when ``value`` is a positive multiple of ``10**zeros``."""
    return value > 0 and value % 10**zeros == 0


def peel_split(values: tuple[int, int], max_payment_share: float) -> tuple[int, int] | None:
    """Positions (payment, continuing) of a 1-in/2-out peel step's outputs, or ``None`` when not a peel."""
    small, big = (0, 1) if values[0] < values[1] else (1, 0)
    total = values[0] + values[1]
    if values[small] == values[big] or total <= 0 or values[small] > max_payment_share * total:
        return None
    return small, big


def peel_change(tx: TxView, params: ChangeParams, *, chain_end: bool = False) -> ChangeEvidence | None:
    """Peel-chain evidence on a step ``tx`` of a detected chain: its continuing output, or ``None``.

    The step must be 1-in/2-out with a payment of at most ``peel_max_payment_share``, and its continuing
    output must have the script type of the spent coin (when known). ``chain_end``: ``tx`` ends its chain
    (its larger output is spent, but not by a further step), and the evidence has ``peel_end_confidence``.
    """
    outs = tx.addressed_outputs
    if len(tx.inputs) != 1 or len(tx.outputs) != 2 or len(outs) != 2:
        return None
    split = peel_split((outs[0].value, outs[1].value), params.peel_max_payment_share)
    if split is None:
        return None
    continuing = outs[split[1]]
    in_type = tx.inputs[0].script_type
    if in_type is not None and continuing.script_type != in_type:
        return None
    confidence = params.peel_end_confidence if chain_end else params.peel_confidence
    return ChangeEvidence(continuing.n, ChangeRule.PEEL_CHAIN, confidence)


def change_evidence(tx: TxView, params: ChangeParams = ChangeParams(), *,
                    peel_chain: bool = False, peel_end: bool = False) -> list[ChangeEvidence]:
    """Every change rule that fires on ``tx``, in rule order then output order.

    ``peel_chain`` says that peel-chain detection found ``tx`` as a step of a chain; ``peel_end`` that
    it ends the chain: its larger output is spent, but not by a further step.
    """
    outs = tx.addressed_outputs
    if tx.coinbase or len(outs) < 2 or not tx.inputs:
        return []
    found: list[ChangeEvidence] = []

    def name(rule: ChangeRule, chosen: list[TxOutput]) -> None:
        found.extend(ChangeEvidence(o.n, rule, params.confidence(rule)) for o in chosen)

    def only(candidates: list[TxOutput]) -> list[TxOutput]:
        return candidates if len(candidates) == 1 else []

    spenders = {i.address for i in tx.inputs if i.address is not None}
    name(ChangeRule.ADDRESS_REUSE, [o for o in outs if o.address in spenders])

    fresh = [o for o in outs if not o.seen_before]
    name(ChangeRule.ONE_TIME_CHANGE, only(fresh))

    in_types = {i.script_type for i in tx.inputs}
    if len(in_types) == 1 and None not in in_types:
        (in_type,) = in_types
        name(ChangeRule.ADDRESS_TYPE, only([o for o in outs if o.script_type == in_type]))

    name(ChangeRule.ROUND_NUMBER, only([o for o in outs if not is_round(o.value, params.round_zeros)]))

    in_values = [i.value for i in tx.inputs]
    if all(v is not None for v in in_values):
        smallest = min(v for v in in_values if v is not None)
        name(ChangeRule.OPTIMAL_CHANGE, only([o for o in outs if o.value < smallest]))

    peel = peel_change(tx, params, chain_end=peel_end) if peel_chain else None
    if peel is not None:
        found.append(peel)

    order = list(ChangeRule)
    found.sort(key=lambda e: (order.index(e.rule), e.n))
    return found


def combine_evidence(evidence: list[ChangeEvidence]) -> list[CombinedChange]:
    """One combined confidence per output named by ``evidence`` (all from one transaction), by output.

    ``support(o) = 1 - prod(1 - c)`` over the rules naming ``o``; an output named by a certain rule
    (confidence 1) scores 1; when one is, every other output scores 0 (the change is found, the rest are
    payments); otherwise an output scores ``support(o) * prod(1 - support(p))`` over the other outputs
    ``p``, so that rules disagreeing on which output is change weaken each other.
    """
    rules: dict[int, list[ChangeRule]] = {}
    miss: dict[int, float] = {}
    certain: set[int] = set()
    for e in evidence:
        rules.setdefault(e.n, []).append(e.rule)
        miss[e.n] = miss.get(e.n, 1.0) * (1.0 - e.confidence)
        if e.confidence >= 1.0:
            certain.add(e.n)
    support = {n: 1.0 - m for n, m in miss.items()}
    combined = []
    for n in sorted(rules):
        if n in certain:
            score = 1.0
        elif certain:
            score = 0.0
        else:
            score = support[n] * math.prod(1.0 - support[p] for p in sorted(support) if p != n)
        combined.append(CombinedChange(n, score, tuple(rules[n])))
    return combined
