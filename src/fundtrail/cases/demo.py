"""Demo steps of the case layer: the demo agency, its ransomware case, evidence, a freeze, the audit log.

Registered with :func:`fundtrail.scenarios.demo.add_step` after the chain steps (they need the
``trace`` step's document). Each step is idempotent: run on a home that already has the agency or the
case, it reuses them.
"""

from __future__ import annotations

from sqlalchemy import select

from fundtrail.audit import log as audit_log
from fundtrail.cases.cases import open_case
from fundtrail.cases.context import operation
from fundtrail.cases.db import CaseDB
from fundtrail.cases.evidence import preserve_trace
from fundtrail.cases.ledger import record_entry
from fundtrail.cases.letters import render_letter
from fundtrail.cases.models import Case, EvidenceItem, LedgerEntry, LegalRequest, User
from fundtrail.cases.requests import draft_request, transition
from fundtrail.cases.users import add_user, agency, set_agency
from fundtrail.errors import IntegrityError
from fundtrail.scenarios.demo import DemoContext, DemoStep, StepSkipped, add_step

AGENCY = "Demo Police Cybercrime Bureau"
JURISDICTION = "EE"
UNIT = "Financial Cybercrime Unit"
USERS: tuple[tuple[str, str, str], ...] = (
    ("admin", "Ada Admin", "admin"),
    ("analyst", "Ana Analyst", "analyst"),
    ("investigator", "Ivo Investigator", "investigator"),
    ("supervisor", "Sue Supervisor", "supervisor"),
    ("auditor", "Aud Auditor", "auditor"),
    ("liaison", "Lia Liaison", "liaison"),
)
"""The demo users: (username, display name, role)."""

CASE_TITLE = "Demo ransomware campaign"


def _db(ctx: DemoContext) -> CaseDB:
    db = ctx.state.get("case_db")
    if db is None:
        db = CaseDB.open(ctx.home)
        ctx.state["case_db"] = db
    return db


def step_agency(ctx: DemoContext) -> str:
    """The demo agency and one user per role (printed once, with how to act as them)."""
    db = _db(ctx)
    with operation(db, None, user_required=False) as op:
        if agency(op) is None:
            set_agency(
                op,
                name=AGENCY,
                jurisdiction=JURISDICTION,
                address="1 Demo Street, Tallinn",
                email="cyber@demo.invalid",
                phone="+372 000 0000",
            )
        have = set(op.session.execute(select(User.username)).scalars())
        if "admin" not in have:
            add_user(op, *USERS[0][:2], USERS[0][2], UNIT, JURISDICTION, email="admin@demo.invalid")
    added = []
    with operation(db, "admin") as op:
        for username, name, role in USERS[1:]:
            if username not in have:
                add_user(op, username, name, role, UNIT, JURISDICTION, email=f"{username}@demo.invalid")
                added.append(username)
    ctx.hints.append(
        "act as a demo user with --as USER or FUNDTRAIL_USER=USER: "
        + ", ".join(f"{u} ({r})" for u, _, r in USERS)
        + f"; e.g. fundtrail case list --home {ctx.home} --as investigator"
    )
    if not added and "admin" in have:
        return f"{AGENCY}: users already there ({', '.join(u for u, _, _ in USERS)})"
    return f"{AGENCY}: users " + ", ".join(f"{u} ({r})" for u, _, r in USERS) + " (act as one with --as USER)"


def step_case(ctx: DemoContext) -> str:
    """The ransomware case: the traced addresses as subjects, the trace preserved as signed evidence."""
    trace = ctx.need("trace", "trace")
    summary = ctx.state.get("summary") or {}
    truth_case = ctx.state.get("case")
    db = _db(ctx)
    with operation(db, "investigator") as op:
        case = op.session.execute(select(Case).where(Case.title == CASE_TITLE)).scalars().first()
        if case is None:
            label = getattr(truth_case, "label", "a ransomware group")
            paid = summary.get("case", {}).get("paid")
            facts = (
                f"Victims of the {label} ransomware paid ransoms in bitcoin to the addresses below"
                + (f" ({paid} satoshi in all)" if paid else "")
                + ". Tracing the payments forward shows the funds reaching exchange deposit addresses."
            )
            case = open_case(
                op,
                CASE_TITLE,
                severity="high",
                offence="ransomware extortion (computer-related extortion and money laundering)",
                summary=facts,
            )
        number = case.number
        evidence = (
            op.session.execute(select(EvidenceItem).where(EvidenceItem.case_id == case.id)).scalars().first()
        )
        if evidence is None:
            preserved = preserve_trace(
                op,
                number,
                trace,
                ctx.store(),
                title="Forward trace of the ransom payments",
                reason="demo: preserve the ransom trace",
                add_subjects=True,
            )
            evidence_id, subjects = preserved.item.id, len(preserved.subjects)
        else:
            evidence_id, subjects = evidence.id, len(case.subjects)
    ctx.state["case_number"] = number
    ctx.state["evidence_id"] = evidence_id
    return (
        f"case {number}: {subjects} traced addresses as subjects; evidence {evidence_id} preserved and signed"
    )


def step_freeze(ctx: DemoContext) -> str:
    """A freeze request to the exchange the trace found: drafted, approved, sent, acknowledged; the freeze
    in the ledger; its letter rendered."""
    number = ctx.need("case_number", "case")
    evidence_id = ctx.need("evidence_id", "case")
    exchanges = (ctx.state.get("summary") or {}).get("exchanges") or []
    if not exchanges:
        raise StepSkipped("the trace reached no exchange")
    target = exchanges[0]
    db = _db(ctx)
    with operation(db, "investigator") as op:
        existing = (
            op.session.execute(
                select(LegalRequest).join(Case).where(Case.number == number, LegalRequest.type == "freeze")
            )
            .scalars()
            .first()
        )
        if existing is None:
            req = draft_request(
                op,
                number,
                "freeze",
                target["name"],
                recipient_jurisdiction=target.get("jurisdiction") or None,
                recipient_contact="compliance desk (law-enforcement requests)",
                evidence_id=evidence_id,
                reason="demo: freeze the ransom at the exchange",
                measures="Please keep the frozen assets until a seizure order is served.",
            )
        request_number = existing.number if existing is not None else req.number
    if existing is None:
        with operation(db, "supervisor") as op:
            transition(op, request_number, "approve", reason="demo: facts and evidence checked")
        with operation(db, "liaison") as op:
            transition(op, request_number, "send", reason="demo: sent to the exchange's compliance desk")
        with operation(db, "liaison") as op:
            transition(op, request_number, "acknowledge", reason="demo: the exchange confirmed the freeze")
    with operation(db, "investigator") as op:
        has_entry = op.session.execute(select(LedgerEntry.id).join(Case).where(Case.number == number)).first()
        if not has_entry:
            record_entry(
                op,
                number,
                "frozen",
                ctx.state["trace"]["chain"],
                int(target["tainted_value"]),
                jurisdiction=target.get("jurisdiction") or JURISDICTION,
                holder=target["name"],
                request=request_number,
                note="demo: amount the exchange reported frozen",
            )
        letters = render_letter(op, request_number, ctx.reports_dir / "letters")
    ctx.state["request_number"] = request_number
    ctx.hints.append(f"the freeze letter: {letters[0]} (DOCX) and {letters[-1]} (PDF)")
    return (
        f"request {request_number}: freeze to {target['name']} drafted by investigator, approved by "
        f"supervisor, sent; {target['tainted_value']} satoshi frozen in the ledger; "
        f"letter in {letters[0].parent}"
    )


def step_audit(ctx: DemoContext) -> str:
    """Verify the audit log and sign its head."""
    db = _db(ctx)
    try:
        with operation(db, None, user_required=False) as op:
            result = audit_log.verify(op.session, op.key)
            if not result.intact:
                raise IntegrityError(f"audit log broken: {result.first_bad}")
            audit_log.checkpoint(op.session, op.key)
    finally:
        db.close()
        ctx.state.pop("case_db", None)
    return f"audit log intact: {result.records} hash-chained records, head signed (fundtrail audit verify)"


STEPS: list[DemoStep] = [
    DemoStep("agency", "Create the demo agency and its users", step_agency),
    DemoStep("case", "Open the ransomware case and preserve the trace as evidence", step_case),
    DemoStep("freeze", "Request a freeze from the exchange and record it", step_freeze),
    DemoStep("audit", "Verify the audit log", step_audit),
]


def register() -> None:
    """Add the case layer's steps to the demo, after the trace."""
    previous = "trace"
    for step in STEPS:
        add_step(step, after=previous)
        previous = step.name


register()
