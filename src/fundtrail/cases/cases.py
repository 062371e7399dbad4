"""Cases: open, list, show, edit, assign, subjects (with deconfliction), tasks, status, legal hold.

Every change to a case or what it holds bumps the case's version, so two people editing one case at
once cannot overwrite each other: the second gets a ConflictError (optimistic locking). Additions that
overwrite nothing (recovery ledger entries) move the version with :func:`touch_added` instead, which does
not compare: two of them at once both succeed, and an edit based on the version before them still
conflicts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from enum import Enum
from typing import Any, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.orm.attributes import flag_modified, set_committed_value

from fundtrail.cases.context import Context, case_logger
from fundtrail.cases.models import (
    Assignment,
    Case,
    CaseCounter,
    EvidenceItem,
    LedgerEntry,
    LegalRequest,
    Subject,
    Task,
    User,
)
from fundtrail.cases.users import agency
from fundtrail.domain.addresses import canonical_address
from fundtrail.domain.cases import (
    Action,
    CaseNumber,
    CaseStatus,
    Role,
    Severity,
    SubjectKind,
    can_reach_case,
    check_case_transition,
    check_open_case_in,
    normalise_jurisdiction,
    parse_amount,
)
from fundtrail.domain.chains import get_chain
from fundtrail.errors import ConflictError, InputError

ASSIGNMENT_ROLES = ("lead", "member")

E = TypeVar("E", bound=Enum)


def _enum(kind: type[E], text: str, what: str) -> E:
    try:
        return kind(text.strip().lower())
    except ValueError:
        raise InputError(f"unknown {what} {text!r}; use one of: {', '.join(k.value for k in kind)}") from None


def touch(ctx: Context, case: Case) -> None:
    """Mark the case changed (bumps its version: concurrent edits conflict)."""
    case.updated_at = ctx.now
    flag_modified(case, "updated_at")  # an UPDATE even when the time is unchanged: the version must move


def touch_added(ctx: Context, case: Case) -> None:
    """Mark the case changed by an addition that overwrites nothing of it (a ledger entry).

    The version moves in the database itself (``version = version + 1``), without comparing it to the
    version this transaction read: :func:`touch` compares, so that on PostgreSQL two additions at once
    made the second fail although neither overwrote anything. The row lock of the UPDATE still orders
    them, and an edit based on an earlier version still conflicts.
    """
    version = ctx.session.execute(
        update(Case)
        .where(Case.id == case.id)
        .values(version=Case.version + 1, updated_at=ctx.now)
        .returning(Case.version)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    # The session's copy follows, so that a later edit in this transaction compares with the new version.
    set_committed_value(case, "version", version)
    set_committed_value(case, "updated_at", ctx.now)


def _next_number(ctx: Context, jurisdiction: str, year: int) -> CaseNumber:
    counter = ctx.session.execute(
        select(CaseCounter)
        .where(CaseCounter.jurisdiction == jurisdiction, CaseCounter.year == year)
        .with_for_update()
    ).scalar_one_or_none()
    if counter is None:
        counter = CaseCounter(jurisdiction=jurisdiction, year=year, last=0)
        ctx.session.add(counter)
    counter.last += 1
    return CaseNumber(jurisdiction, year, counter.last)


def open_case(
    ctx: Context,
    title: str,
    *,
    severity: str = "medium",
    jurisdiction: str | None = None,
    unit: str | None = None,
    lead_agency: str | None = None,
    offence: str | None = None,
    summary: str | None = None,
) -> Case:
    """Open a case numbered JURISDICTION-YEAR-NNNN; the opener is its lead.

    Cases are opened in the opener's own unit and jurisdiction (admins may name others): see
    :func:`~fundtrail.domain.cases.may_open_case_in`.
    """
    user = ctx.require(Action.OPEN_CASE)
    if not title.strip():
        raise InputError("a case needs a title")
    severity_ = _enum(Severity, severity, "severity")
    jurisdiction = normalise_jurisdiction(jurisdiction or user.jurisdiction)
    unit = (unit or user.unit).strip()
    if not unit:
        raise InputError("a case needs a unit")
    check_open_case_in(user.username, Role(user.role), user.unit, user.jurisdiction, unit, jurisdiction)
    number = _next_number(ctx, jurisdiction, ctx.now.year)
    settings = agency(ctx)
    case = Case(
        number=str(number),
        jurisdiction=jurisdiction,
        year=number.year,
        sequence=number.sequence,
        title=title.strip(),
        status=CaseStatus.OPEN.value,
        severity=severity_.value,
        lead_agency=(lead_agency or (settings.name if settings else user.unit)).strip(),
        unit=unit,
        offence=offence,
        summary=summary,
        created_by_id=user.id,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    ctx.session.add(case)
    ctx.session.flush()
    ctx.session.add(
        Assignment(case_id=case.id, user_id=user.id, role="lead", assigned_at=ctx.now, assigned_by_id=user.id)
    )
    ctx.session.flush()
    ctx.audit(
        "case.open",
        "case",
        case.number,
        case=case.number,
        details={"title": case.title, "severity": case.severity, "unit": case.unit},
    )
    case_logger(__name__, case.number).info("opened by %s", user.username)
    return case


def list_cases(ctx: Context, *, status: str | None = None) -> list[Case]:
    """The cases within the acting user's reach, newest first."""
    user = ctx.acting_user  # admins see only the cases they are assigned to (can_reach_case)
    q = select(Case).order_by(Case.year.desc(), Case.jurisdiction, Case.sequence.desc())
    if status:
        q = q.where(Case.status == _enum(CaseStatus, status, "status").value)
    assigned = set(
        ctx.session.execute(select(Assignment.case_id).where(Assignment.user_id == user.id)).scalars()
    )
    cases = [
        c
        for c in ctx.session.execute(q).scalars()
        if can_reach_case(
            Role(user.role), user.unit, user.jurisdiction, c.unit, c.jurisdiction, c.id in assigned
        )
    ]
    ctx.audit("case.list", "case", details={"status": status, "count": len(cases)})
    return cases


def show_case(ctx: Context, number: str, *, reason: str | None = None) -> Case:
    """The case, its read recorded in the audit log."""
    case = ctx.case(number)
    ctx.audit("case.read", "case", case.number, case=case.number, reason=reason)
    return case


def update_case(
    ctx: Context,
    number: str,
    *,
    expected_version: int | None = None,
    title: str | None = None,
    severity: str | None = None,
    offence: str | None = None,
    summary: str | None = None,
    reason: str | None = None,
) -> Case:
    """Edit a case's description; ``expected_version`` guards against overwriting someone else's edit."""
    case = ctx.case(number, Action.EDIT_CASE)
    if expected_version is not None and case.version != expected_version:
        raise ConflictError(
            f"case {case.number} is at version {case.version}, not {expected_version}: "
            f"someone else changed it; reload it and try again"
        )
    changed: dict[str, Any] = {}
    if title is not None:
        if not title.strip():
            raise InputError("a case needs a title")
        case.title = changed["title"] = title.strip()
    if severity is not None:
        case.severity = changed["severity"] = _enum(Severity, severity, "severity").value
    if offence is not None:
        case.offence = changed["offence"] = offence
    if summary is not None:
        case.summary = summary
        changed["summary"] = "(changed)"
    if not changed:
        raise InputError("nothing to change: give --title, --severity, --offence or --summary")
    touch(ctx, case)
    ctx.session.flush()
    ctx.audit("case.edit", "case", case.number, case=case.number, reason=reason, details=changed)
    return case


def assign(
    ctx: Context, number: str, username: str, *, role: str = "member", reason: str | None = None
) -> Assignment:
    """Assign a user to a case (supervisors)."""
    case = ctx.case(number, Action.ASSIGN)
    if role not in ASSIGNMENT_ROLES:
        raise InputError(f"assignment role must be one of {', '.join(ASSIGNMENT_ROLES)}, not {role!r}")
    user = ctx.user_named(username)
    existing = ctx.session.execute(
        select(Assignment).where(Assignment.case_id == case.id, Assignment.user_id == user.id)
    ).scalar_one_or_none()
    if existing is not None:
        existing.role = role
        found = existing
    else:
        found = Assignment(
            case_id=case.id,
            user_id=user.id,
            role=role,
            assigned_at=ctx.now,
            assigned_by_id=ctx.acting_user.id,
        )
        ctx.session.add(found)
    touch(ctx, case)
    ctx.session.flush()
    ctx.audit(
        "case.assign",
        "case",
        case.number,
        case=case.number,
        reason=reason,
        details={"user": user.username, "role": role},
    )
    return found


@dataclass(frozen=True, slots=True)
class Deconfliction:
    """Another case of the agency that already holds a subject, and whom to call about it."""

    case: str
    status: str
    unit: str
    contact: str
    contact_unit: str
    contact_email: str | None

    def to_dict(self) -> dict[str, Any]:
        """As JSON values."""
        return {
            "case": self.case,
            "status": self.status,
            "unit": self.unit,
            "contact": {"name": self.contact, "unit": self.contact_unit, "email": self.contact_email},
        }

    def __str__(self) -> str:
        email = f", {self.contact_email}" if self.contact_email else ""
        return (
            f"case {self.case} ({self.status}) holds it: contact {self.contact} ({self.contact_unit}{email})"
        )


def _lead(ctx: Context, case: Case) -> User:
    for a in case.assignments:
        if a.role == "lead":
            return a.user
    return case.created_by


def normalise_subject(kind: SubjectKind, chain: str | None, value: str) -> tuple[str | None, str]:
    """The canonical chain name and value of a subject; InputError/InvalidAddressError when invalid."""
    text = value.strip()
    if not text:
        raise InputError(f"the {kind.value} is empty")
    if kind.is_on_chain:
        if not chain:
            raise InputError(f"a {kind.value} subject needs --chain")
        chain = get_chain(chain).name
        if kind is SubjectKind.ADDRESS:
            return chain, canonical_address(chain, text)
        tx = text.lower()
        bare = tx[2:] if tx.startswith("0x") else tx
        if len(bare) != 64 or any(c not in "0123456789abcdef" for c in bare):
            raise InputError(f"{value!r} is not a transaction id (64 hex digits)")
        return chain, tx
    return (get_chain(chain).name if chain else None), text


def deconflict(
    ctx: Context, case: Case, kind: SubjectKind, chain: str | None, value: str
) -> list[Deconfliction]:
    """Other cases of the agency holding the same subject (whatever their unit)."""
    q = select(Subject.case_id).where(
        Subject.kind == kind.value, Subject.value == value, Subject.case_id != case.id
    )
    q = q.where(Subject.chain == chain) if chain else q.where(Subject.chain.is_(None))
    ids = sorted(set(ctx.session.execute(q).scalars()))
    out = []
    for other in ctx.session.execute(select(Case).where(Case.id.in_(ids)).order_by(Case.number)).scalars():
        lead = _lead(ctx, other)
        out.append(
            Deconfliction(other.number, other.status, other.unit, lead.display_name, lead.unit, lead.email)
        )
    return out


def add_subject(
    ctx: Context,
    number: str,
    kind: str,
    value: str,
    *,
    chain: str | None = None,
    label: str | None = None,
    role: str | None = None,
    asset: str | None = None,
    amount: int | str | None = None,
    details: dict[str, Any] | None = None,
    evidence_id: str | None = None,
    source: str | None = None,
) -> tuple[Subject, list[Deconfliction]]:
    """Add a subject to a case; says which other cases already hold it (without blocking)."""
    case = ctx.case(number, Action.EDIT_CASE)
    kind_ = _enum(SubjectKind, kind, "subject kind")
    chain, value = normalise_subject(kind_, chain, value)
    if evidence_id is not None:
        item = ctx.session.get(EvidenceItem, evidence_id)
        if item is None or item.case_id != case.id:
            raise InputError(f"evidence {evidence_id} is not evidence of case {case.number}")
    existing = ctx.session.execute(
        select(Subject).where(
            Subject.case_id == case.id,
            Subject.kind == kind_.value,
            Subject.value == value,
            Subject.chain == chain if chain else Subject.chain.is_(None),
        )
    ).scalar_one_or_none()
    if existing is not None:
        shown = "" if kind_.is_personal else f" {value}"
        raise ConflictError(f"case {case.number} already holds {kind_.value}{shown} (subject {existing.id})")
    others = deconflict(ctx, case, kind_, chain, value)
    subject = Subject(
        case_id=case.id,
        kind=kind_.value,
        chain=chain,
        value=value,
        label=label,
        role=role,
        asset=asset,
        amount=None if amount is None else parse_amount(amount),
        details=json.dumps(details, sort_keys=True) if details else None,
        evidence_id=evidence_id,
        source=source,
        added_by_id=ctx.acting_user.id,
        added_at=ctx.now,
    )
    ctx.session.add(subject)
    touch(ctx, case)
    ctx.session.flush()
    audit: dict[str, Any] = {
        "kind": kind_.value,
        "chain": chain,
        "evidence": evidence_id,
        "deconfliction": [d.case for d in others],
    }
    if not kind_.is_personal:  # personal data stays out of the audit log (it outlives retention)
        audit["value"] = value
    ctx.audit("subject.add", "subject", subject.id, case=case.number, details=audit)
    if others:
        case_logger(__name__, case.number).info(
            "subject %s also held by %s", subject.id, ", ".join(d.case for d in others)
        )
    return subject, others


def add_task(
    ctx: Context, number: str, title: str, *, due: date | None = None, assignee: str | None = None
) -> Task:
    """Add a task, optionally due on a date and assigned to a user."""
    case = ctx.case(number, Action.EDIT_CASE)
    if not title.strip():
        raise InputError("a task needs a title")
    user = ctx.user_named(assignee) if assignee else None
    task = Task(
        case_id=case.id,
        title=title.strip(),
        due_date=due,
        assignee_id=user.id if user else None,
        status="open",
        created_by_id=ctx.acting_user.id,
        created_at=ctx.now,
    )
    ctx.session.add(task)
    touch(ctx, case)
    ctx.session.flush()
    ctx.audit(
        "task.add",
        "task",
        task.id,
        case=case.number,
        details={"title": task.title, "due": due.isoformat() if due else None, "assignee": assignee},
    )
    return task


def set_status(ctx: Context, number: str, status: str, *, reason: str | None = None) -> Case:
    """Move a case to another status (closing needs a supervisor)."""
    target = _enum(CaseStatus, status, "status")
    action = Action.CLOSE_CASE if target is CaseStatus.CLOSED else Action.EDIT_CASE
    case = ctx.case(number, action)
    current = CaseStatus(case.status)
    check_case_transition(case.number, current, target)
    if target is CaseStatus.CLOSED and not reason:
        raise InputError("closing a case needs a reason (--reason)")
    case.status = target.value
    case.closed_at = ctx.now if target is CaseStatus.CLOSED else None
    touch(ctx, case)
    ctx.session.flush()
    ctx.audit(
        "case.status",
        "case",
        case.number,
        case=case.number,
        reason=reason,
        details={"from": current.value, "to": target.value},
    )
    return case


def set_hold(ctx: Context, number: str, *, reason: str, hold: bool = True) -> Case:
    """Put a case on legal hold (nothing of it is deleted by retention) or release it; needs a reason."""
    case = ctx.case(number, Action.HOLD)
    if not reason or not reason.strip():
        raise InputError("a legal hold needs a reason (--reason)")
    case.legal_hold = hold
    case.hold_reason = reason.strip() if hold else None
    case.hold_by_id = ctx.acting_user.id if hold else None
    case.hold_at = ctx.now if hold else None
    touch(ctx, case)
    ctx.session.flush()
    ctx.audit(
        "case.hold" if hold else "case.release_hold",
        "case",
        case.number,
        case=case.number,
        reason=reason.strip(),
    )
    return case


# ------------------------------------------------------------------------------------------ views


def subject_doc(s: Subject) -> dict[str, Any]:
    """A subject as JSON values (amounts as strings)."""
    return {
        "id": s.id,
        "kind": s.kind,
        "chain": s.chain,
        "value": s.value,
        "label": s.label,
        "role": s.role,
        "asset": s.asset,
        "amount": None if s.amount is None else str(s.amount),
        "details": json.loads(s.details) if s.details else None,
        "evidence": s.evidence_id,
        "source": s.source,
        "added_at": s.added_at,
    }


def case_summary(case: Case) -> dict[str, Any]:
    """A case as a list item."""
    return {
        "number": case.number,
        "title": case.title,
        "status": case.status,
        "severity": case.severity,
        "jurisdiction": case.jurisdiction,
        "unit": case.unit,
        "lead_agency": case.lead_agency,
        "legal_hold": case.legal_hold,
        "created_at": case.created_at,
        "version": case.version,
    }


def case_doc(ctx: Context, case: Case) -> dict[str, Any]:
    """A case with everything it holds, as JSON values."""
    s = ctx.session
    evidence = (
        s.execute(
            select(EvidenceItem)
            .where(EvidenceItem.case_id == case.id)
            .order_by(EvidenceItem.item, EvidenceItem.version)
        )
        .scalars()
        .all()
    )
    requests = (
        s.execute(select(LegalRequest).where(LegalRequest.case_id == case.id).order_by(LegalRequest.id))
        .scalars()
        .all()
    )
    ledger = (
        s.execute(select(LedgerEntry).where(LedgerEntry.case_id == case.id).order_by(LedgerEntry.id))
        .scalars()
        .all()
    )
    doc = case_summary(case)
    doc.update(
        {
            "offence": case.offence,
            "summary": case.summary,
            "created_by": case.created_by.username,
            "updated_at": case.updated_at,
            "closed_at": case.closed_at,
            "hold": ({"reason": case.hold_reason, "at": case.hold_at} if case.legal_hold else None),
            "assignees": [
                {
                    "username": a.user.username,
                    "display_name": a.user.display_name,
                    "role": a.role,
                    "unit": a.user.unit,
                }
                for a in case.assignments
            ],
            "tasks": [
                {
                    "id": t.id,
                    "title": t.title,
                    "due": t.due_date,
                    "status": t.status,
                    "assignee": t.assignee.username if t.assignee else None,
                }
                for t in case.tasks
            ],
            "subjects": [subject_doc(x) for x in case.subjects],
            "evidence": [
                {
                    "id": e.id,
                    "title": e.title,
                    "version": e.version,
                    "supersedes": e.supersedes_id,
                    "tagmanifest_sha256": e.tagmanifest_sha256,
                    "created_at": e.created_at,
                }
                for e in evidence
            ],
            "requests": [
                {
                    "number": r.number,
                    "type": r.type,
                    "state": r.state,
                    "recipient": r.recipient,
                    "answer_due": r.answer_due,
                    "hold_until": r.hold_until,
                }
                for r in requests
            ],
            "ledger": [
                {
                    "id": e.id,
                    "kind": e.kind,
                    "chain": e.chain,
                    "asset": e.asset,
                    "amount": str(e.amount),
                    "jurisdiction": e.jurisdiction,
                }
                for e in ledger
            ],
        }
    )
    return doc


def count_cases(ctx: Context) -> int:
    """How many cases the database holds."""
    return int(ctx.session.execute(select(func.count()).select_from(Case)).scalar_one())
