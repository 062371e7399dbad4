"""The demo agency: its users, the ransomware case with the trace preserved as evidence, a freeze request,
the sharing agreement ``demo-partner``, dashboard sign-in for the users, and the audit check.

These are the demo's steps on case data; :data:`fundtrail.scenarios.demo.DEMO_STEPS` runs them after the
chain steps (they need the ``trace`` step's document). Each step is idempotent: run on a home that already
has the agency, the case or the agreement, it reuses them.

Dashboard sign-in: each demo user without a password gets a random one, printed once in the demo's hints
(FundTrail keeps only its argon2 hash). ``FUNDTRAIL_DEMO_PASSWORD`` gives them all that password instead
(for scripted runs). Run again, the step keeps the passwords already set.

The sharing partner is fictional (the Seychelles FIU of the demo world); its key pair is made at random for
each demo home (:mod:`fundtrail.sharing.demo`), and its public key pinned when the agreement is recorded.
"""

from __future__ import annotations

import os
import secrets

from sqlalchemy import select

from fundtrail.audit import log as audit_log
from fundtrail.audit.trust import fingerprint as fingerprint_of
from fundtrail.cases.cases import open_case
from fundtrail.cases.context import operation
from fundtrail.cases.db import CaseDB
from fundtrail.cases.evidence import preserve_trace
from fundtrail.cases.ledger import record_entry
from fundtrail.cases.letters import render_letter
from fundtrail.cases.models import Case, EvidenceItem, LedgerEntry, LegalRequest, User
from fundtrail.cases.requests import draft_request, transition
from fundtrail.cases.users import add_user, agency, set_agency
from fundtrail.domain.sharing import DataCategory, Pap, Tlp
from fundtrail.errors import IntegrityError, NotFoundError
from fundtrail.scenarios.steps import DemoContext, DemoStep, StepSkipped
from fundtrail.sharing.agreements import AgreementSpec, agreements_for_key, create_agreement, get_agreement
from fundtrail.sharing.demo import AGREEMENT, LEGAL_BASIS, PARTNER, make_demo_partner_key
from fundtrail.sharing.demo import COUNTRY as PARTNER_COUNTRY

PASSWORD_ENV = "FUNDTRAIL_DEMO_PASSWORD"

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
    """Verify the audit log (reads only)."""
    db = _db(ctx)
    try:
        result = audit_log.verify_database(db)
        if not result.intact:
            raise IntegrityError(f"audit log broken: {result.first_bad}")
    finally:
        db.close()
        ctx.state.pop("case_db", None)
    return (
        f"audit log intact: {result.records} records under {result.heads} signed tree heads "
        "(fundtrail audit verify; fundtrail audit head --format json > head.json to keep one)"
    )


def step_logins(ctx: DemoContext) -> str:
    """Set a password for every demo user that has none; hint how to sign in to the dashboard."""
    from fundtrail.api.auth import Credentials  # argon2: the ``api`` extra, checked before the demo starts

    with Credentials(ctx.home) as credentials:
        if not credentials.has_user(USERS[0][0]):
            raise StepSkipped("the demo agency has no users")
        given = os.environ.get(PASSWORD_ENV) or None
        new: dict[str, str] = {}
        for username, _name, _role in USERS:
            if not credentials.has_password(username):
                password = given or secrets.token_urlsafe(12)
                credentials.set_password(username, password)
                new[username] = password
    url = "http://127.0.0.1:8000/"
    ctx.hints.append(f"the dashboard: fundtrail serve --home {ctx.home}, then open {url}")
    if new and not given:
        ctx.hints.append("dashboard sign-in (shown once; reset with fundtrail token password USER): "
                         + ", ".join(f"{u} / {p}" for u, p in new.items()))
    elif new:
        ctx.hints.append(f"dashboard sign-in: {', '.join(new)} with the password in ${PASSWORD_ENV}")
    if not new:
        return "dashboard sign-in already set for the demo users"
    return f"dashboard sign-in set for {len(new)} users ({', '.join(new)})"


def step_agreement(ctx: DemoContext) -> str:
    """Record the agreement ``demo-partner`` (amber, pseudonymised, 90 days, no onward sharing)."""
    db = CaseDB.open(ctx.home)
    try:
        with operation(db, None, user_required=False) as op:
            try:
                existing = get_agreement(op, AGREEMENT)
            except NotFoundError:
                existing = None
            if existing is None:
                key = make_demo_partner_key(ctx.home).public_b64
                create_agreement(
                    op,
                    AgreementSpec(
                        name=AGREEMENT,
                        partner_name=PARTNER,
                        partner_country=PARTNER_COUNTRY,
                        partner_public_key=key,
                        legal_basis=LEGAL_BASIS,
                        categories=frozenset(
                            {
                                DataCategory.ADDRESSES_AND_TRANSACTIONS,
                                DataCategory.ATTRIBUTION_TAGS,
                                DataCategory.TRACES,
                                DataCategory.EVIDENCE,
                            }
                        ),
                        tlp=Tlp.AMBER,
                        pap=Pap.AMBER,
                        pseudonymise=True,
                        retention_days=90,
                        onward_sharing=False,
                        deadlines={"freeze": 5, "preservation": 3},
                    ),
                    reason="demo: an agreement to exchange the ransomware case with a partner",
                )
                verb = "recorded"
            else:
                verb = "already recorded"
            row = existing or get_agreement(op, AGREEMENT)
            assert agreements_for_key(op, row.partner_key_id)
            fingerprint = fingerprint_of(row.partner_public_key)
    finally:
        db.close()
    number = ctx.state.get("case_number")
    if number:
        ctx.hints.append(
            f"share the case with the partner: fundtrail share export {number} --agreement {AGREEMENT} "
            f"--format stix -o case.stix.json --home {ctx.home} --as investigator"
        )
    return (
        f"agreement {AGREEMENT} with {PARTNER} {verb}: addresses, tags, traces and evidence, TLP:AMBER, "
        f"PAP:AMBER, 90 days, no onward sharing; partner key {fingerprint}, pinned, made at random for "
        f"this home (fundtrail agreement show {AGREEMENT})"
    )


STEPS: list[DemoStep] = [
    DemoStep("agency", "Create the demo agency and its users", step_agency),
    DemoStep("logins", "Let the demo users sign in to the dashboard", step_logins,
             needs=(("argon2", "api"),)),
    DemoStep("case", "Open the ransomware case and preserve the trace as evidence", step_case),
    DemoStep("freeze", "Request a freeze from the exchange and record it", step_freeze),
    DemoStep("agreement", "Record the sharing agreement demo-partner", step_agreement),
    DemoStep("audit", "Verify the audit log", step_audit),
]
"""The demo agency's steps, in order (the audit check last, so that it covers the others)."""
