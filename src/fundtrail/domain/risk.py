"""Risk indicators: definitions, the pure checks behind them, scoring to a level, and explanations.

An indicator is a standardised red flag (FATF's virtual-asset red flags, sanctions screening ...) with
a weight (0-100), an optional floor level (a direct sanctions hit is ``severe`` whatever else holds)
and parameters. The catalogue is data (``analysis/indicators.yaml``), so an agency can change weights
and thresholds or add indicators that reuse a check with other parameters.

Scoring: fired indicators combine like independent signals, ``score = 100 * (1 - prod(1 - w/100))``,
so one strong flag outweighs many weak ones and the score never exceeds 100; the level is the band of
the score, raised to the highest floor among the fired indicators. Every fired indicator carries the
evidence that made it fire, so the level can be explained line by line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any


class RiskLevel(StrEnum):
    """How risky an address is, from ``none`` to ``severe``."""

    SEVERE = "severe"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    NONE = "none"

    @property
    def rank(self) -> int:
        """0 for ``none`` up to 4 for ``severe``."""
        return _RANKS[self]


_RANKS = {RiskLevel.NONE: 0, RiskLevel.LOW: 1, RiskLevel.MEDIUM: 2, RiskLevel.HIGH: 3, RiskLevel.SEVERE: 4}

LEVEL_BANDS: tuple[tuple[int, RiskLevel], ...] = (
    (90, RiskLevel.SEVERE), (60, RiskLevel.HIGH), (30, RiskLevel.MEDIUM), (1, RiskLevel.LOW))
"""Lowest score of each level (the score is 0..100)."""


def level_of_score(score: int) -> RiskLevel:
    """The level band a score falls in."""
    for lowest, level in LEVEL_BANDS:
        if score >= lowest:
            return level
    return RiskLevel.NONE


@dataclass(frozen=True, slots=True)
class IndicatorDefinition:
    """One indicator of the catalogue."""

    id: str
    title: str
    description: str
    source: str
    section: str
    check: str
    """The name of the check that evaluates it (``sanctioned``, ``exposure``, ``mixer`` ...)."""
    weight: int
    floor: RiskLevel = RiskLevel.NONE
    parameters: Mapping[str, Any] = field(default_factory=dict)
    enabled: bool = True

    def param(self, name: str, default: Any = None) -> Any:
        """A parameter, or ``default`` when the catalogue does not set it."""
        return self.parameters.get(name, default)


def merge_catalogue(base: Mapping[str, IndicatorDefinition],
                    overrides: Iterable[Mapping[str, Any]]) -> dict[str, IndicatorDefinition]:
    """Apply overriding entries (by ``id``) to a catalogue: fields replace, parameters merge key by key.

    An entry with a new id must be complete (it adds an indicator); ``enabled: false`` switches one off.
    """
    out = dict(base)
    for entry in overrides:
        ident = str(entry["id"])
        if ident in out:
            current = out[ident]
            changes = {k: v for k, v in entry.items() if k not in ("id", "parameters")}
            if "floor" in changes:
                changes["floor"] = RiskLevel(changes["floor"])
            params = {**current.parameters, **dict(entry.get("parameters") or {})}
            out[ident] = replace(current, parameters=params, **changes)
        else:
            out[ident] = definition_from_mapping(entry)
    return out


def definition_from_mapping(entry: Mapping[str, Any]) -> IndicatorDefinition:
    """A complete indicator from a mapping of its fields (validated at the file edge)."""
    return IndicatorDefinition(
        id=str(entry["id"]), title=str(entry["title"]), description=str(entry["description"]),
        source=str(entry["source"]), section=str(entry.get("section", "")), check=str(entry["check"]),
        weight=int(entry["weight"]), floor=RiskLevel(entry.get("floor", "none")),
        parameters=dict(entry.get("parameters") or {}), enabled=bool(entry.get("enabled", True)))


@dataclass(frozen=True, slots=True)
class Evidence:
    """A fact behind an indicator: a transaction, a counterparty, a tag or a list entry, with its source."""

    kind: str
    description: str
    txid: str | None = None
    address: str | None = None
    counterparty: str | None = None
    value: int | None = None
    asset: str | None = None
    height: int | None = None
    category: str | None = None
    label: str | None = None
    source: str | None = None
    confidence: int | None = None
    share: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able mapping without empty fields; values as strings of base units."""
        out: dict[str, Any] = {}
        for f in fields(self):
            name = f.name
            value = getattr(self, name)
            if value is None:
                continue
            out[name] = str(value) if name == "value" else value
        return out


@dataclass(frozen=True, slots=True)
class FiredIndicator:
    """An indicator that fired, with its evidence and a one-line summary of why."""

    definition: IndicatorDefinition
    summary: str
    evidence: tuple[Evidence, ...] = ()
    occurrences: int = 1

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able mapping."""
        d = self.definition
        return {"id": d.id, "title": d.title, "description": d.description, "source": d.source,
                "section": d.section, "weight": d.weight, "floor": d.floor.value, "summary": self.summary,
                "occurrences": self.occurrences, "parameters": dict(d.parameters),
                "evidence": [e.to_dict() for e in self.evidence]}


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    """The risk of an address: level, score and the fired indicators that explain them."""

    level: RiskLevel
    score: int
    indicators: tuple[FiredIndicator, ...]

    def explanation(self) -> list[str]:
        """One line per fired indicator, strongest first, then the verdict."""
        lines = []
        for f in self.indicators:
            d = f.definition
            floor = f", at least {d.floor.value}" if d.floor is not RiskLevel.NONE else ""
            lines.append(f"{d.id} (weight {d.weight}{floor}): {f.summary}")
        lines.append(f"level {self.level.value}, score {self.score}"
                     + ("" if self.indicators else ": no indicator fired"))
        return lines

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able mapping."""
        return {"level": self.level.value, "score": self.score,
                "indicators": [f.to_dict() for f in self.indicators], "explanation": self.explanation()}


def assess(fired: Iterable[FiredIndicator]) -> RiskAssessment:
    """Score fired indicators (each indicator counts once) and band the score into a level."""
    by_id: dict[str, FiredIndicator] = {}
    for f in fired:
        by_id.setdefault(f.definition.id, f)
    ordered = sorted(by_id.values(), key=lambda f: (-f.definition.floor.rank, -f.definition.weight,
                                                    f.definition.id))
    remaining = 1.0
    for f in ordered:
        remaining *= 1.0 - min(max(f.definition.weight, 0), 100) / 100.0
    score = round(100 * (1.0 - remaining))
    level = level_of_score(score)
    for f in ordered:
        if f.definition.floor.rank > level.rank:
            level = f.definition.floor
    return RiskAssessment(level=level, score=score, indicators=tuple(ordered))


# ------------------------------------------------------------------------------------------------
# Pure checks on gathered facts


def matches_categories(labels: Iterable[str | None], wanted: Iterable[str],
                       ancestors: Mapping[str, Sequence[str]] | None = None) -> str | None:
    """The first of ``labels`` (category or abuse ids) that is one of ``wanted`` or narrower than one.

    ``ancestors`` maps a concept to itself and its broader concepts (from the concepts taxonomy), so
    ``pyramid_scheme`` matches ``investment_fraud``.
    """
    targets = set(wanted)
    for label in labels:
        if label is None:
            continue
        lineage = ancestors.get(label, (label,)) if ancestors else (label,)
        if label in targets or targets.intersection(lineage):
            return label
    return None


@dataclass(frozen=True, slots=True)
class Payment:
    """A value an address received or sent in one transaction."""

    txid: str
    value: int
    height: int
    time: int


def near_threshold(payments: Iterable[Payment], threshold: int, margin: float) -> list[Payment]:
    """Payments just under a reporting threshold: ``threshold * (1 - margin) <= value < threshold``."""
    low = threshold - int(threshold * margin)
    return [p for p in payments if low <= p.value < threshold]


@dataclass(frozen=True, slots=True)
class PassThrough:
    """A received amount and the delay until it left again (FIFO or the exact spending link)."""

    in_txid: str
    out_txid: str
    value: int
    blocks: int
    seconds: int


def fifo_pass_through(received: Sequence[Payment], sent: Sequence[Payment]) -> list[PassThrough]:
    """Match outgoing value to the oldest unspent incoming value (account chains: no spending links)."""
    events = sorted([(p.height, p.time, 0, i) for i, p in enumerate(received)]
                    + [(p.height, p.time, 1, i) for i, p in enumerate(sent)])
    queue: list[list[Any]] = []  # [payment, remaining]
    out: list[PassThrough] = []
    for _, _, kind, i in events:
        if kind == 0:
            queue.append([received[i], received[i].value])
            continue
        spend = sent[i]
        need = spend.value
        while need > 0 and queue:
            head = queue[0]
            take = min(need, head[1])
            rx: Payment = head[0]
            out.append(PassThrough(rx.txid, spend.txid, take, spend.height - rx.height, spend.time - rx.time))
            head[1] -= take
            need -= take
            if head[1] == 0:
                queue.pop(0)
    return out


@dataclass(frozen=True, slots=True)
class RapidMovement:
    """How much of what an address received left again quickly."""

    received: int
    rapid: int
    links: tuple[PassThrough, ...]

    @property
    def ratio(self) -> float:
        """Share of the received value that passed through within the window."""
        return self.rapid / self.received if self.received else 0.0


def rapid_movement(received_total: int, links: Iterable[PassThrough], *, max_blocks: int | None,
                   max_seconds: int | None) -> RapidMovement:
    """The links that left within ``max_blocks`` blocks or ``max_seconds`` seconds of arriving."""
    quick = tuple(link for link in links
                  if (max_blocks is not None and link.blocks <= max_blocks)
                  or (max_seconds is not None and link.seconds <= max_seconds))
    return RapidMovement(received_total, sum(link.value for link in quick), quick)
