"""Retention: how long each type of record is kept, and when it expires. Pure: no I/O.

A rule gives a record type a period in days and the clock it runs from: the record's creation, or
the closing of its case (records of an open case never expire on that clock). Records of a case on
legal hold are never deleted, whatever their rule says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from fundtrail.errors import InputError


class RecordType(StrEnum):
    """Types of case record with their own retention period."""

    CASE = "case"
    PERSONAL_SUBJECT = "personal_subject"
    SUBJECT = "subject"
    TASK = "task"
    EVIDENCE = "evidence"
    REQUEST = "request"
    LEDGER_ENTRY = "ledger_entry"


class RetentionClock(StrEnum):
    """What a retention period counts from."""

    CREATED = "created"
    CASE_CLOSED = "case_closed"


@dataclass(frozen=True, slots=True)
class RetentionRule:
    """Keep records of ``record_type`` for ``days`` after ``clock``."""

    record_type: RecordType
    days: int
    clock: RetentionClock

    def expires_at(self, created: datetime, case_closed: datetime | None) -> datetime | None:
        """When a record expires; None while the clock has not started (its case is open)."""
        start = created if self.clock is RetentionClock.CREATED else case_closed
        return None if start is None else start + timedelta(days=self.days)

    def is_expired(self, created: datetime, case_closed: datetime | None, now: datetime) -> bool:
        """True when the record's period has run out at ``now``."""
        end = self.expires_at(created, case_closed)
        return end is not None and end <= now


def parse_retention_rules(data: Mapping[str, Any]) -> dict[RecordType, RetentionRule]:
    """Rules from a mapping ``{record_type: {days: N, clock: created|case_closed}}``; every type needed."""
    rules: dict[RecordType, RetentionRule] = {}
    for name, spec in data.items():
        try:
            record_type = RecordType(name)
        except ValueError:
            raise InputError(f"retention rules: unknown record type {name!r}") from None
        if not isinstance(spec, Mapping):
            raise InputError(f"retention rules: {name} must be a mapping with days and clock")
        days = spec.get("days")
        if isinstance(days, bool) or not isinstance(days, int) or days < 0:
            raise InputError(f"retention rules: {name}.days must be a whole number >= 0, got {days!r}")
        try:
            clock = RetentionClock(spec.get("clock", "case_closed"))
        except ValueError:
            raise InputError(f"retention rules: {name}.clock must be created or case_closed") from None
        rules[record_type] = RetentionRule(record_type, days, clock)
    missing = [t.value for t in RecordType if t not in rules]
    if missing:
        raise InputError(f"retention rules: no rule for {', '.join(missing)}")
    return rules
