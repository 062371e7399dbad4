"""Taint policies: how traced value moves through a transaction or through an account's balance.

Three named policies, each a rule on small values:

* **poison**: every output of a transaction with any tainted input is fully tainted; an account that
  ever received tainted value sends only tainted value. Taint is not conserved (it over-approximates).
* **haircut**: each output receives the tainted share of what went in, in proportion to its value
  (``tainted_in * output_value / total_in``); an account sends its balance's tainted share.
* **fifo** (Clayton's case): value keeps its order. In a UTXO transaction the inputs, laid end to end in
  input order, fill the outputs in output order (what is left pays the fee). An account's received lots
  queue up in time order and its outgoing transfers draw them down from the front.

Backward tracing asks where value came from and uses the same rules transposed: haircut gives each input
its proportional share of the value of interest, fifo maps the positions of interest back onto the
inputs, poison attributes every input in full.

Money is exact integers. The haircut rounding rule is **cumulative flooring**: tainted value ``t`` spread
over parts ``v_1..v_n`` of a whole ``D`` gives part ``k`` the amount
``floor(t * C_k / D) - floor(t * C_(k-1) / D)`` where ``C_k = v_1 + ... + v_k``. Each part gets its exact
share rounded down or up by less than one unit, never more than its own value, the parts together get
exactly ``floor(t * C_n / D)``, and the rest stays with what is left over (the fee, the remaining
balance). It depends only on the order of the parts, so a re-run gives the same integers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

INT64_MAX = 2**63 - 1


class TaintPolicy(StrEnum):
    """How tainted value spreads over what a transaction or an account pays out."""

    POISON = "poison"
    HAIRCUT = "haircut"
    FIFO = "fifo"


class Direction(StrEnum):
    """Forward: where did the funds go. Backward: where did they come from."""

    FORWARD = "forward"
    BACKWARD = "backward"


TAINT = "taint"
"""The source of tainted value in a forward trace (clean or unknown value has source ``None``)."""


@dataclass(frozen=True, slots=True)
class Lot:
    """A run of value, in order, attributed to ``source`` (``None``: clean, or of unknown origin)."""

    amount: int
    source: Hashable | None = None


def merge_lots(lots: Iterable[Lot]) -> tuple[Lot, ...]:
    """Drop empty lots and merge neighbours with the same source."""
    out: list[Lot] = []
    for lot in lots:
        if lot.amount <= 0:
            continue
        if out and out[-1].source == lot.source:
            out[-1] = Lot(out[-1].amount + lot.amount, lot.source)
        else:
            out.append(lot)
    return tuple(out)


def lots_amount(lots: Iterable[Lot], source: Hashable | None = TAINT) -> int:
    """The value of ``lots`` attributed to ``source``."""
    return sum(lot.amount for lot in lots if lot.source == source)


# -------------------------------------------------------------------------------------------- rules


def haircut_shares(tainted: int, whole: int, parts: Sequence[int]) -> tuple[int, ...]:
    """Spread ``tainted`` over ``parts`` of ``whole`` in proportion, by cumulative flooring.

    The denominator is ``max(whole, sum(parts))`` (so no part gets more than its value when the whole is
    not fully known) and ``tainted`` is capped at it.
    """
    if tainted < 0 or whole < 0 or any(v < 0 for v in parts):
        raise ValueError("haircut shares need non-negative amounts")
    denominator = max(whole, sum(parts))
    if tainted == 0 or denominator == 0:
        return (0,) * len(parts)
    tainted = min(tainted, denominator)
    shares = []
    cumulative = previous = 0
    for value in parts:
        cumulative += value
        current = tainted * cumulative // denominator
        shares.append(current - previous)
        previous = current
    return tuple(shares)


def _exact_dtype(*bounds: int) -> type:
    """int64 when a product of the bounds fits, else Python ints (object arrays)."""
    import numpy as np  # here, not at module level: the CLI imports this module for its enums only

    product = 1
    for b in bounds:
        product *= max(int(b), 1)
    return np.int64 if product <= INT64_MAX else object


def haircut_shares_grouped(counts: npt.NDArray[np.int64], tainted: npt.NDArray[np.generic],
                           whole: npt.NDArray[np.generic],
                           parts: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    """:func:`haircut_shares` for many groups at once (vectorised, exact).

    Group ``g`` has ``counts[g]`` consecutive ``parts``, its own ``tainted`` and ``whole``. The result has
    one share per part; it equals the scalar rule group by group. Products that could overflow int64
    are computed on Python ints.
    """
    import numpy as np

    counts = np.asarray(counts, dtype=np.int64)
    n_parts = int(counts.sum())
    if n_parts == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    nonempty = counts > 0
    sums = np.zeros(len(counts), dtype=object if parts.dtype == object else np.int64)
    sums[nonempty] = np.add.reduceat(parts, starts[nonempty])
    denominator = np.maximum(np.asarray(whole), sums)
    capped = np.minimum(np.asarray(tainted), denominator)
    bound_t = int(capped.max()) if len(capped) else 0
    bound_c = int(denominator.max()) if len(denominator) else 0
    dtype: type = _exact_dtype(bound_t, bound_c)
    if parts.dtype == object or dtype is object:
        dtype = object
    p: npt.NDArray[Any] = parts.astype(dtype)
    cumulative = np.cumsum(p)
    before: npt.NDArray[Any] = np.zeros(len(counts), dtype=dtype)
    has_before = starts > 0
    before[has_before] = cumulative[starts[has_before] - 1]
    cumulative = cumulative - np.repeat(before, counts)
    t: npt.NDArray[Any] = np.repeat(capped.astype(dtype), counts)
    d: npt.NDArray[Any] = np.repeat(denominator.astype(dtype), counts)
    safe_d = np.where(d == 0, 1, d)
    current = np.where(d == 0, 0, t * cumulative // safe_d)
    previous = np.empty_like(current)
    previous[1:] = current[:-1]
    previous[starts[nonempty]] = 0
    shares = current - previous
    return shares.astype(np.int64) if dtype is not object else shares


def poison_shares(is_tainted: bool, parts: Sequence[int]) -> tuple[int, ...]:
    """Every part fully tainted when anything tainted went in, else nothing."""
    return tuple(parts) if is_tainted else (0,) * len(parts)


def fifo_cut(lots: Sequence[Lot],
             parts: Sequence[int]) -> tuple[tuple[tuple[Lot, ...], ...], tuple[Lot, ...]]:
    """Lay ``lots`` end to end and cut them into ``parts`` in order (first in, first out).

    Returns the lots of each part and the lots left over. Where the lots run out before the parts are
    filled, the missing value is a lot of unknown source (``None``).
    """
    queue = deque(lot for lot in lots if lot.amount > 0)
    cut: list[tuple[Lot, ...]] = []
    for need in parts:
        if need < 0:
            raise ValueError("fifo parts must be non-negative")
        taken: list[Lot] = []
        while need > 0 and queue:
            head = queue[0]
            if head.amount <= need:
                taken.append(queue.popleft())
                need -= head.amount
            else:
                taken.append(Lot(need, head.source))
                queue[0] = Lot(head.amount - need, head.source)
                need = 0
        if need > 0:
            taken.append(Lot(need, None))
        cut.append(merge_lots(taken))
    return tuple(cut), merge_lots(queue)


# -------------------------------------------------------------------------------- transactions


@dataclass(frozen=True, slots=True)
class Coin:
    """A value with its tainted part: an input or output of a UTXO transaction.

    ``lots`` says where inside the value the taint sits (fifo needs it); when empty, the tainted part is
    taken to come first.
    """

    value: int
    tainted: int = 0
    lots: tuple[Lot, ...] = ()

    def ordered_lots(self, source: Hashable = TAINT) -> tuple[Lot, ...]:
        """The coin as lots: ``lots`` if given, else the tainted part first, then the clean rest."""
        if self.lots:
            return self.lots
        return merge_lots((Lot(self.tainted, source), Lot(self.value - self.tainted, None)))


@dataclass(frozen=True, slots=True)
class TxTaint:
    """Taint per part (outputs forward, inputs backward) and what is left over (fee forward)."""

    parts: tuple[int, ...]
    rest: int
    lots: tuple[tuple[Lot, ...], ...] = ()


def propagate_tx(policy: TaintPolicy, inputs: Sequence[Coin], output_values: Sequence[int]) -> TxTaint:
    """Forward rule for one transaction: the tainted value of each output and of the fee.

    For haircut and fifo the tainted value out (outputs plus fee) equals the tainted value in.
    """
    total_in = sum(c.value for c in inputs)
    tainted_in = sum(c.tainted for c in inputs)
    if policy is TaintPolicy.POISON:
        shares = poison_shares(tainted_in > 0, output_values)
        fee = max(total_in - sum(output_values), 0) if tainted_in > 0 else 0
        return TxTaint(shares, fee)
    if policy is TaintPolicy.HAIRCUT:
        shares = haircut_shares(tainted_in, total_in, output_values)
        return TxTaint(shares, tainted_in - sum(shares))
    lots = [lot for c in inputs for lot in c.ordered_lots()]
    cut, left = fifo_cut(lots, output_values)
    return TxTaint(tuple(lots_amount(c) for c in cut), lots_amount(left), cut)


def propagate_back(policy: TaintPolicy, outputs: Sequence[Coin], input_values: Sequence[int],
                   fee: int = 0) -> TxTaint:
    """Backward rule for one transaction: how much of the value of interest each input supplied.

    ``outputs`` carry the value of interest as their tainted part (fifo: its position as lots); ``fee``
    is the fee, laid after the outputs for fifo. ``rest`` is the interest no input can account for (the
    inputs' values are not all known).
    """
    interest = sum(c.tainted for c in outputs)
    total_in = sum(input_values)
    if policy is TaintPolicy.POISON:
        return TxTaint(poison_shares(interest > 0, input_values), 0)
    if policy is TaintPolicy.HAIRCUT:
        shares = haircut_shares(min(interest, total_in), total_in, input_values)
        return TxTaint(shares, interest - sum(shares))
    lots = [lot for c in outputs for lot in c.ordered_lots()]
    lots.append(Lot(fee, None))
    cut, left = fifo_cut(lots, input_values)
    return TxTaint(tuple(lots_amount(c) for c in cut), lots_amount(left), cut)


# ------------------------------------------------------------------------------------- accounts


class BalancePool:
    """An account's balance as value of known sources, drawn down by a taint policy.

    ``receive`` adds value of a source; ``send`` takes value out and says which sources it came from.
    fifo keeps lots in arrival order and draws from the front; haircut keeps one component per source
    (in order of first arrival) and draws from every component in proportion, by cumulative flooring;
    poison marks the whole balance once any value of the poisoning source arrived. Sending more than
    the balance draws the shortfall from an unknown source (``None``): the store may not hold all of the
    account's history.
    """

    __slots__ = ("policy", "_lots", "_parts", "_balance", "_poisoned", "_poison_source")

    def __init__(self, policy: TaintPolicy, poison_source: Hashable = TAINT) -> None:
        self.policy = policy
        self._lots: deque[Lot] = deque()
        self._parts: dict[Hashable | None, int] = {}
        self._balance = 0
        self._poisoned = False
        self._poison_source = poison_source

    @property
    def balance(self) -> int:
        """The value held."""
        return self._balance

    def receive(self, amount: int, source: Hashable | None = None) -> None:
        """Add ``amount`` received from ``source``."""
        if amount <= 0:
            return
        self._balance += amount
        if self.policy is TaintPolicy.FIFO:
            if self._lots and self._lots[-1].source == source:
                self._lots[-1] = Lot(self._lots[-1].amount + amount, source)
            else:
                self._lots.append(Lot(amount, source))
        elif self.policy is TaintPolicy.HAIRCUT:
            self._parts[source] = self._parts.get(source, 0) + amount
        elif source == self._poison_source:
            self._poisoned = True

    def send(self, amount: int) -> tuple[Lot, ...]:
        """Take ``amount`` out; returns where it came from (shortfall: source ``None``)."""
        if amount <= 0:
            return ()
        shortfall = max(amount - self._balance, 0)
        drawn = amount - shortfall
        self._balance -= drawn
        if self.policy is TaintPolicy.FIFO:
            cut, left = fifo_cut(list(self._lots), [drawn])
            self._lots = deque(left)
            out = list(cut[0])
        elif self.policy is TaintPolicy.HAIRCUT:
            sources = list(self._parts)
            values = [self._parts[s] for s in sources]
            shares = haircut_shares(drawn, sum(values), values)
            out = []
            for source, share in zip(sources, shares, strict=True):
                if share:
                    out.append(Lot(share, source))
                    left_over = self._parts[source] - share
                    if left_over:
                        self._parts[source] = left_over
                    else:
                        del self._parts[source]
        else:
            out = [Lot(drawn, self._poison_source if self._poisoned else None)]
        if shortfall:
            out.append(Lot(shortfall, None))
        return merge_lots(out)

    def held(self) -> tuple[Lot, ...]:
        """The balance as lots by source."""
        if self.policy is TaintPolicy.FIFO:
            return tuple(self._lots)
        if self.policy is TaintPolicy.HAIRCUT:
            return tuple(Lot(v, s) for s, v in self._parts.items() if v)
        return merge_lots([Lot(self._balance, self._poison_source if self._poisoned else None)])
