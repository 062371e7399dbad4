"""The result of a trace: endpoints, flows, where it stopped, totals; ``TraceResult.to_dict`` is the JSON
contract of ``fundtrail trace --format json``."""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from fundtrail.analysis.tracing.params import TraceParams
from fundtrail.domain.taint import Direction, TaintPolicy

REASONS = ("service", "hub", "coinjoin", "unspent", "max_hops", "max_steps", "min_value", "time_window",
           "change", "coinbase", "origin", "not_in_store", "unknown")
"""Why a trace stopped at an endpoint."""

STOP_REASONS = frozenset(REASONS) - {"unspent", "coinbase", "origin"}
"""Reasons where the trace was cut short (listed under ``stopped``), as opposed to where funds rest."""

SAME_OWNER_RULES = ("change", "peel_chain", "cluster")
"""Rules that keep a step inside one owner (the step uses no hop): a detected change output (or an
output paying an address that funded the transaction), the next step of a detected peel chain, an
address of the sender's co-spend cluster."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where traced value rests or where the trace stopped, with who is behind it."""

    address: str | None
    txid: str | None
    asset: str
    reason: str
    tainted_value: int
    hops: int
    cluster: str | None = None
    entity: str | None = None
    category: str | None = None
    jurisdiction: str | None = None
    degree: int | None = None
    abuse: str | None = None
    chain: str | None = None
    """The chain, set when a trace crossed chains (then every endpoint names its chain)."""
    sanctioned: tuple[str, ...] = ()
    """The sanctions lists naming the address in force on the day of the transactions that reached it."""
    sanctions: tuple[tuple[str, str, str], ...] = ()
    """(address, list, listed_on): each listing behind ``sanctioned``."""

    def sort_key(self) -> tuple[Any, ...]:
        """Deterministic order: largest value first, then by names."""
        return (-self.tainted_value, self.chain or "", self.asset, self.address or "", self.txid or "",
                self.reason)

    def to_dict(self) -> dict[str, Any]:
        """The endpoint as a JSON object (values as strings)."""
        doc: dict[str, Any] = {
            "address": self.address, "txid": self.txid, "asset": self.asset, "cluster": self.cluster,
            "entity": self.entity, "category": self.category, "jurisdiction": self.jurisdiction,
            "tainted_value": str(self.tainted_value), "hops": self.hops, "reason": self.reason}
        if self.chain is not None:
            doc = {"chain": self.chain, **doc}
        if self.sanctioned:
            doc["sanctioned"] = True
            doc["sanctions_lists"] = list(self.sanctioned)
            doc["sanctions"] = [{"address": a, "list": n, "listed_on": d} for a, n, d in self.sanctions]
        return doc


@dataclass(frozen=True, slots=True)
class FlowInput:
    """One input of a multi-input UTXO transaction that a forward flow leaves: who paid in, how much of
    it, and how much of that was traced value (``address`` and ``value`` are None when the store does
    not hold the output it spends)."""

    input: int
    address: str | None
    value: int | None
    tainted_value: int

    def to_dict(self) -> dict[str, Any]:
        """The input as a JSON object (values as strings)."""
        return {"input": self.input, "address": self.address,
                "value": None if self.value is None else str(self.value),
                "tainted_value": str(self.tainted_value)}


@dataclass(frozen=True, slots=True)
class Flow:
    """One movement of traced value: an output (UTXO forward), an input (UTXO backward) or a transfer."""

    txid: str
    from_address: str | None
    to_address: str | None
    asset: str
    value: int
    tainted_value: int
    hop: int
    evidence: tuple[str, ...] = ()
    output: int | None = None
    input: int | None = None
    index: int | None = None
    kind: str | None = None
    step: int | None = None
    """Transactions (UTXO) or transfers (accounts) from the seeds; ``hop`` counts owner hand-overs."""
    same_owner: str | None = None
    """The rule (:data:`SAME_OWNER_RULES`) that kept this step inside one owner, when it used no hop."""
    inputs: tuple[FlowInput, ...] = ()
    """UTXO forward, a transaction with several inputs: every input, in order (``from_address`` is the
    one that brought the most traced value)."""
    chain: str | None = None
    """The chain, set when a trace crossed chains (then every flow names its chain)."""
    sanctioned: tuple[str, ...] = ()
    """The sanctions lists naming the flow's sender or receiver, in force on the day of its transaction."""
    sanctions: tuple[tuple[str, str, str], ...] = ()
    """(address, list, listed_on): each listing behind ``sanctioned``."""

    @property
    def steps(self) -> int:
        """The step (the hop when none was recorded)."""
        return self.hop if self.step is None else self.step

    def sort_key(self) -> tuple[Any, ...]:
        """Deterministic order: by hop, step, transaction, position."""
        return (self.hop, self.steps, self.chain or "", self.txid, self.asset, self.kind or "",
                self.index if self.index is not None else -1,
                self.output if self.output is not None else -1, self.input if self.input is not None else -1,
                self.from_address or "", self.to_address or "")

    def to_dict(self) -> dict[str, Any]:
        """The flow as a JSON object (values as strings)."""
        step = self.hop if self.step is None else self.step
        if self.chain is None:
            doc: dict[str, Any] = {"txid": self.txid, "from": self.from_address, "to": self.to_address,
                                   "asset": self.asset, "value": str(self.value),
                                   "tainted_value": str(self.tainted_value), "hop": self.hop, "step": step}
        else:
            doc = {"chain": self.chain, "txid": self.txid, "from": self.from_address, "to": self.to_address,
                   "asset": self.asset, "value": str(self.value), "tainted_value": str(self.tainted_value),
                   "hop": self.hop, "step": step}
        if self.same_owner is not None:
            doc["same_owner"] = self.same_owner
        if self.output is not None:
            doc["output"] = self.output
        if self.input is not None:
            doc["input"] = self.input
        if self.index is not None:
            doc["index"] = self.index
        if self.kind is not None:
            doc["kind"] = self.kind
        if self.inputs:
            doc["inputs"] = [i.to_dict() for i in self.inputs]
        if self.sanctioned:
            doc["sanctioned"] = True
            doc["sanctions_lists"] = list(self.sanctioned)
            doc["sanctions"] = [{"address": a, "list": n, "listed_on": d} for a, n, d in self.sanctions]
        doc["evidence"] = list(self.evidence)
        return doc


@dataclass(frozen=True)
class FlowSource:
    """Flows built on demand, and their documents built straight from the engine's columns (equal to
    ``[f.to_dict() for f in sorted(flows)]``, without making the Flow objects)."""

    build: Callable[[], Sequence[Flow]]
    documents: Callable[[], list[dict[str, Any]]]

    def __call__(self) -> Sequence[Flow]:
        return self.build()


@dataclass(frozen=True)
class TraceResult:
    """A finished trace: endpoints, flows, where it stopped, totals. ``to_dict`` is the JSON contract.

    ``flows`` are built on first access (from arrays the trace kept), sorted by hop, txid, position.
    """

    chain: str
    params: TraceParams
    seeds: tuple[str, ...]
    endpoints: tuple[Endpoint, ...]
    seeded: dict[str, int] = field(default_factory=dict)
    fees: dict[str, int] = field(default_factory=dict)
    overlap: dict[str, int] = field(default_factory=dict)
    conversions: tuple[dict[str, Any], ...] = ()
    """The conversions the trace followed (kind, rule, confidence, candidates, in, out, tainted_in,
    tainted_out); amounts of other chains are keyed ``chain:asset`` in ``seeded``/``fees``/totals."""
    _flows: Sequence[Flow] | Callable[[], Sequence[Flow]] = field(default=(), repr=False, compare=False)

    @cached_property
    def flows(self) -> tuple[Flow, ...]:
        """Every movement of traced value, sorted."""
        source = self._flows
        with bulk():
            flows = source() if callable(source) else source
            return tuple(sorted(flows, key=Flow.sort_key))

    @property
    def policy(self) -> TaintPolicy:
        """The taint policy."""
        return self.params.policy

    @property
    def direction(self) -> Direction:
        """Forward or backward."""
        return self.params.direction

    @property
    def stopped(self) -> tuple[Endpoint, ...]:
        """Endpoints where the trace was cut short (hub, service, coinjoin, limits)."""
        return tuple(e for e in self.endpoints if e.reason in STOP_REASONS)

    def totals(self) -> dict[str, Any]:
        """Per asset: value seeded, value at endpoints by reason, fees; counts."""
        return self._totals(len(self.flows))

    def _totals(self, n_flows: int) -> dict[str, Any]:
        assets: dict[str, dict[str, Any]] = {}
        reasons: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        base = self.chain
        for e in self.endpoints:  # one pass: the asset key of each endpoint (as asset_key), then its reason
            key = e.asset if e.chain is None or e.chain == base else f"{e.chain}:{e.asset}"
            reasons[key][e.reason] += e.tainted_value
        names = sorted(set(self.seeded) | set(reasons) | set(self.fees))
        for asset in names:
            by_reason = reasons.get(asset, {})
            assets[asset] = {
                "seeded": str(self.seeded.get(asset, 0)),
                "endpoints": str(sum(by_reason.values())),
                "fees": str(self.fees.get(asset, 0)),
                "overlap": str(self.overlap.get(asset, 0)),
                "by_reason": {r: str(v) for r, v in sorted(by_reason.items())},
            }
        return {"flows": n_flows, "endpoints": len(self.endpoints), "stopped": len(self.stopped),
                "assets": assets}

    def asset_key(self, item: Endpoint | Flow) -> str:
        """The key of an asset in the totals: the asset on the trace's chain, ``chain:asset`` elsewhere."""
        if item.chain is None or item.chain == self.chain:
            return item.asset
        return f"{item.chain}:{item.asset}"

    def to_dict(self) -> dict[str, Any]:
        """The trace as the ``fundtrail trace --format json`` document."""
        with bulk():
            return self._document()

    def _document(self) -> dict[str, Any]:
        stopped = []
        for e in self.stopped:
            if e.address is None and e.txid:
                item: dict[str, Any] = {"txid": e.txid, "reason": e.reason, "asset": e.asset,
                                        "tainted_value": str(e.tainted_value), "hops": e.hops}
            else:
                item = {"address": e.address, "reason": e.reason, "asset": e.asset,
                        "tainted_value": str(e.tainted_value), "hops": e.hops}
            if e.chain is not None:
                item = {"chain": e.chain, **item}
            if e.degree is not None:
                item["degree"] = e.degree
            if e.reason == "service":
                item["entity"] = e.entity
                item["category"] = e.category
            stopped.append(item)
        source = self._flows
        if isinstance(source, FlowSource) and "flows" not in self.__dict__:
            flows = source.documents()
        else:
            flows = [f.to_dict() for f in self.flows]
        doc = {"chain": self.chain, "policy": self.params.policy.value,
               "direction": self.params.direction.value, "seeds": list(self.seeds),
               "parameters": self.params.to_dict(),
               "endpoints": [e.to_dict() for e in self.endpoints],
               "flows": flows, "stopped": stopped, "totals": self._totals(len(flows))}
        if self.conversions:
            doc["conversions"] = [dict(c) for c in self.conversions]
        return doc


@contextmanager
def bulk() -> Iterator[None]:
    """Pause the cyclic garbage collector while a trace builds many acyclic objects (flows, documents).

    Those objects hold no reference cycles, so the collector has nothing to find in them; left on, it
    walks every live object again and again as they pile up (tens of thousands for a large trace).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
