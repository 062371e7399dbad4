"""Legal requests across instances: the requester sends, the partner acknowledges and answers.

::

    requester (A)                                         partner (B)
    case layer: draft > approve
    send_request ------ POST /cooperation/requests -----> receive_request: the inbox, with a deadline
                 (A's request moves to sent, with the deadline of its instrument)
    on_acknowledged <-- POST .../{number}/acknowledgement -- acknowledge
    on_answered <------ POST .../{number}/answer --------- answer: frozen amounts, account holders
       (A's request answered or refused; each frozen      pseudonymised per B's agreement
        amount in A's recovery ledger)

Every step is one transaction on each side, audited there, and it happens only if the partner took
it: a call that fails rolls the local step back, so both sides always agree on where a request stands.
The requester's steps use the case layer's request and ledger services, acting as the request's author
(the partner's messages are recorded as such in the reason and in the audit log).
"""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, select

from fundtrail.cases.context import Context
from fundtrail.cases.ledger import record_entry
from fundtrail.cases.models import LegalRequest
from fundtrail.cases.requests import get_request, transition
from fundtrail.cases.users import agency
from fundtrail.domain.addresses import canonical_address
from fundtrail.domain.cases import Action, parse_amount
from fundtrail.domain.chains import CHAINS
from fundtrail.domain.requests import RequestAction, RequestState, RequestType, next_state
from fundtrail.domain.sharing import DataCategory, pseudonym
from fundtrail.errors import ConflictError, InputError, NotFoundError
from fundtrail.sharing.agreements import (
    agreement_for_partner,
    get_agreement,
    pseudonym_key,
    require_category,
    to_domain,
)
from fundtrail.sharing.models import OutboundRequest, PartnerRequest, SharingAgreement
from fundtrail.sharing.partners import ClientFactory, http_client
from fundtrail.sharing.service import audit_as, partner_actor

log = logging.getLogger(__name__)

INBOX_STATES = {
    RequestState.SENT: "received",
    RequestState.ACKNOWLEDGED: "acknowledged",
    RequestState.ANSWERED: "answered",
    RequestState.REFUSED: "refused",
    RequestState.EXPIRED: "expired",
}
"""How the inbox names the states of the request state machine (a request arrives ``sent``)."""


ItemKind = Literal["address", "transaction"]


class SubjectItem(BaseModel):
    """An address or transaction a request is about."""

    model_config = ConfigDict(extra="forbid")

    kind: ItemKind
    chain: str
    value: str = Field(min_length=1, max_length=300)
    label: str | None = Field(default=None, max_length=300)


class RequestMessage(BaseModel):
    """A legal request as it travels to the partner."""

    model_config = ConfigDict(extra="forbid")

    number: str = Field(min_length=1, max_length=40)
    case: str = Field(min_length=1, max_length=32)
    type: RequestType
    instrument: str = Field(max_length=64)
    subject_matter: str = Field(max_length=5000)
    facts: str = Field(max_length=20000)
    measures: str = Field(max_length=5000)
    answer_due: date | None = None
    requesting_agency: str = Field(max_length=300)
    contact: str | None = Field(default=None, max_length=1000)
    subjects: list[SubjectItem] = Field(min_length=1, max_length=1000)


class FrozenItem(BaseModel):
    """An amount the partner froze: where, how much (base units, as text), and whose it is."""

    model_config = ConfigDict(extra="forbid")

    chain: str
    address: str
    asset: str = "native"
    amount: str = Field(pattern=r"^\d{1,78}$")
    holder: str | None = Field(default=None, max_length=300)
    account: str | None = Field(default=None, max_length=300)


class AnswerMessage(BaseModel):
    """The partner's answer: answered (with what was frozen) or refused."""

    model_config = ConfigDict(extra="forbid")

    outcome: Literal["answered", "refused"]
    note: str = Field(default="", max_length=5000)
    frozen: list[FrozenItem] = Field(default_factory=list, max_length=1000)
    pseudonymised: bool = False


def parse_message(model: type[BaseModel], body: Any) -> Any:
    """A message model from JSON values; InputError naming the first bad field."""
    try:
        return model.model_validate(body)
    except ValidationError as error:
        first = error.errors()[0]
        raise InputError(f"{'.'.join(str(p) for p in first['loc']) or 'body'}: {first['msg']}") from None


def need_addresses(row: SharingAgreement, ctx: Context) -> None:
    """Refuse unless the agreement is in force and allows addresses (requests and queries name them)."""
    require_category(row, DataCategory.ADDRESSES_AND_TRANSACTIONS, ctx.now.date(), "requests name")


# --------------------------------------------------------------------------------------- requester


def send_request(
    ctx: Context,
    number: str,
    agreement_name: str,
    *,
    clients: ClientFactory = http_client,
    reason: str | None = None,
) -> OutboundRequest:
    """Send an approved request to the agreement's partner; it is ``sent`` only if the partner took it."""
    req = get_request(ctx, number, Action.HANDLE_REQUEST)
    if RequestState(req.state) is not RequestState.APPROVED:
        raise InputError(f"request {req.number} is {req.state}; only an approved request can be sent")
    row = get_agreement(ctx, agreement_name)
    need_addresses(row, ctx)
    subjects = [
        SubjectItem(kind=cast(ItemKind, s.kind), chain=s.chain, value=s.value, label=s.label)  # kind filtered
        for s in req.subjects
        if s.kind in ("address", "transaction") and s.chain
    ]
    if not subjects:
        raise InputError(f"request {req.number} names no address or transaction to act on")
    reason = reason or f"sent to {row.partner_name} over FundTrail (agreement {row.name})"
    transition(ctx, req.number, RequestAction.SEND, reason=reason)
    settings = agency(ctx)
    author = req.author
    message = RequestMessage(
        number=req.number,
        case=req.case.number,
        type=RequestType(req.type),
        instrument=req.instrument,
        subject_matter=req.subject_matter,
        facts=req.facts,
        measures=req.measures,
        answer_due=req.answer_due,
        requesting_agency=settings.name if settings else req.case.lead_agency,
        contact=f"{author.display_name}, {author.unit}" + (f", {author.email}" if author.email else ""),
        subjects=subjects,
    )
    client = clients(row, ctx.key)
    try:
        answer = client.call("POST", "/requests", message.model_dump(mode="json"))
    finally:
        client.close()
    out = OutboundRequest(
        request_id=req.id, agreement_id=row.id, remote_number=str(answer.get("number")), sent_at=ctx.now
    )
    ctx.session.add(out)
    ctx.session.flush()
    ctx.audit(
        "cooperation.request.send",
        "request",
        req.number,
        case=req.case.number,
        reason=reason,
        details={
            "agreement": row.name,
            "partner": row.partner_name,
            "partner_key_id": row.partner_key_id,
            "remote_number": out.remote_number,
            "subjects": len(subjects),
            "answer_due": req.answer_due.isoformat() if req.answer_due else None,
        },
    )
    return out


def _outbound(ctx: Context, number: str, partner_key_id: str) -> tuple[LegalRequest, OutboundRequest]:
    found = ctx.session.execute(
        select(LegalRequest, OutboundRequest)
        .join(OutboundRequest, OutboundRequest.request_id == LegalRequest.id)
        .where(LegalRequest.number == number)
    ).first()
    if found is None or found[1].agreement.partner_key_id != partner_key_id:
        raise NotFoundError("request sent to you", number)  # another partner's request does not exist for you
    return found[0], found[1]


def request_author(ctx: Context, number: str, partner_key_id: str) -> str:
    """The username the requester's side acts as when the partner reports on ``number``."""
    req, _ = _outbound(ctx, number, partner_key_id)
    return req.author.username


def on_acknowledged(ctx: Context, number: str, partner_key_id: str) -> LegalRequest:
    """The partner acknowledged our request."""
    req, out = _outbound(ctx, number, partner_key_id)
    partner = out.agreement.partner_name
    transition(
        ctx,
        req.number,
        RequestAction.ACKNOWLEDGE,
        reason=f"acknowledged by {partner} (message signed by key {partner_key_id})",
    )
    out.acknowledged_at = ctx.now
    audit_as(
        ctx,
        "cooperation.request.acknowledged",
        "request",
        req.number,
        actor=partner_actor(partner_key_id),
        case=req.case.number,
        details={"partner": partner, "remote_number": out.remote_number},
    )
    return req


def on_answered(ctx: Context, number: str, partner_key_id: str, answer: AnswerMessage) -> LegalRequest:
    """The partner answered (or refused) our request; what it froze goes into the recovery ledger."""
    req, out = _outbound(ctx, number, partner_key_id)
    row = out.agreement
    action = RequestAction.ANSWER if answer.outcome == "answered" else RequestAction.REFUSE
    frozen = []
    for item in answer.frozen:
        if item.chain not in CHAINS:
            raise InputError(f"frozen: unknown chain {item.chain!r}")
        frozen.append((item, canonical_address(item.chain, item.address), parse_amount(item.amount)))
    summary = f"{answer.outcome} by {row.partner_name}" + (f": {answer.note}" if answer.note else "")
    if frozen:
        summary += "; frozen " + ", ".join(
            f"{amount} {item.asset} ({item.chain}) at {address}" for item, address, amount in frozen
        )
    transition(
        ctx,
        req.number,
        action,
        reason=f"{answer.outcome} by {row.partner_name} (message signed by key {partner_key_id})",
        outcome=summary[:5000],
    )
    for item, address, amount in frozen:
        record_entry(
            ctx,
            req.case.number,
            "frozen",
            item.chain,
            amount,
            asset=item.asset,
            jurisdiction=row.partner_country,
            holder=item.holder or row.partner_name,
            request=req.number,
            note=f"frozen by {row.partner_name} at {address}"
            + (f", account {item.account}" if item.account else ""),
        )
    out.answered_at = ctx.now
    out.answer = json.dumps(answer.model_dump(mode="json"), sort_keys=True)
    audit_as(
        ctx,
        "cooperation.request.answered",
        "request",
        req.number,
        actor=partner_actor(partner_key_id),
        case=req.case.number,
        details={
            "partner": row.partner_name,
            "outcome": answer.outcome,
            "frozen": [
                {"chain": i.chain, "address": a, "asset": i.asset, "amount": str(m)} for i, a, m in frozen
            ],
            "pseudonymised": answer.pseudonymised,
        },
    )
    return req


# --------------------------------------------------------------------------------------- partner side


def _next_inbox_number(ctx: Context) -> str:
    year = ctx.now.year
    prefix = f"IN-{year}-"
    count = ctx.session.execute(
        select(func.count()).select_from(PartnerRequest).where(PartnerRequest.number.like(prefix + "%"))
    ).scalar_one()
    return f"{prefix}{count + 1:04d}"


def receive_request(ctx: Context, partner_key_id: str, body: Any) -> PartnerRequest:
    """A partner's request arrives in the inbox, with the earlier of its deadline and the agreement's."""
    message: RequestMessage = parse_message(RequestMessage, body)
    row = agreement_for_partner(ctx, partner_key_id)
    need_addresses(row, ctx)
    for s in message.subjects:
        if s.chain not in CHAINS:
            raise InputError(f"subjects: unknown chain {s.chain!r}")
        if s.kind == "address":
            s.value = canonical_address(s.chain, s.value)
    if ctx.session.execute(
        select(PartnerRequest.id).where(
            PartnerRequest.agreement_id == row.id, PartnerRequest.remote_number == message.number
        )
    ).first():
        raise ConflictError(f"request {message.number} was already received")
    days = to_domain(row).deadlines.get(message.type.value)
    due = [d for d in (message.answer_due, ctx.now.date() + timedelta(days=days) if days else None) if d]
    inbox = PartnerRequest(
        number=_next_inbox_number(ctx),
        agreement_id=row.id,
        remote_number=message.number,
        remote_case=message.case,
        type=message.type.value,
        state=RequestState.SENT.value,
        requesting_agency=message.requesting_agency,
        requesting_contact=message.contact,
        subject_matter=message.subject_matter,
        facts=message.facts,
        measures=message.measures,
        subjects=json.dumps([s.model_dump() for s in message.subjects]),
        received_at=ctx.now,
        answer_due=min(due) if due else None,
        delivered=True,
    )
    ctx.session.add(inbox)
    ctx.session.flush()
    audit_as(
        ctx,
        "cooperation.request.receive",
        "partner_request",
        inbox.number,
        actor=partner_actor(partner_key_id),
        details={
            "agreement": row.name,
            "partner": row.partner_name,
            "remote_number": message.number,
            "remote_case": message.case,
            "type": message.type.value,
            "subjects": len(message.subjects),
            "answer_due": inbox.answer_due.isoformat() if inbox.answer_due else None,
        },
    )
    return inbox


def get_inbox(ctx: Context, number: str) -> PartnerRequest:
    """An inbox request; NotFoundError otherwise."""
    found = ctx.session.execute(
        select(PartnerRequest).where(PartnerRequest.number == number.strip().upper())
    ).scalar_one_or_none()
    if found is None:
        raise NotFoundError("inbox request", number)
    return found


def list_inbox(ctx: Context, *, state: str | None = None) -> list[PartnerRequest]:
    """The inbox, earliest deadline first (reading it is audited)."""
    ctx.require(Action.HANDLE_REQUEST)
    q = select(PartnerRequest).order_by(
        PartnerRequest.answer_due.is_(None), PartnerRequest.answer_due, PartnerRequest.id
    )
    if state:
        wanted = [k.value for k, v in INBOX_STATES.items() if v == state] or [state]
        q = q.where(PartnerRequest.state.in_(wanted))
    ctx.audit("cooperation.inbox.read", "partner_request", None, details={"state": state})
    return list(ctx.session.execute(q).scalars())


def _move(ctx: Context, inbox: PartnerRequest, action: RequestAction) -> RequestState:
    target = next_state(inbox.number, RequestState(inbox.state), action)
    inbox.state = target.value
    return target


def acknowledge(
    ctx: Context, number: str, *, clients: ClientFactory = http_client, reason: str | None = None
) -> PartnerRequest:
    """Acknowledge a partner's request (and tell the partner)."""
    ctx.require(Action.HANDLE_REQUEST)
    inbox = get_inbox(ctx, number)
    _move(ctx, inbox, RequestAction.ACKNOWLEDGE)
    inbox.acknowledged_at = ctx.now
    client = clients(inbox.agreement, ctx.key)
    try:
        client.call("POST", f"/requests/{inbox.remote_number}/acknowledgement", {})
    finally:
        client.close()
    ctx.audit(
        "cooperation.request.acknowledge",
        "partner_request",
        inbox.number,
        reason=reason,
        details={"partner": inbox.agreement.partner_name, "remote_number": inbox.remote_number},
    )
    return inbox


def answer(
    ctx: Context,
    number: str,
    *,
    frozen: list[FrozenItem],
    note: str = "",
    refuse: bool = False,
    clients: ClientFactory = http_client,
    reason: str | None = None,
) -> PartnerRequest:
    """Answer a partner's request: what was frozen and whose it is (pseudonymised per the agreement)."""
    ctx.require(Action.HANDLE_REQUEST)
    inbox = get_inbox(ctx, number)
    row = inbox.agreement
    agreement = to_domain(row)
    _move(ctx, inbox, RequestAction.REFUSE if refuse else RequestAction.ANSWER)
    personal = DataCategory.PERSONAL_DATA in agreement.categories
    key = pseudonym_key(ctx.home, row.name, create=True) if agreement.pseudonymise else None
    items = []
    for item in frozen:
        holder, account = item.holder, item.account
        if not personal:
            holder = account = None
        elif key is not None:
            holder = pseudonym(key, "name", holder) if holder else None
            account = pseudonym(key, "accountId", account) if account else None
        items.append(item.model_copy(update={"holder": holder, "account": account}))
    message = AnswerMessage(
        outcome="refused" if refuse else "answered",
        note=note,
        frozen=items,
        pseudonymised=key is not None and personal,
    )
    inbox.answered_at = ctx.now
    inbox.answer = json.dumps(message.model_dump(mode="json"), sort_keys=True)
    client = clients(row, ctx.key)
    try:
        client.call("POST", f"/requests/{inbox.remote_number}/answer", message.model_dump(mode="json"))
    finally:
        client.close()
    ctx.audit(
        "cooperation.request.answer",
        "partner_request",
        inbox.number,
        reason=reason,
        details={
            "partner": row.partner_name,
            "remote_number": inbox.remote_number,
            "outcome": message.outcome,
            "frozen": len(items),
            "pseudonymised": message.pseudonymised,
        },
    )
    return inbox


def inbox_doc(p: PartnerRequest) -> dict[str, Any]:
    """An inbox request as JSON values."""
    return {
        "number": p.number,
        "state": INBOX_STATES.get(RequestState(p.state), p.state),
        "type": p.type,
        "agreement": p.agreement.name,
        "partner": p.agreement.partner_name,
        "requesting_agency": p.requesting_agency,
        "contact": p.requesting_contact,
        "remote_number": p.remote_number,
        "remote_case": p.remote_case,
        "subject_matter": p.subject_matter,
        "facts": p.facts,
        "measures": p.measures,
        "subjects": json.loads(p.subjects),
        "received_at": p.received_at,
        "answer_due": p.answer_due,
        "acknowledged_at": p.acknowledged_at,
        "answered_at": p.answered_at,
        "answer": json.loads(p.answer) if p.answer else None,
    }
