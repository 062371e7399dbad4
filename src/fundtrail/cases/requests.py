"""Legal requests: drafting, the approval and sending workflow, deadlines, and what is due.

The state machine and approval rule are :mod:`fundtrail.domain.requests`; time limits come from
:mod:`fundtrail.domain.deadlines`, with the rules in ``deadlines.yaml`` (shipped), merged with the
agency's ``HOME/deadlines.yaml`` when present. Every transition is a ``request_transitions`` row and an
audit record, in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select

from fundtrail.cases.cases import touch
from fundtrail.cases.context import Context, case_logger
from fundtrail.cases.evidence import get_evidence
from fundtrail.cases.models import Assignment, Case, LegalRequest, RequestTransition, Subject
from fundtrail.cases.users import agency
from fundtrail.domain.cases import Action, Role, can_reach_case, normalise_jurisdiction
from fundtrail.domain.deadlines import (
    DeadlineBook,
    DueStatus,
    deadlines,
    due_status,
    merge,
    parse_deadline_book,
)
from fundtrail.domain.requests import RequestAction, RequestState, RequestType, check_approval, next_state
from fundtrail.errors import InputError, NotFoundError

AGENCY_DEADLINES = "deadlines.yaml"


def _read_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise InputError(f"{source}: not valid YAML ({error})") from None
    if not isinstance(data, dict):
        raise InputError(f"{source}: deadline rules must be a mapping")
    return data


def deadline_book(home: Path | None = None) -> DeadlineBook:
    """The deadline rules: the shipped ones, merged with ``HOME/deadlines.yaml`` when present."""
    shipped = resources.files("fundtrail.cases").joinpath("deadlines.yaml").read_text(encoding="utf-8")
    data = _read_yaml(shipped, "fundtrail/cases/deadlines.yaml")
    if home is not None and (Path(home) / AGENCY_DEADLINES).is_file():
        path = Path(home) / AGENCY_DEADLINES
        data = merge(data, _read_yaml(path.read_text(encoding="utf-8"), str(path)))
    return parse_deadline_book(data)


def parse_type(text: str) -> RequestType:
    """A request type by name; InputError listing the types otherwise."""
    try:
        return RequestType(text.strip().lower())
    except ValueError:
        raise InputError(
            f"unknown request type {text!r}; types: {', '.join(t.value for t in RequestType)}"
        ) from None


def get_request(ctx: Context, number: str, action: Action = Action.READ_CASE) -> LegalRequest:
    """A request by number, when its case is within the user's reach."""
    req = ctx.session.execute(
        select(LegalRequest).where(LegalRequest.number == number.strip().upper())
    ).scalar_one_or_none()
    if req is None:
        raise NotFoundError("request", number)
    try:
        ctx.case(req.case.number, action)
    except NotFoundError:
        raise NotFoundError("request", number) from None
    return req


def _default_subjects(ctx: Context, case: Case, recipient: str, evidence_id: str | None) -> list[Subject]:
    subjects = [s for s in case.subjects if s.kind in ("address", "transaction", "exchange_account")]
    at_recipient = [s for s in subjects if s.label and s.label.strip().lower() == recipient.strip().lower()]
    if at_recipient:
        return at_recipient
    if evidence_id:
        linked = [s for s in subjects if s.evidence_id == evidence_id]
        if linked:
            return linked
    return subjects


def draft_request(
    ctx: Context,
    number: str,
    request_type: str,
    recipient: str,
    *,
    recipient_jurisdiction: str | None = None,
    recipient_contact: str | None = None,
    instrument: str | None = None,
    agreement: str | None = None,
    language: str = "en",
    subject_matter: str | None = None,
    facts: str | None = None,
    measures: str | None = None,
    evidence_id: str | None = None,
    subject_ids: list[int] | None = None,
    reason: str | None = None,
) -> LegalRequest:
    """Draft a request on a case; its instrument (and so its deadlines) is checked against the rules."""
    case = ctx.case(number, Action.DRAFT_REQUEST)
    rtype = parse_type(request_type)
    if not recipient.strip():
        raise InputError("a request needs a recipient (--to)")
    home = getattr(agency(ctx), "jurisdiction", None)
    abroad = bool(recipient_jurisdiction and home
                  and normalise_jurisdiction(recipient_jurisdiction) != normalise_jurisdiction(home))
    rule = deadline_book(ctx.home).rule_for(rtype, instrument, agreement, abroad=abroad)
    evidence = get_evidence(ctx, evidence_id) if evidence_id else None
    if evidence is not None and evidence.case_id != case.id:
        raise InputError(f"evidence {evidence.id} is not evidence of case {case.number}")
    if subject_ids:
        by_id = {s.id: s for s in case.subjects}
        unknown = [i for i in subject_ids if i not in by_id]
        if unknown:
            raise InputError(f"subject {unknown[0]} is not a subject of case {case.number}")
        subjects = [by_id[i] for i in subject_ids]
    else:
        subjects = _default_subjects(ctx, case, recipient, evidence.id if evidence else None)
    count = ctx.session.execute(
        select(func.count()).select_from(LegalRequest).where(LegalRequest.case_id == case.id)
    ).scalar_one()
    req = LegalRequest(
        number=f"{case.number}-R{count + 1:02d}",
        case_id=case.id,
        type=rtype.value,
        state=RequestState.DRAFT.value,
        instrument=rule.key,
        agreement=agreement,
        recipient=recipient.strip(),
        recipient_jurisdiction=normalise_jurisdiction(recipient_jurisdiction)
        if recipient_jurisdiction
        else None,
        recipient_contact=recipient_contact,
        language=language.strip().lower(),
        subject_matter=(subject_matter or case.title).strip(),
        facts=(facts or case.summary or "").strip(),
        measures=(measures or "").strip(),
        evidence_id=evidence.id if evidence else None,
        author_id=ctx.acting_user.id,
        created_at=ctx.now,
    )
    req.subjects = subjects
    ctx.session.add(req)
    ctx.session.flush()
    ctx.session.add(
        RequestTransition(
            request_id=req.id,
            from_state=None,
            to_state=req.state,
            actor_id=ctx.acting_user.id,
            at=ctx.now,
            reason=reason,
        )
    )
    touch(ctx, case)
    ctx.session.flush()
    ctx.audit(
        "request.draft",
        "request",
        req.number,
        case=case.number,
        reason=reason,
        details={
            "type": rtype.value,
            "instrument": rule.key,
            "recipient": req.recipient,
            "evidence": req.evidence_id,
            "subjects": [s.id for s in subjects],
        },
    )
    case_logger(__name__, case.number).info(
        "request %s drafted (%s to %s)", req.number, rtype.value, recipient
    )
    return req


_ACTION_PERMISSION = {RequestAction.APPROVE: Action.APPROVE_REQUEST}


def transition(
    ctx: Context,
    number: str,
    action: str | RequestAction,
    *,
    reason: str | None = None,
    outcome: str | None = None,
) -> LegalRequest:
    """Move a request along its state machine (approve, send, acknowledge, answer, refuse, expire)."""
    act = RequestAction(action)
    req = get_request(ctx, number, _ACTION_PERMISSION.get(act, Action.HANDLE_REQUEST))
    user = ctx.acting_user
    source = RequestState(req.state)
    target = next_state(req.number, source, act)
    today = ctx.now.date()
    if act is RequestAction.APPROVE:
        check_approval(req.number, req.author.username, user.username, Role(user.role))
        req.approved_by_id, req.approved_at = user.id, ctx.now
    elif act is RequestAction.SEND:
        book = deadline_book(ctx.home)
        rule = book.rule_for(RequestType(req.type), req.instrument, req.agreement)
        due = deadlines(rule, today, holidays=book.holidays)
        req.sent_at, req.answer_due, req.hold_until = ctx.now, due.answer_due, due.hold_until
    elif act is RequestAction.ACKNOWLEDGE:
        book = deadline_book(ctx.home)
        rule = book.rule_for(RequestType(req.type), req.instrument, req.agreement)
        assert req.sent_at is not None
        due = deadlines(rule, req.sent_at.date(), today, holidays=book.holidays)
        req.acknowledged_at, req.hold_until = ctx.now, due.hold_until
    else:
        req.closed_at = ctx.now
        if outcome:
            req.outcome = outcome
    req.state = target.value
    ctx.session.add(
        RequestTransition(
            request_id=req.id,
            from_state=source.value,
            to_state=target.value,
            actor_id=user.id,
            at=ctx.now,
            reason=reason,
        )
    )
    touch(ctx, req.case)
    ctx.session.flush()
    ctx.audit(
        f"request.{act.value}",
        "request",
        req.number,
        case=req.case.number,
        reason=reason,
        details={
            "from": source.value,
            "to": target.value,
            "answer_due": req.answer_due.isoformat() if req.answer_due else None,
            "hold_until": req.hold_until.isoformat() if req.hold_until else None,
        },
    )
    case_logger(__name__, req.case.number).info(
        "request %s: %s -> %s by %s", req.number, source.value, target.value, user.username
    )
    return req


def show_request(ctx: Context, number: str) -> LegalRequest:
    """A request, its read audited."""
    req = get_request(ctx, number)
    ctx.audit("request.read", "request", req.number, case=req.case.number)
    return req


def list_requests(ctx: Context, *, case: str | None = None, state: str | None = None) -> list[LegalRequest]:
    """Requests within the user's reach (of one case, in one state), oldest first."""
    reachable = _reachable_case_ids(ctx)
    q = select(LegalRequest).where(LegalRequest.case_id.in_(reachable)).order_by(LegalRequest.id)
    if case:
        q = q.where(LegalRequest.case_id == ctx.case(case).id)
    if state:
        try:
            q = q.where(LegalRequest.state == RequestState(state.strip().lower()).value)
        except ValueError:
            raise InputError(
                f"unknown state {state!r}; states: {', '.join(s.value for s in RequestState)}"
            ) from None
    found = list(ctx.session.execute(q).scalars())
    ctx.audit("request.list", "request", case=case, details={"state": state, "count": len(found)})
    return found


def _reachable_case_ids(ctx: Context) -> list[int]:
    user = ctx.acting_user
    assigned = set(
        ctx.session.execute(select(Assignment.case_id).where(Assignment.user_id == user.id)).scalars()
    )
    rows = ctx.session.execute(select(Case.id, Case.unit, Case.jurisdiction)).all()
    return [
        i
        for i, unit, jur in rows
        if can_reach_case(Role(user.role), user.unit, user.jurisdiction, unit, jur, i in assigned)
    ]


@dataclass(frozen=True, slots=True)
class DueItem:
    """A deadline of a request: its answer or the end of the measure's hold."""

    request: str
    case: str
    type: str
    state: str
    recipient: str
    deadline: str
    due: date
    status: DueStatus
    days_left: int

    def to_dict(self) -> dict[str, Any]:
        """As JSON values."""
        return {
            "request": self.request,
            "case": self.case,
            "type": self.type,
            "state": self.state,
            "recipient": self.recipient,
            "deadline": self.deadline,
            "due": self.due.isoformat(),
            "status": self.status.value,
            "days_left": self.days_left,
        }


def due_requests(ctx: Context, *, within_days: int = 7, today: date | None = None) -> list[DueItem]:
    """Overdue and due-soon deadlines: answers owed on pending requests, holds of measures running out."""
    if within_days < 0:
        raise InputError(f"--within must be >= 0, got {within_days}")
    ctx.require(Action.READ_CASE)
    today = today or ctx.now.date()
    q = select(LegalRequest).where(
        LegalRequest.case_id.in_(_reachable_case_ids(ctx)),
        LegalRequest.state.in_(["sent", "acknowledged", "answered"]),
    )
    items: list[DueItem] = []
    for r in ctx.session.execute(q).scalars():
        checks = []
        if RequestState(r.state).is_pending and r.answer_due:
            checks.append(("answer", r.answer_due))
        if r.hold_until and r.type in (RequestType.PRESERVATION.value, RequestType.FREEZE.value):
            checks.append(("hold_ends", r.hold_until))
        for name, due in checks:
            status = due_status(due, today, within_days)
            if status is not DueStatus.LATER:
                items.append(
                    DueItem(
                        r.number,
                        r.case.number,
                        r.type,
                        r.state,
                        r.recipient,
                        name,
                        due,
                        status,
                        (due - today).days,
                    )
                )
    items.sort(key=lambda i: (i.due, i.request, i.deadline))
    ctx.audit("request.due", "request", details={"within_days": within_days, "count": len(items)})
    return items


def request_doc(req: LegalRequest) -> dict[str, Any]:
    """A request with its history, as JSON values."""
    return {
        "number": req.number,
        "case": req.case.number,
        "type": req.type,
        "state": req.state,
        "instrument": req.instrument,
        "agreement": req.agreement,
        "recipient": req.recipient,
        "recipient_jurisdiction": req.recipient_jurisdiction,
        "recipient_contact": req.recipient_contact,
        "language": req.language,
        "subject_matter": req.subject_matter,
        "facts": req.facts,
        "measures": req.measures,
        "evidence": req.evidence_id,
        "subjects": [{"id": s.id, "kind": s.kind, "chain": s.chain, "value": s.value} for s in req.subjects],
        "author": req.author.username,
        "approved_by": req.approved_by.username if req.approved_by else None,
        "approved_at": req.approved_at,
        "sent_at": req.sent_at,
        "acknowledged_at": req.acknowledged_at,
        "closed_at": req.closed_at,
        "answer_due": req.answer_due,
        "hold_until": req.hold_until,
        "outcome": req.outcome,
        "version": req.version,
        "history": [
            {"from": t.from_state, "to": t.to_state, "by": t.actor.username, "at": t.at, "reason": t.reason}
            for t in req.transitions
        ],
    }
