"""The options of a trace (and of a path search) as one frozen value, validated once.

Every entry point (CLI, API, dashboard, evidence, path search, exposure) builds a :class:`TraceParams`
and passes it whole; the limits below are the only ones, and the API schemas quote them.

Hops count hand-overs between owners, not transactions: a spend to the sender's own change (a detected
change output, the next step of a detected peel chain, an address of the sender's co-spend cluster)
uses no hop. ``max_hops`` bounds owner hand-overs, ``max_steps`` bounds transactions (UTXO chains) or
transfers (account chains).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from fundtrail.domain.taint import Direction, TaintPolicy
from fundtrail.errors import InputError

MAX_HOPS_LIMIT = 50
"""The most owner hand-overs a trace may follow."""
MAX_STEPS_LIMIT = 10_000
"""The most transactions (or transfers) a trace may follow along one path."""
HUB_DEGREE_LIMIT = 1_000_000
"""The largest hub degree (transactions of one address) a trace may be told to pass."""
MIN_VALUE_LIMIT = 10**38 - 1
"""The largest ``min_value`` (base units)."""
TIME_LIMIT = 2**40
"""The latest ``since``/``until`` (Unix seconds)."""
ASSET_LENGTH_LIMIT = 100
"""The longest asset name (a token contract)."""

DEFAULT_MAX_HOPS = 6
DEFAULT_MAX_STEPS = 200
DEFAULT_HUB_DEGREE = 500
DEFAULT_MIN_CONFIDENCE = 0.5
"""The least confidence of a stored conversion a trace follows."""


def _bounded(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value).strip())
        except ValueError:
            raise InputError(f"{name} must be a whole number, got {value!r}") from None
    if not low <= value <= high:
        raise InputError(f"{name} must be between {low} and {high}, got {value}")
    return int(value)


def _confidence(value: Any) -> float:
    """A confidence between 0 and 1 (a number or its text)."""
    number = float("nan")
    if not isinstance(value, bool):
        try:
            number = float(value) if isinstance(value, int | float) else float(str(value).strip())
        except ValueError:
            pass
    if not 0.0 <= number <= 1.0:
        raise InputError(f"min_confidence must be a number between 0 and 1, got {value!r}")
    return number


@dataclass(frozen=True, slots=True)
class TraceParams:
    """The options of a trace, validated and normalised when built (raises InputError naming the bad one).

    ``direction``/``policy`` accept their names; ``asset`` is lower-cased; amounts are base units.
    """

    direction: Direction = Direction.FORWARD
    policy: TaintPolicy = TaintPolicy.HAIRCUT
    max_hops: int = DEFAULT_MAX_HOPS
    max_steps: int = DEFAULT_MAX_STEPS
    min_value: int = 0
    since: int | None = None
    until: int | None = None
    asset: str | None = None
    stop_at_services: bool = True
    hub_degree: int = DEFAULT_HUB_DEGREE
    follow_change: bool = True
    follow_conversions: bool = True
    """Follow stored conversions (swaps, bridges, pools) onto their out asset and chain (forward)."""
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    """The least confidence (0..1) of a conversion the trace follows."""

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        try:
            put("direction", Direction(self.direction))
        except ValueError:
            raise InputError(f"unknown direction {self.direction!r}; use forward or backward") from None
        try:
            put("policy", TaintPolicy(self.policy))
        except ValueError:
            raise InputError(f"unknown taint policy {self.policy!r}; use poison, haircut or fifo") from None
        put("max_hops", _bounded("max_hops", self.max_hops, 0, MAX_HOPS_LIMIT))
        put("max_steps", _bounded("max_steps", self.max_steps, 1, MAX_STEPS_LIMIT))
        put("min_value", _bounded("min_value", self.min_value, 0, MIN_VALUE_LIMIT))
        put("hub_degree", _bounded("hub_degree", self.hub_degree, 1, HUB_DEGREE_LIMIT))
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None:
                put(name, _bounded(name, value, 0, TIME_LIMIT))
        if self.since is not None and self.until is not None and self.since > self.until:
            raise InputError(f"since ({self.since}) is after until ({self.until})")
        if self.asset is not None:
            asset = str(self.asset).strip()
            if asset.lower() == "native" or asset[:2].lower() == "0x":  # hex contracts are lower-case;
                asset = asset.lower()  # base58 ones (TRON's T...) keep their letter case
            if not asset or len(asset) > ASSET_LENGTH_LIMIT:
                raise InputError(f"asset must be 1 to {ASSET_LENGTH_LIMIT} characters, got {self.asset!r}")
            put("asset", asset)
        put("stop_at_services", bool(self.stop_at_services))
        put("follow_change", bool(self.follow_change))
        put("follow_conversions", bool(self.follow_conversions))
        put("min_confidence", _confidence(self.min_confidence))

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON values (amounts as strings)."""
        return {"direction": self.direction.value, "policy": self.policy.value, "max_hops": self.max_hops,
                "max_steps": self.max_steps, "min_value": str(self.min_value), "since": self.since,
                "until": self.until, "asset": self.asset, "stop_at_services": self.stop_at_services,
                "hub_degree": self.hub_degree, "follow_change": self.follow_change,
                **self._conversion_options()}

    def _conversion_options(self) -> dict[str, Any]:
        """The conversion options, only where they differ from the defaults (so that the document of a
        trace with the default options keeps its shape)."""
        out: dict[str, Any] = {}
        if not self.follow_conversions:
            out["follow_conversions"] = False
        if self.min_confidence != DEFAULT_MIN_CONFIDENCE:
            out["min_confidence"] = self.min_confidence
        return out

    @classmethod
    def from_dict(cls, options: Mapping[str, Any]) -> TraceParams:
        """The options of a trace document's ``parameters`` (or any mapping of them); absent or null
        values take their defaults, unknown names are refused."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise InputError(f"unknown trace option(s): {', '.join(unknown)}")
        return cls(**{k: v for k, v in options.items() if v is not None})

    def path_options(self) -> dict[str, Any]:
        """The options that a path search uses, as JSON values."""
        return {"max_hops": self.max_hops, "max_steps": self.max_steps, "min_value": str(self.min_value),
                "since": self.since, "until": self.until, "hub_degree": self.hub_degree}


def make_params(**options: Any) -> TraceParams:
    """Validate and normalise trace options (the keyword names of :class:`TraceParams`)."""
    return TraceParams.from_dict(options)
