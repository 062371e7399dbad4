"""Deadlines of legal requests, set by the governing instrument: pure rules, no I/O.

Rules are data (``fundtrail/cases/deadlines.yaml``, overridable by the agency and per agreement);
:func:`parse_deadline_book` turns that mapping into a :class:`DeadlineBook`. Two clocks matter:

* ``answer_days``: how long the recipient has to answer, counted from the day the request is sent;
* ``hold_days``: how long a measure (a preservation, a freeze) holds once acknowledged (from sending
  when never acknowledged); before then it must be renewed or followed by a request that keeps it.

Each counts calendar days, or business days (Monday to Friday, minus listed holidays):
``business_days`` governs the answer clock, ``hold_business_days`` the hold clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from fundtrail.domain.requests import RequestType
from fundtrail.errors import InputError, NotFoundError


@dataclass(frozen=True, slots=True)
class DeadlineRule:
    """The time limits an instrument sets for one kind of request."""

    key: str
    title: str
    request_types: tuple[RequestType, ...]
    answer_days: int | None = None
    hold_days: int | None = None
    business_days: bool = False
    hold_business_days: bool = False
    renewable: bool = False
    minimum_hold: bool = False
    note: str = ""
    translations: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def text(self, language: str) -> tuple[str, str]:
        """The title and note in ``language`` (English when there is no translation)."""
        t = self.translations.get(language, {})
        return t.get("title", self.title), t.get("note", self.note)

    def to_dict(self) -> dict[str, Any]:
        """The rule as JSON values."""
        return {
            "key": self.key,
            "title": self.title,
            "request_types": [t.value for t in self.request_types],
            "answer_days": self.answer_days,
            "hold_days": self.hold_days,
            "business_days": self.business_days,
            "hold_business_days": self.hold_business_days,
            "renewable": self.renewable,
            "minimum_hold": self.minimum_hold,
            "note": self.note,
        }


@dataclass(frozen=True)
class DeadlineBook:
    """All rules, the default rule per request type, per-agreement overrides and holidays."""

    rules: Mapping[str, DeadlineRule]
    defaults: Mapping[RequestType, str]
    agreements: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()
    raw: Mapping[str, Any] = field(default_factory=dict)
    abroad: Mapping[RequestType, str] = field(default_factory=dict)
    """The instrument per request type when the recipient is in another jurisdiction than the agency (a
    freeze at a foreign exchange goes through mutual legal assistance, not a domestic order)."""

    def rule_for(
        self, request_type: RequestType, instrument: str | None = None, agreement: str | None = None,
        *, abroad: bool = False,
    ) -> DeadlineRule:
        """The rule for a request: the named instrument (else the type's default, the ``abroad`` one for a
        recipient in another jurisdiction), then the agreement's overrides of that instrument."""
        book = self
        if agreement is not None:
            if agreement not in self.agreements:
                raise NotFoundError("agreement", agreement)
            book = parse_deadline_book(merge(self.raw, self.agreements[agreement]))
        if instrument is None and abroad:
            instrument = book.abroad.get(request_type)
        key = instrument or book.defaults.get(request_type)
        if key is None:
            raise InputError(
                f"no default instrument for {request_type.value} requests; name one with --instrument"
            )
        rule = book.rules.get(key)
        if rule is None:
            raise InputError(f"unknown instrument {key!r}; known: {', '.join(sorted(book.rules))}")
        if request_type not in rule.request_types:
            raise InputError(
                f"instrument {key!r} does not govern {request_type.value} requests "
                f"(it governs {', '.join(t.value for t in rule.request_types)})"
            )
        return rule


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge two mappings: the override's values win; nested mappings are merged key by key."""
    out: dict[str, Any] = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _days(where: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(f"deadline rules: {where} must be a whole number of days >= 0, got {value!r}")
    return value


def _request_type(where: str, value: Any) -> RequestType:
    try:
        return RequestType(value)
    except ValueError:
        known = ", ".join(t.value for t in RequestType)
        raise InputError(
            f"deadline rules: {where}: unknown request type {value!r} (known: {known})"
        ) from None


def _translations(where: str, value: Any) -> dict[str, dict[str, str]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(v, Mapping) for v in value.values()):
        raise InputError(f"deadline rules: {where}.translations must map a language to its title and note")
    return {
        str(lang): {k: str(v).strip() for k, v in t.items() if k in ("title", "note")}
        for lang, t in value.items()
    }


def parse_deadline_book(data: Mapping[str, Any]) -> DeadlineBook:
    """Validate the deadline rules (instruments, defaults, agreements, holidays); errors name the field."""
    instruments = data.get("instruments")
    if not isinstance(instruments, Mapping) or not instruments:
        raise InputError("deadline rules: 'instruments' must be a non-empty mapping")
    rules: dict[str, DeadlineRule] = {}
    for key, spec in instruments.items():
        where = f"instruments.{key}"
        if not isinstance(spec, Mapping):
            raise InputError(f"deadline rules: {where} must be a mapping")
        if not spec.get("title"):
            raise InputError(f"deadline rules: {where}.title is missing")
        types = spec.get("request_types")
        if not isinstance(types, list) or not types:
            raise InputError(f"deadline rules: {where}.request_types must be a non-empty list")
        rules[str(key)] = DeadlineRule(
            key=str(key),
            title=str(spec["title"]),
            request_types=tuple(_request_type(f"{where}.request_types", t) for t in types),
            answer_days=_days(f"{where}.answer_days", spec.get("answer_days")),
            hold_days=_days(f"{where}.hold_days", spec.get("hold_days")),
            business_days=bool(spec.get("business_days", False)),
            hold_business_days=bool(spec.get("hold_business_days", False)),
            renewable=bool(spec.get("renewable", False)),
            minimum_hold=bool(spec.get("minimum_hold", False)),
            note=str(spec.get("note", "")).strip(),
            translations=_translations(where, spec.get("translations")),
        )
    defaults: dict[RequestType, str] = {}
    abroad: dict[RequestType, str] = {}
    for section, chosen in (("defaults", defaults), ("abroad", abroad)):
        for name, key in (data.get(section) or {}).items():
            request_type = _request_type(section, name)
            if key not in rules:
                raise InputError(f"deadline rules: {section}.{name} names unknown instrument {key!r}")
            chosen[request_type] = str(key)
    holidays: set[date] = set()
    for day in data.get("holidays") or []:
        try:
            holidays.add(day if isinstance(day, date) else date.fromisoformat(str(day)))
        except ValueError:
            raise InputError(f"deadline rules: holidays: {day!r} is not a date (YYYY-MM-DD)") from None
    agreements = data.get("agreements") or {}
    if not isinstance(agreements, Mapping):
        raise InputError("deadline rules: 'agreements' must be a mapping of agreement name to overrides")
    return DeadlineBook(rules, defaults, dict(agreements), frozenset(holidays), dict(data), abroad)


def add_days(start: date, days: int, *, business: bool = False, holidays: Iterable[date] = ()) -> date:
    """``start`` plus ``days`` calendar days, or business days (Mon-Fri, not a holiday)."""
    if not business:
        return start + timedelta(days=days)
    off = frozenset(holidays)
    day, left = start, days
    while left > 0:
        day += timedelta(days=1)
        if day.weekday() < 5 and day not in off:
            left -= 1
    return day


@dataclass(frozen=True, slots=True)
class Deadlines:
    """The dates a sent request is held to."""

    answer_due: date | None
    hold_until: date | None


def deadlines(
    rule: DeadlineRule, sent_on: date, acknowledged_on: date | None = None, holidays: Iterable[date] = ()
) -> Deadlines:
    """Answer due date (from sending) and hold end (from acknowledgement, else sending) under ``rule``."""
    answer = (
        None
        if rule.answer_days is None
        else add_days(sent_on, rule.answer_days, business=rule.business_days, holidays=holidays)
    )
    hold = (
        None
        if rule.hold_days is None
        else add_days(
            acknowledged_on or sent_on, rule.hold_days, business=rule.hold_business_days, holidays=holidays
        )
    )
    return Deadlines(answer, hold)


class DueStatus(StrEnum):
    """How a deadline stands on a given day."""

    OVERDUE = "overdue"
    DUE_SOON = "due_soon"
    LATER = "later"


def due_status(due: date, today: date, within_days: int) -> DueStatus:
    """Overdue when past, due soon when within ``within_days`` (inclusive), later otherwise."""
    if due < today:
        return DueStatus.OVERDUE
    if due <= today + timedelta(days=within_days):
        return DueStatus.DUE_SOON
    return DueStatus.LATER
