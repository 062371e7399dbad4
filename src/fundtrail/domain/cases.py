"""Cases, roles and what each role may do: pure rules, no I/O.

A case is numbered ``JURISDICTION-YEAR-SEQUENCE`` (``EE-2026-0001``), moves through
:class:`CaseStatus` along :data:`CASE_TRANSITIONS`, and holds subjects of the kinds in
:class:`SubjectKind`. Who may do what is the table :data:`PERMISSIONS` (role -> actions).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from fundtrail.errors import InputError, InvalidTransitionError, PermissionDeniedError


class Role(StrEnum):
    """A user's role in the agency."""

    ANALYST = "analyst"
    INVESTIGATOR = "investigator"
    SUPERVISOR = "supervisor"
    AUDITOR = "auditor"
    LIAISON = "liaison"
    ADMIN = "admin"


class CaseStatus(StrEnum):
    """Where a case stands."""

    OPEN = "open"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


CASE_TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    CaseStatus.OPEN: frozenset({CaseStatus.ACTIVE, CaseStatus.SUSPENDED, CaseStatus.CLOSED}),
    CaseStatus.ACTIVE: frozenset({CaseStatus.SUSPENDED, CaseStatus.CLOSED}),
    CaseStatus.SUSPENDED: frozenset({CaseStatus.ACTIVE, CaseStatus.CLOSED}),
    CaseStatus.CLOSED: frozenset({CaseStatus.ACTIVE}),  # reopened when new facts come to light
}
"""Allowed status changes: target statuses per current status."""


class Severity(StrEnum):
    """How serious a case is."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class SubjectKind(StrEnum):
    """What a case subject is."""

    ADDRESS = "address"
    TRANSACTION = "transaction"
    PERSON = "person"
    COMPANY = "company"
    EXCHANGE_ACCOUNT = "exchange_account"

    @property
    def is_personal(self) -> bool:
        """True for subjects that are personal data (never in public reports or audit details)."""
        return self in PERSONAL_KINDS

    @property
    def is_on_chain(self) -> bool:
        """True for subjects that live on a chain (they carry the chain's name)."""
        return self in (SubjectKind.ADDRESS, SubjectKind.TRANSACTION)


PERSONAL_KINDS = frozenset({SubjectKind.PERSON, SubjectKind.COMPANY, SubjectKind.EXCHANGE_ACCOUNT})


class LedgerKind(StrEnum):
    """What happened to an amount in the recovery ledger."""

    FROZEN = "frozen"
    SEIZED = "seized"
    FORFEITED = "forfeited"
    RETURNED = "returned"


class Action(StrEnum):
    """Things a user may do; :data:`PERMISSIONS` says which role may do which."""

    READ_CASE = "case.read"
    OPEN_CASE = "case.open"
    EDIT_CASE = "case.edit"
    ASSIGN = "case.assign"
    HOLD = "case.hold"
    CLOSE_CASE = "case.close"
    PRESERVE = "evidence.preserve"
    VERIFY_EVIDENCE = "evidence.verify"
    EXPORT_EVIDENCE = "evidence.export"
    DRAFT_REQUEST = "request.draft"
    APPROVE_REQUEST = "request.approve"
    HANDLE_REQUEST = "request.handle"
    RECORD_RECOVERY = "recovery.record"
    READ_RECOVERY = "recovery.read"
    READ_AUDIT = "audit.read"
    RETENTION = "retention.apply"
    MANAGE_USERS = "users.manage"


_ANALYST = {Action.READ_CASE, Action.VERIFY_EVIDENCE, Action.READ_RECOVERY}
_INVESTIGATOR = _ANALYST | {
    Action.OPEN_CASE,
    Action.EDIT_CASE,
    Action.PRESERVE,
    Action.EXPORT_EVIDENCE,
    Action.DRAFT_REQUEST,
    Action.HANDLE_REQUEST,
    Action.RECORD_RECOVERY,
}

PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.ANALYST: frozenset(_ANALYST),
    Role.INVESTIGATOR: frozenset(_INVESTIGATOR),
    Role.SUPERVISOR: frozenset(
        _INVESTIGATOR | {Action.APPROVE_REQUEST, Action.ASSIGN, Action.HOLD, Action.CLOSE_CASE}
    ),
    Role.AUDITOR: frozenset(
        {Action.READ_CASE, Action.VERIFY_EVIDENCE, Action.READ_RECOVERY, Action.READ_AUDIT}
    ),
    Role.LIAISON: frozenset(
        {Action.READ_CASE, Action.READ_RECOVERY, Action.EXPORT_EVIDENCE, Action.HANDLE_REQUEST}
    ),
    Role.ADMIN: frozenset({Action.MANAGE_USERS, Action.RETENTION}),
}
"""Actions per role. Approving a request additionally needs an approver other than its author."""

JURISDICTION_WIDE = frozenset({Role.AUDITOR, Role.LIAISON})
"""Roles that reach every case of their jurisdiction; the others reach the cases of their unit."""


def may(role: Role, action: Action) -> bool:
    """True when ``role`` may do ``action``."""
    return action in PERMISSIONS[role]


def check_permission(username: str, role: Role, action: Action) -> None:
    """Raise PermissionDeniedError unless ``role`` may do ``action``."""
    if not may(role, action):
        allowed = sorted(r.value for r in Role if may(r, action))
        raise PermissionDeniedError(
            f"user {username!r} ({role.value}) may not {action.value}; allowed roles: {', '.join(allowed)}"
        )


def can_reach_case(
    role: Role, unit: str, jurisdiction: str, case_unit: str, case_jurisdiction: str, assigned: bool = False
) -> bool:
    """Whether a case is within a user's reach: assigned, or same jurisdiction and (unit or wide role)."""
    if assigned:
        return True
    if role is Role.ADMIN or not may(role, Action.READ_CASE) or jurisdiction != case_jurisdiction:
        return False
    return role in JURISDICTION_WIDE or unit == case_unit


def may_open_case_in(
    role: Role, unit: str, jurisdiction: str, case_unit: str, case_jurisdiction: str
) -> bool:
    """Whether a user may open a case for ``case_unit`` in ``case_jurisdiction``.

    Admins may name any unit and jurisdiction; everyone else (supervisors too) opens cases only in their
    own unit and jurisdiction. Whether the role may open cases at all is :func:`may` (``case.open``).
    """
    if role is Role.ADMIN:
        return True
    same_unit = unit.strip() == case_unit.strip()
    return same_unit and jurisdiction.strip().upper() == case_jurisdiction.strip().upper()


def check_open_case_in(
    username: str, role: Role, unit: str, jurisdiction: str, case_unit: str, case_jurisdiction: str
) -> None:
    """Raise PermissionDeniedError unless the user may open a case for that unit and jurisdiction."""
    if not may_open_case_in(role, unit, jurisdiction, case_unit, case_jurisdiction):
        raise PermissionDeniedError(
            f"user {username!r} ({role.value}, {unit}, {jurisdiction}) may not open a case for "
            f"{case_unit} in {case_jurisdiction}: cases are opened in one's own unit and jurisdiction"
        )


def check_case_transition(number: str, current: CaseStatus, target: CaseStatus) -> None:
    """Raise InvalidTransitionError unless a case may move from ``current`` to ``target``."""
    if target not in CASE_TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in CASE_TRANSITIONS[current])) or "none"
        raise InvalidTransitionError(
            f"case {number} is {current.value}; it cannot become {target.value} (allowed: {allowed})"
        )


_JURISDICTION = re.compile(r"^[A-Z]{2}$")
_NUMBER = re.compile(r"^([A-Z]{2})-(\d{4})-(\d{4,})$")


def normalise_jurisdiction(text: str) -> str:
    """An ISO 3166-1 alpha-2 code in upper case; InputError otherwise."""
    code = text.strip().upper()
    if not _JURISDICTION.match(code):
        raise InputError(f"jurisdiction {text!r} is not an ISO 3166-1 alpha-2 code (e.g. EE, FR, ES)")
    return code


@dataclass(frozen=True, slots=True, order=True)
class CaseNumber:
    """A case number: jurisdiction, year and a sequence within both (``EE-2026-0001``)."""

    jurisdiction: str
    year: int
    sequence: int

    def __str__(self) -> str:
        return f"{self.jurisdiction}-{self.year:04d}-{self.sequence:04d}"

    @classmethod
    def parse(cls, text: str) -> CaseNumber:
        """Parse ``EE-2026-0001``; InputError when malformed."""
        m = _NUMBER.match(text.strip().upper())
        if not m:
            raise InputError(f"{text!r} is not a case number (JURISDICTION-YEAR-SEQUENCE, e.g. EE-2026-0001)")
        return cls(m.group(1), int(m.group(2)), int(m.group(3)))


def parse_amount(text: str | int) -> int:
    """An exact amount of base units (a non-negative integer, given as digits); InputError otherwise."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        digits = str(text).strip().replace("_", "")
        if not digits.isdigit():
            raise InputError(f"amount {text!r} is not a whole number of base units (satoshi, wei)")
        value = int(digits)
    if value < 0:
        raise InputError(f"amount {text!r} is negative")
    return value


def format_amount(value: int, decimals: int) -> str:
    """Base units as a decimal coin amount, exactly (``5000000``, 8 -> ``0.05``)."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**decimals)
    if decimals == 0 or frac == 0:
        return f"{sign}{whole:,}"
    return f"{sign}{whole:,}.{str(frac).rjust(decimals, '0').rstrip('0')}"
